#!/bin/sh
# clip.sh — `tallow clip` between two X servers (Xvfb) through xclip: text and a PNG put on one
# display's clipboard appear on the other's; --watch carries each new content; --stdio works
# without a display.
. "$(dirname "$0")/rooms_lib.sh"
command -v Xvfb >/dev/null && command -v xclip >/dev/null || { echo "SKIP: needs Xvfb and xclip"; exit 77; }
start_relay

# two X servers on free display numbers (Xvfb picks them and tells through -displayfd)
xserver() {
    Xvfb -displayfd 7 -screen 0 800x600x24 -nolisten tcp 7> "$W/$1.display" > "$W/$1.xlog" 2>&1 &
    track $!
    for i in $(seq 200); do [ -s "$W/$1.display" ] && break; sleep 0.05; done
    [ -s "$W/$1.display" ] || fail "Xvfb did not start"
}
xserver xa
xserver xb
DA=":$(cat "$W/xa.display")"
DB=":$(cat "$W/xb.display")"
clip_a() { DISPLAY=$DA xclip -selection clipboard "$@" 2>/dev/null; }
clip_b() { DISPLAY=$DB xclip -selection clipboard "$@" 2>/dev/null; }

# ---- text, one shot
printf 'clipboard text from A\nsecond line' | clip_a -i
DISPLAY=$DA timeout 20 "$T" clip --code 41-clip-ember-willow > "$W/s1.out" 2> "$W/s1.err" &
S=$!; track $S
DISPLAY=$DB timeout 20 "$T" clip --receive 41-clip-ember-willow > "$W/r1.out" 2> "$W/r1.err" &
R=$!; track $R
wait_exit 20 $S "clip (text, sending)"
wait_exit 20 $R "clip --receive (text)"
[ "$(clip_b -o)" = "$(printf 'clipboard text from A\nsecond line')" ] || fail "text did not arrive on B's clipboard: '$(clip_b -o)'"

# ---- a PNG image, one shot
python3 - "$W/tiny.png" <<'PY'
import struct, sys, zlib
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
w = h = 8
raw = b"".join(b"\0" + b"".join(bytes([x * 30, y * 30, 200]) for x in range(w)) for y in range(h))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
clip_a -t image/png -i "$W/tiny.png"
DISPLAY=$DA timeout 20 "$T" clip --code 42-clip-ember-willow > "$W/s2.out" 2> "$W/s2.err" &
S=$!; track $S
DISPLAY=$DB timeout 20 "$T" clip --receive 42-clip-ember-willow > "$W/r2.out" 2> "$W/r2.err" &
R=$!; track $R
wait_exit 20 $S "clip (png, sending)"
wait_exit 20 $R "clip --receive (png)"
clip_b -o -t TARGETS | grep -qx "image/png" || fail "B's clipboard does not offer image/png"
clip_b -o -t image/png > "$W/got.png"
cmp "$W/tiny.png" "$W/got.png" || fail "the PNG on B's clipboard differs"

# ---- --watch: each new content is carried over
printf 'first watched' | clip_a -i
DISPLAY=$DA "$T" clip --watch --interval 0.2 --code 43-clip-ember-willow > "$W/s3.out" 2> "$W/s3.err" &
S=$!; track $S
DISPLAY=$DB "$T" clip --receive --watch 43-clip-ember-willow > "$W/r3.out" 2> "$W/r3.err" &
R=$!; track $R
wait_grep 20 "Clipboard now holds text" "$W/r3.err" 1
[ "$(clip_b -o)" = "first watched" ] || fail "watch: first content missing on B"
printf 'second watched' | clip_a -i
wait_grep 20 "Clipboard now holds text" "$W/r3.err" 2
[ "$(clip_b -o)" = "second watched" ] || fail "watch: second content missing on B"
clip_a -t image/png -i "$W/tiny.png"
wait_grep 20 "Clipboard now holds a PNG image" "$W/r3.err" 1
clip_b -o -t image/png | cmp - "$W/tiny.png" || fail "watch: the PNG differs on B"
kill $S $R 2>/dev/null || true

# ---- --stdio (no display at all)
printf 'piped through' | env -u DISPLAY -u WAYLAND_DISPLAY timeout 20 "$T" clip --code 44-clip-ember-willow 2> "$W/s4.err" &
S=$!; track $S
env -u DISPLAY -u WAYLAND_DISPLAY timeout 20 "$T" clip --receive 44-clip-ember-willow > "$W/r4.out" 2> "$W/r4.err" &
R=$!; track $R
wait_exit 20 $S "clip (stdio, sending)"
wait_exit 20 $R "clip --receive (stdio)"
[ "$(cat "$W/r4.out")" = "piped through" ] || fail "stdio: got '$(cat "$W/r4.out")'"
echo "clip ok"
