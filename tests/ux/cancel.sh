#!/usr/bin/env bash
# ux item 3: Ctrl-C on one side froze the other side's bar for ~30 s before "the peer is gone",
# and rerunning with the same code gave "room full" for 30 s. Now a peer that gets SIGINT or
# SIGTERM says goodbye: the other side stops with "the sender cancelled" / "the receiver
# cancelled", and the room is freed, so the same code works again at once.
set -eu
. "$(dirname "$0")/lib.sh"
start_relay
cd "$E2E_TMP"
truncate -s 8G big.bin   # sparse: nothing on disk, read fast, far too big to finish before the signal

# start_pair TAG : sender and receiver (both in the background) of big.bin, waits until bytes
# arrive; sets SEND_PID, RECV_PID
start_pair() {
    start_send "$1" big.bin
    "$T" receive --yes -o "$E2E_TMP/dest-$1" "$CODE" </dev/null >"$1.recv.out" 2>"$1.recv.err" &
    RECV_PID=$!
    track "$RECV_PID"
    # mid-way: more than 4 MiB arrived
    wait_for 20 sh -c "[ \$(du -sk $E2E_TMP/dest-$1 2>/dev/null | cut -f1) -gt 4096 ]" ||
        { show "$1.recv.err"; fail "$1: no bytes arrived"; }
}

# the sender is cancelled mid-way; the receiver must stop by itself (no 30 s wait for the relay's
# grace period: the bound below is well under it)
start_pair s
kill -INT "$SEND_PID"
wait_pid 20 "$SEND_PID"; SEND_RC=$WAIT_RC
wait_pid 15 "$RECV_PID"; RECV_RC=$WAIT_RC
rm -rf "$E2E_TMP/dest-s"
[ "$SEND_RC" -eq 130 ] || { show s.send.err; fail "cancelled sender exited $SEND_RC, not 130"; }
grep -q "cancelled; the other side was told" s.send.err || { show s.send.err; fail "sender does not say it cancelled"; }
[ "$RECV_RC" -ne 0 ] || fail "receiver exited 0 after the sender cancelled"
grep -q "tallow: the sender cancelled" s.recv.err || { show s.recv.err; fail "receiver was not told 'the sender cancelled'"; }
ok "SIGINT to the sender mid-way: sender exit 130, receiver exit $RECV_RC: $(tail -n 1 s.recv.err)"

# the receiver is cancelled (SIGTERM) mid-way
start_pair r
kill -TERM "$RECV_PID"
wait_pid 20 "$RECV_PID"; RECV_RC=$WAIT_RC
wait_pid 15 "$SEND_PID"; SEND_RC=$WAIT_RC
rm -rf "$E2E_TMP/dest-r"
[ "$RECV_RC" -eq 143 ] || { show r.recv.err; fail "cancelled receiver exited $RECV_RC, not 143"; }
[ "$SEND_RC" -ne 0 ] || fail "sender exited 0 after the receiver cancelled"
grep -q "tallow: the receiver cancelled" r.send.err || { show r.send.err; fail "sender was not told 'the receiver cancelled'"; }
ok "SIGTERM to the receiver mid-way: receiver exit 143, sender exit $SEND_RC: $(tail -n 1 r.send.err)"

# a sender waiting for its receiver is cancelled; the same code is reused at once
echo small >small.txt
code=$(new_code)
"$T" send --code "$code" small.txt >w1.out 2>w1.err &
pid=$!; track $pid
wait_for 10 grep -q "room" "$RELAY_LOG" || true
sleep 0.3
kill -INT $pid
wait_pid 10 $pid
[ "$WAIT_RC" -eq 130 ] || { show w1.err; fail "waiting sender: exit $WAIT_RC, not 130"; }
"$T" send --code "$code" small.txt >w2.out 2>w2.err &
SEND_PID=$!; track $SEND_PID
run_recv w2 20 --yes -o "$E2E_TMP/dest-w2" "$code"
finish_send w2 20
cp w2.out "$E2E_TMP/w2.send.out"; cp w2.err "$E2E_TMP/w2.send.err"
both_ok w2
cmp small.txt dest-w2/small.txt || fail "reused code: file not received"
ok "a cancelled sender's code works again at once (no 'room full')"
