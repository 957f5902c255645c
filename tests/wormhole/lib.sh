# tests/wormhole/lib.sh — shared by the wormhole interop tests: tests/e2e/lib.sh (temp dir,
# cleanup, free ports, bounded waits) plus a local magic-wormhole mailbox server and transit relay
# (the Debian packages), on loopback only.
. "$(dirname "$0")/../e2e/lib.sh"
unset TALLOW_NO_P2P # each case says whether it goes direct
command -v wormhole >/dev/null || fail "magic-wormhole is not installed (make deps)"
command -v twist3 >/dev/null || fail "twist3 (python3-twisted) is not installed (make deps)"
PY_WORMHOLE=wormhole

# start_wormhole_servers [TRANSIT_PORT] : mailbox on a free port, transit relay on TRANSIT_PORT or a
# free one. Sets MAILBOX_URL, TRANSIT, and the TALLOW_WORMHOLE_* variables; PYR holds the matching
# options for the Python client.
start_wormhole_servers() {
    local mp tp
    mp=$(free_port)
    tp=${1:-$(free_port)}
    twist3 wormhole-mailbox --port "tcp:$mp:interface=127.0.0.1" --channel-db "$E2E_TMP/mailbox.sqlite" \
        >"$E2E_TMP/mailbox.log" 2>&1 &
    track $!
    twist3 transitrelay --port "tcp:$tp:interface=127.0.0.1" >"$E2E_TMP/transit.log" 2>&1 &
    track $!
    wait_for 20 sh -c "ss -Htln 'sport = :$mp' | grep -q LISTEN" || { show "$E2E_TMP/mailbox.log"; fail "mailbox server did not start"; }
    wait_for 20 sh -c "ss -Htln 'sport = :$tp' | grep -q LISTEN" || { show "$E2E_TMP/transit.log"; fail "transit relay did not start"; }
    MAILBOX_URL=ws://127.0.0.1:$mp/v1
    TRANSIT=tcp:127.0.0.1:$tp
    export TALLOW_WORMHOLE_RELAY=$MAILBOX_URL TALLOW_WORMHOLE_TRANSIT=$TRANSIT
    PYR="--relay-url $MAILBOX_URL --transit-helper $TRANSIT"
}

# A code for this run: a fresh nameplate number each time, in $C (the mailbox is ours alone).
WH_N=100
next_code() { WH_N=$((WH_N + 1)); C="$WH_N-purple-sausages"; }

# bg TAG CMD... : runs CMD in the background (stdin from /dev/null), output in $E2E_TMP/TAG.out/.err.
# In a process group of its own, killed whole at exit: `timeout` or `sh -c` wrappers must not
# leave their child behind.
WH_GROUPS=""
bg() {
    local tag=$1; shift
    setsid "$@" </dev/null >"$E2E_TMP/$tag.out" 2>"$E2E_TMP/$tag.err" &
    BG_PID=$!
    track "$BG_PID"
    WH_GROUPS="$WH_GROUPS $BG_PID"
}
wh_cleanup() {
    local rc=$? g
    set +e
    for g in $WH_GROUPS; do kill -9 -- "-$g" 2>/dev/null; done
    (exit "$rc")
    e2e_cleanup
}
trap wh_cleanup EXIT

# fg TAG SECS CMD... : runs CMD bounded by SECS; sets FG_RC
fg() {
    local tag=$1 secs=$2; shift 2
    FG_RC=0
    timeout -s KILL "$secs" "$@" </dev/null >"$E2E_TMP/$tag.out" 2>"$E2E_TMP/$tag.err" || FG_RC=$?
}

# expect_rc TAG WANT GOT : fails with both sides' output when GOT != WANT
expect_rc() {
    if [ "$3" != "$2" ]; then
        for f in "$E2E_TMP"/*.err; do show "$f"; done
        fail "$1: exit status $3, expected $2"
    fi
}

# same FILE_A FILE_B : equal SHA-256
same() {
    [ "$(sha256sum <"$1")" = "$(sha256sum <"$2")" ] || fail "$2 differs from $1"
}
