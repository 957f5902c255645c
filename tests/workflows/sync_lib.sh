# tests/workflows/sync_lib.sh — shared by the sync/watch/example workflow tests: a temporary
# folder removed on exit, processes killed on exit, a relay on a free loopback port, and bounded
# polls. Source it; it sets T (the tallow binary), TMP, and after start_relay, TALLOW_RELAY.
set -u
T=${TALLOW_BIN:?TALLOW_BIN not set}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tallow-wf.XXXXXX")
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export TALLOW_NO_P2P=1

fail() {
    echo "FAIL: $*" >&2
    for f in "$TMP"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }; done
    exit 1
}

# bg NAME cmd...: runs cmd in the background, output in $TMP/NAME.log; sets LAST_PID
bg() {
    local name=$1; shift
    "$@" >"$TMP/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_for SECONDS DESCRIPTION cmd...: polls cmd every 0.1 s until it succeeds or time runs out
wait_for() {
    local secs=$1 what=$2; shift 2
    local end=$((SECONDS + secs))
    until "$@"; do
        [ $SECONDS -ge $end ] && fail "timed out after ${secs}s waiting for: $what"
        sleep 0.1
    done
}

# wait_pid SECONDS PID: waits for PID to exit (bounded); its exit status in WAIT_RC
wait_pid() {
    local secs=$1 pid=$2 end=$((SECONDS + $1))
    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -ge $end ] && fail "process $pid still running after ${secs}s"
        sleep 0.05
    done
    wait "$pid"; WAIT_RC=$?
}

start_relay() {
    local try port
    for try in 1 2 3 4 5 6 7 8; do
        port=$((20000 + RANDOM % 40000))
        bg relay "$T" relay --listen "127.0.0.1:$port"
        local pid=$LAST_PID
        local end=$((SECONDS + 5))
        while [ $SECONDS -lt $end ]; do
            grep -q "listening" "$TMP/relay.log" 2>/dev/null && { export TALLOW_RELAY="127.0.0.1:$port"; RELAY_PID=$pid; return 0; }
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill "$pid" 2>/dev/null
    done
    fail "could not start a relay"
}

# a code phrase of the built-in word list, unique per call
new_code() { "$T" run /dev/stdin <<<'print((require "tallow.code").generate(3))'; }

# sync_round ARGS...: one `tallow sync` round $SRC -> $DST (a fresh code, ARGS for the sender);
# sender output in sync-s.log, receiver in sync-r.log; both must exit 0 (the receiver within
# SYNC_WAIT seconds, default 60).
sync_round() {
    local code
    code=$(new_code)
    bg sync-s "$T" sync --code "$code" "$@" "$SRC"
    local spid=$LAST_PID
    bg sync-r "$T" sync --receive "$code" "$DST"
    local rpid=$LAST_PID
    wait_pid "${SYNC_WAIT:-60}" "$rpid"; [ "$WAIT_RC" -eq 0 ] || fail "receiver exited $WAIT_RC"
    wait_pid 30 "$spid"; [ "$WAIT_RC" -eq 0 ] || fail "sender exited $WAIT_RC"
}
