# tests/workflows/lib.sh — what the workflow tests share: a work directory, a relay on a free
# port, bounded waits, and cleanup of exactly the processes the test started.
set -eu
T=${TALLOW_BIN:?TALLOW_BIN must point at the tallow runner}
W=$(mktemp -d /tmp/tallow-wf.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT INT TERM

fail() { echo "FAIL: $*"; for f in "$W"/*.err "$W"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done; exit 1; }
track() { PIDS="$PIDS $1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_relay: a relay on 127.0.0.1:$RELAY_PORT, log in $W/relay.log; exports TALLOW_RELAY.
start_relay() {
    RELAY_PORT=$(free_port)
    TALLOW_LOG=info "$T" relay --listen 127.0.0.1:$RELAY_PORT "$@" 2> "$W/relay.log" &
    RELAY_PID=$!
    track $RELAY_PID
    for i in $(seq 100); do ss -ltn | grep -q "127.0.0.1:$RELAY_PORT " && break; sleep 0.05; done
    ss -ltn | grep -q "127.0.0.1:$RELAY_PORT " || fail "relay did not start"
    export TALLOW_RELAY=127.0.0.1:$RELAY_PORT
}

# wait_grep SECONDS PATTERN FILE [COUNT]: until FILE has COUNT (default 1) lines matching
# the fixed string PATTERN.
wait_grep() {
    _n=$(( $1 * 20 )); _want=${4:-1}
    while [ $_n -gt 0 ]; do
        _c=$(grep -cF -- "$2" "$3" 2>/dev/null || true)
        [ "${_c:-0}" -ge "$_want" ] && return 0
        sleep 0.05; _n=$((_n - 1))
    done
    fail "timed out waiting for '$2' in $3"
}

# wait_exit SECONDS PID NAME: the process ends within the bound with status 0.
wait_exit() {
    _n=$(( $1 * 20 ))
    while kill -0 "$2" 2>/dev/null && [ $_n -gt 0 ]; do sleep 0.05; _n=$((_n - 1)); done
    kill -0 "$2" 2>/dev/null && fail "$3 still running after $1 s"
    _st=0; wait "$2" || _st=$?
    [ $_st = 0 ] || fail "$3 exited with status $_st"
}
