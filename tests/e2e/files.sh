#!/usr/bin/env bash
# e2e files: a relay, a sender and a receiver as separate processes. An empty file, a 1-byte file,
# a 100 MiB file and a folder tree (nested, empty and non-ASCII folders) arrive byte-identical,
# with modes and mtimes kept; --text TEXT and --text - (stdin) arrive on the receiver's stdout.
set -eu
. "$(dirname "$0")/lib.sh"
start_relay

src=$E2E_TMP/src dest=$E2E_TMP/dest
mkdir -p "$src" "$dest"
: >"$src/empty"
printf 'x' >"$src/one"
mkrand "$src/big.bin" $((100 * 1024 * 1024))
chmod 0600 "$src/empty"; chmod 0755 "$src/one"; chmod 0640 "$src/big.bin"

t=$src/tree
mkdir -p "$t/a/b/c" "$t/empty dir" "$t/café é/日本語" "$t/with spaces/inner empty"
printf 'deep\n' >"$t/a/b/c/deep.txt"
printf 'accent\n' >"$t/café é/é.txt"
printf '日本語のテキスト\n' >"$t/café é/日本語/ファイル 名.txt"
mkrand "$t/with spaces/some file.bin" 300000
chmod 0600 "$t/a/b/c/deep.txt"; chmod 0755 "$t/café é/é.txt"; chmod 0640 "$t/with spaces/some file.bin"
chmod 0700 "$t/a/b"; chmod 0750 "$t/café é/日本語"; chmod 0711 "$t/empty dir"
# distinct, old mtimes on every file and folder (deepest first, so parents keep theirs)
i=0
while IFS= read -r -d '' p; do
    i=$((i + 1))
    touch -h -d "2021-03-$(( (i % 27) + 1 )) 10:$(( i % 60 )):17.123456789" "$p"
done < <(find "$src" -mindepth 1 -depth -print0)

start_send files --json "$src/empty" "$src/one" "$src/big.bin" "$t"
start=$(date +%s%N)
run_recv files 60 --yes --json -o "$dest" "$CODE"
finish_send files 30
end=$(date +%s%N)
both_ok files
note "empty + 1 B + 100 MiB + tree in $(( (end - start) / 1000000 )) ms (sender: $(json_field "$E2E_TMP/files.send.out" sent seconds) s in the engine)"

# contents: every file byte-identical, nothing missing, nothing extra
cmp "$src/empty" "$dest/empty" || fail "empty file differs"
cmp "$src/one" "$dest/one" || fail "1-byte file differs"
cmp "$src/big.bin" "$dest/big.bin" || fail "100 MiB file differs"
diff -r "$t" "$dest/tree" || fail "folder tree differs"
[ -d "$dest/tree/empty dir" ] && [ -d "$dest/tree/with spaces/inner empty" ] || fail "empty folders missing"
[ -z "$(find "$dest" -name '*.tallow-part')" ] || fail "stray .tallow-part files left"
ok "contents identical (cmp, diff -r), empty folders present, no part files"

# modes and mtimes of every file and folder (nanoseconds as the manifest carries them)
for f in empty one big.bin; do
    [ "$(stat -c '%a %Y' "$src/$f")" = "$(stat -c '%a %Y' "$dest/$f")" ] ||
        fail "$f: mode/mtime $(stat -c '%a %Y' "$src/$f") became $(stat -c '%a %Y' "$dest/$f")"
done
tree_stat "$t" >"$E2E_TMP/want.stat"
tree_stat "$dest/tree" >"$E2E_TMP/got.stat"
diff "$E2E_TMP/want.stat" "$E2E_TMP/got.stat" || fail "modes or mtimes of the tree differ"
[ "$(stat -c '%a %Y' "$t")" = "$(stat -c '%a %Y' "$dest/tree")" ] || fail "top folder mode/mtime differs"
ok "modes and mtimes kept ($(wc -l <"$E2E_TMP/want.stat") tree entries + 3 files)"

# the receiver's summary counts what the sender offered
files=$(json_field "$E2E_TMP/files.recv.out" received files)
[ "$files" = 7 ] || fail "receiver reports $files files, expected 7"

# text from the command line
start_send text1 --text "hello"
run_recv text1 30 --yes "$CODE"
finish_send text1 30
both_ok text1
[ "$(cat "$E2E_TMP/text1.recv.out")" = "hello" ] || fail "--text hello arrived as '$(cat "$E2E_TMP/text1.recv.out")'"
ok "--text hello arrived on stdout"

# text from stdin: several lines, UTF-8, a trailing newline, sent byte-exact
printf 'first line\nsecond é 日本語\n\ttabbed\n' >"$E2E_TMP/stdin.txt"
start_send text2 --text - <"$E2E_TMP/stdin.txt"
run_recv text2 30 --yes "$CODE"
finish_send text2 30
both_ok text2
cmp "$E2E_TMP/stdin.txt" "$E2E_TMP/text2.recv.out" || fail "--text - arrived different"
ok "--text - (stdin) arrived byte-exact on stdout"
