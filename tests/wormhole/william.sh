# tallow <-> wormhole-william 1.0.6 (Debian, Go): tallow send -> wormhole-william receive (text,
# file, folder) and wormhole-william send -> tallow receive (text, file). wormhole-william's
# sender has no transit-relay option and must reach transit.magic-wormhole.io:4001, so the whole
# test runs in a private network and mount namespace of its own: only loopback, a transit relay
# on 127.0.0.1:4001, and an /etc/hosts naming that host 127.0.0.1 (needs root: fails otherwise).
set -eu
if [ -z "${WH_IN_NS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "FAIL [william]: needs root (network + mount namespace)" >&2; exit 1; }
    command -v wormhole-william >/dev/null || { echo "FAIL [william]: wormhole-william is not installed (make deps)" >&2; exit 1; }
    rc=0
    flock -w 240 -E 99 /tmp/tallow-netns.lock unshare --net --mount env WH_IN_NS=1 bash "$0" "$@" || rc=$?
    [ "$rc" != 99 ] || echo "FAIL [william]: /tmp/tallow-netns.lock stayed busy for 240 s" >&2
    exit "$rc"
fi
ip link set lo up
. "$(dirname "$0")/lib.sh"
[ -f /etc/hosts ] || fail "no /etc/hosts to bind-mount a private copy over"
{ cat /etc/hosts; echo "127.0.0.1 transit.magic-wormhole.io"; } >"$E2E_TMP/hosts"
mount --bind "$E2E_TMP/hosts" /etc/hosts
start_wormhole_servers 4001
cd "$E2E_TMP"
WW="timeout -s KILL 60 wormhole-william --relay-url $MAILBOX_URL"

# wormhole-william's SPAKE2 (gospake2) encodes a point with big.Int.Bytes(), which drops a zero
# top byte: about one session in a hundred its key differs from every correct peer's (Python's
# too) and both sides see a wrong code. A case that fails that way is run once more, and said so.
twice() {
    "$@" && return 0
    if grep -qs "code mismatch" r.err s.err; then
        note "$1: 'code mismatch' (wormhole-william's gospake2 encoding bug); once more"
        "$@" && return 0
    fi
    return 1
}

# -- tallow -> wormhole-william
text_to_william() {
    next_code
    bg s "$T" send --wormhole --code "$C" --text "hello william"
    fg r 30 $WW receive "$C"
    wait_pid 20 "$BG_PID"
    [ "$FG_RC" = 0 ] && [ "$WAIT_RC" = 0 ] || return 1
    grep -q "hello william" r.out || { show r.out; fail "william did not print the text"; }
}
twice text_to_william || { show r.err; show s.err; fail "text tallow -> wormhole-william"; }
ok "text tallow -> wormhole-william"

mkrand file.bin 3000000
mkdir -p tree/sub/deeper && echo a >tree/a.txt && mkrand tree/sub/deeper/b.bin 200000
send_to_william() {
    rm -rf rx && mkdir rx
    next_code
    bg s "$T" send --wormhole --code "$C" "$1"
    FG_RC=0
    (cd rx && echo y | timeout -s KILL 30 wormhole-william --relay-url "$MAILBOX_URL" receive "$C") \
        >r.out 2>r.err || FG_RC=$?
    wait_pid 30 "$BG_PID"
    [ "$FG_RC" = 0 ] && [ "$WAIT_RC" = 0 ]
}
for what in file.bin tree; do
    twice send_to_william "$what" || { show r.err; show s.err; fail "$what tallow -> wormhole-william"; }
    diff -r "$what" "rx/$what" || fail "$what differs"
    ok "$what tallow -> wormhole-william"
done

# -- wormhole-william -> tallow
from_william() { # ARGS of `send`
    rm -rf rx && mkdir rx
    next_code
    bg s $WW send --code "$C" "$@"
    fg r 30 "$T" receive --wormhole --yes -o rx "$C"
    wait_pid 30 "$BG_PID"
    [ "$FG_RC" = 0 ] && [ "$WAIT_RC" = 0 ]
}
twice from_william --text "hello tallow" || { show r.err; show s.err; fail "text wormhole-william -> tallow"; }
[ "$(cat r.out)" = "hello tallow" ] || fail "tallow received '$(cat r.out)'"
ok "text wormhole-william -> tallow"

twice from_william file.bin || { show r.err; show s.err; fail "file wormhole-william -> tallow"; }
same file.bin rx/file.bin
ok "file wormhole-william -> tallow"

twice from_william tree || { show r.err; show s.err; fail "folder wormhole-william -> tallow"; }
diff -r tree rx/tree || fail "folder differs"
ok "folder wormhole-william -> tallow"
