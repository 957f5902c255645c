#!/usr/bin/env bash
# ux item 9: `tallow run --help` said "cannot open --help"; `tallow help send` printed the general
# help; `--words 0` gave a Lua traceback; no command had examples; `relay --help` hid its
# defaults and --stun/--splice; the top-level help left out half the environment variables; the
# "On the other computer run" hint dropped --relay. Also: man pages tallow(1) and tallow-relay(8)
# and the bash/zsh/fish completions, generated from --help and installed where each shell looks;
# Tab completion of code words at the code prompt.
set -eu
. "$(dirname "$0")/lib.sh"
: "${TALLOW_BUILD_DIR:?}" "${TALLOW_SOURCE_DIR:?}"
cd "$E2E_TMP"
cmds=$("$T" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on = 0}')
[ "$(echo $cmds)" = "chat clip receive relay send sync watch" ] || fail "commands listed: $(echo $cmds)"
for c in $cmds; do
    "$T" "$c" --help >h.$c 2>&1 || fail "$c --help failed"
    "$T" help "$c" >hh.$c 2>&1 || fail "help $c failed"
    cmp -s h.$c hh.$c || { show hh.$c; fail "tallow help $c is not tallow $c --help"; }
    grep -q "^examples:" h.$c && [ "$(sed -n '/^examples:/,/^$/p' h.$c | grep -c '^  tallow')" -ge 2 ] ||
        { show h.$c; fail "$c --help has no examples"; }
    grep -q "^environment:" h.$c || { show h.$c; fail "$c --help lists no environment variables"; }
    grep -q "^exit status: 0 done, 1 error, 2 usage, 3 refused or declined, 4 code mismatch" h.$c || fail "$c: no exit statuses"
done
for o in "--max-peers N .*(default 16)" "--grace SECONDS .*(default 30)" "--stun on|off .*(default on)" "--splice on|off .*(default on)" "--listen .*(default 0.0.0.0:4433)"; do
    grep -q -- "$o" h.relay || { show h.relay; fail "relay --help lacks '$o'"; }
done
grep -q -- "--words N .*(2 to 8).*(default 3)" h.send || { show h.send; fail "send --help: --words range/default"; }
grep -q "TALLOW_OFFER_TIMEOUT" h.receive || fail "receive --help lacks TALLOW_OFFER_TIMEOUT"
ok "every command: --help = help CMD, examples, defaults, environment, exit statuses"

"$T" run --help >run.help || fail "run --help failed"
grep -q "^usage: tallow run SCRIPT.lua" run.help || { show run.help; fail "run --help"; }
"$T" --help >top.help
# every TALLOW_* variable the program reads is in the top-level help (except a test-only knob)
for v in $(grep -rhoE '"TALLOW_[A-Z0-9_]+"' "$TALLOW_SOURCE_DIR/core" "$TALLOW_SOURCE_DIR/plugins" "$TALLOW_SOURCE_DIR/lua" |
           tr -d '"' | sort -u | grep -v '^TALLOW_E[A-Z]*$'); do
    [ "$v" = TALLOW_RELAY_KEEPALIVE_MS ] && continue   # test knob for the relay client's keepalive
    grep -q "$v" top.help || { show top.help; fail "tallow --help does not mention $v"; }
done
ok "run --help; tallow --help names every environment variable the program reads"

rc=0; "$T" send --words 0 x >w.out 2>w.err || rc=$?
[ "$rc" -eq 2 ] && ! grep -q traceback w.err && grep -q "must be between 2 and 8" w.err || { show w.err; fail "--words 0"; }
start_relay
echo x >x.txt
"$T" send --relay "$RELAY" x.txt >hint.out 2>hint.err &
pid=$!; track $pid
wait_for 10 grep -q "On the other computer run" hint.err || { show hint.err; fail "no hint"; }
kill -TERM $pid
grep -q "On the other computer run:  tallow receive --relay $RELAY [0-9]*-" hint.err || { show hint.err; fail "the hint drops --relay"; }
ok "--words 0: exit 2, no traceback; the hint keeps --relay: $(grep 'other computer' hint.err)"

# man pages and completions: generated from --help, current, with every option
D=$TALLOW_BUILD_DIR/docs-gen
sh "$TALLOW_SOURCE_DIR/scripts/gen-docs.sh" "$T" fresh >/dev/null
for f in tallow.1 tallow-relay.8 tallow.bash _tallow tallow.fish; do
    [ -s "$D/$f" ] || fail "build did not generate $f"
    cmp -s "$D/$f" "fresh/$f" || fail "$D/$f is stale: it differs from what --help gives now (rebuild)"
done
for c in $cmds; do
    page=tallow.1; [ $c = relay ] && page=tallow-relay.8
    for o in $(sed -n '/^options:/,/^$/p' h.$c | grep -oE '^  --[a-z0-9-]+'); do
        grep -q -- "\\\\-\\?$o\|$o" "$D/$page" || fail "$page lacks $c's $o"
        grep -q -- "$o" "$D/tallow.bash" && grep -q -- "$o" "$D/_tallow" && grep -q -- "-l ${o#--}" "$D/tallow.fish" ||
            fail "a completion lacks $c's $o"
    done
done
grep -q '^\.TH TALLOW 1' "$D/tallow.1" && grep -q '^\.TH TALLOW-RELAY 8' "$D/tallow-relay.8" || fail "man page headers"
ok "man pages and completions current and complete"

# bash completion works: commands, options, code words (tallow on PATH for the word list)
cat >"$E2E_TMP/tallow" <<SH
#!/bin/sh
exec "$T" "\$@"
SH
chmod +x "$E2E_TMP/tallow"
word=$("$T" _words | sed -n 100p)
out=$(PATH="$E2E_TMP:$PATH" bash -c '. "$1"
COMP_WORDS=(tallow rec); COMP_CWORD=1; _tallow; echo "1:${COMPREPLY[*]}"
COMP_WORDS=(tallow receive --over); COMP_CWORD=2; _tallow; echo "2:${COMPREPLY[*]}"
COMP_WORDS=(tallow receive "7-$2"); COMP_CWORD=2; _tallow; echo "3:${COMPREPLY[*]}"' _ "$D/tallow.bash" "${word%?}")
echo "$out" | grep -q "^1:receive$" && echo "$out" | grep -q "^2:--overwrite$" && echo "$out" | grep -q "^3:.*7-$word" ||
    fail "bash completion: $out"
for sh in zsh fish; do
    if command -v $sh >/dev/null; then $sh -n "$D/$([ $sh = zsh ] && echo _tallow || echo tallow.fish)" || fail "$sh syntax"; fi
done
ok "bash completion: commands, options and code words ($word)"

# installed where each shell looks (what make install puts there)
cmake --install "$TALLOW_BUILD_DIR" --prefix "$E2E_TMP/prefix" >/dev/null
for f in share/bash-completion/completions/tallow share/zsh/site-functions/_tallow \
         share/fish/vendor_completions.d/tallow.fish share/man/man1/tallow.1 share/man/man8/tallow-relay.8; do
    [ -s "$E2E_TMP/prefix/$f" ] || fail "install lacks $f"
done
ok "installed: bash, zsh, fish completions and both man pages at their usual paths"

# Tab completes code words at the code prompt: a unique prefix becomes the word and a '-'
prefix=""
for n in 2 3 4 5 6 7 8; do
    p=$(printf %s "$word" | cut -c1-$n)
    [ "$("$T" _words "$p" | wc -l)" -eq 1 ] && { prefix=$p; break; }
done
[ -n "$prefix" ] || fail "no unique prefix of $word"
TTY_INPUT="42-$prefix\\t\\x03" TTY_INPUT_AFTER=1 in_tty 80 prompt.tty 20 "$T" receive
grep -q "42-$word-" prompt.tty || { show prompt.tty; fail "Tab did not complete $prefix to $word"; }
[ "$TTY_RC" -eq 130 ] || { show prompt.tty; fail "Ctrl-C at the prompt: exit $TTY_RC, not 130"; }
ok "code prompt: 42-$prefix<Tab> became 42-$word-; Ctrl-C exits 130"
