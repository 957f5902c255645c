#!/usr/bin/env bash
# ux item 2: `echo hi | tallow send --text -` + `tallow receive -y CODE` over the direct path
# reported "the peer left" (exit 1) about 40 % of the time although the text arrived: the
# receiver closes QUIC and then leaves the relay, and the sender could read the relay's "left"
# before the receiver's TransferComplete waiting on the QUIC socket. Twenty runs (it failed 1 in 10 to 6 in 16 before), every one must
# end with exit 0 on both sides, over the direct path, with the text delivered.
set -eu
. "$(dirname "$0")/lib.sh"
unset TALLOW_NO_P2P
start_relay
runs=20
for i in $(seq 1 $runs); do
    printf 'hi %s\n' "$i" >"$E2E_TMP/in"
    start_send t$i --allow-loopback --text - <"$E2E_TMP/in"
    run_recv t$i 30 --allow-loopback -y "$CODE"
    finish_send t$i 30
    both_ok t$i
    [ "$(cat "$E2E_TMP/t$i.recv.out")" = "hi $i" ] || { show "$E2E_TMP/t$i.recv.out"; fail "run $i: text not delivered"; }
    grep -q "over the direct" "$E2E_TMP/t$i.send.err" ||
        { show "$E2E_TMP/t$i.send.err"; fail "run $i: did not go over the direct path (the test needs it)"; }
done
ok "$runs of $runs text sends over the direct path ended with exit 0 on both sides"
