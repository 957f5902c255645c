# tests/e2e/lib.sh — shared by the end-to-end tests: real relay, sender and receiver processes on
# loopback. Sourced by each test (bash, set -eu). CTest passes the runner as $TALLOW_BIN.
# Gives: a private temp dir ($E2E_TMP) and cleanup on any exit, free ports, a relay, bounded waits.

: "${TALLOW_BIN:?TALLOW_BIN must point at build/bin/tallow}"
T=$TALLOW_BIN
[ -x "$T" ] || { echo "FAIL: $T is not executable" >&2; exit 1; }
E2E_NAME=$(basename "$0" .sh)
E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/tallow-e2e-$E2E_NAME.XXXXXX")
E2E_PIDS=""
export TALLOW_NO_P2P=1     # these tests are about the relay path
unset TALLOW_CODE TALLOW_RELAY_PASSWORD TALLOW_PROXY

e2e_cleanup() {
    local rc=$?
    set +e
    for p in $E2E_PIDS; do kill -9 "$p" 2>/dev/null; done
    for p in $E2E_PIDS; do wait "$p" 2>/dev/null; done
    if [ "$rc" -ne 0 ] && [ -n "${E2E_KEEP:-}" ]; then
        echo "kept $E2E_TMP" >&2
    else
        rm -rf "$E2E_TMP"
    fi
    exit "$rc"
}
trap e2e_cleanup EXIT
trap 'exit 130' INT TERM HUP

fail() { echo "FAIL [$E2E_NAME]: $*" >&2; exit 1; }
ok() { echo "ok   [$E2E_NAME]: $*"; }
note() { echo "     [$E2E_NAME]: $*"; }

# track PID so cleanup kills it
track() { E2E_PIDS="$E2E_PIDS $1"; }

# dump a file to stderr (for failure context)
show() { echo "---- $1" >&2; cat "$1" >&2 2>/dev/null || true; }

# A TCP+UDP port nobody on this machine listens on (the relay also wants it for STUN on UDP).
free_port() {
    local p i
    for i in $(seq 1 100); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        if ! ss -Htanu 2>/dev/null | awk '{print $5}' | grep -q ":$p\$"; then
            echo "$p"
            return 0
        fi
    done
    fail "no free port found"
}

# wait_for SECONDS COMMAND... : polls COMMAND every 50 ms until it succeeds, fails after SECONDS
wait_for() {
    local secs=$1; shift
    local deadline=$(( $(date +%s%N) + secs * 1000000000 ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s%N)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# wait_pid SECONDS PID : waits for PID to exit, sets $WAIT_RC; fails the test on timeout
wait_pid() {
    local secs=$1 pid=$2
    if ! wait_for "$secs" sh -c "! kill -0 $pid"; then
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        fail "process $pid still running after ${secs}s"
    fi
    WAIT_RC=0
    wait "$pid" || WAIT_RC=$?
}

# start_relay [RELAY OPTIONS...] : a relay on a free loopback port, logging room events to $E2E_TMP/relay.log.
# Sets RELAY (host:port), RELAY_PORT, RELAY_PID, RELAY_LOG.
start_relay() {
    local try
    RELAY_LOG=$E2E_TMP/relay.log
    for try in 1 2 3 4 5; do
        RELAY_PORT=$(free_port)
        RELAY=127.0.0.1:$RELAY_PORT
        TALLOW_LOG=info "$T" relay --listen "$RELAY" "$@" >"$RELAY_LOG" 2>&1 &
        RELAY_PID=$!
        track "$RELAY_PID"
        if wait_for 10 relay_listening; then
            export TALLOW_RELAY=$RELAY
            return 0
        fi
        kill -9 "$RELAY_PID" 2>/dev/null || true
        wait "$RELAY_PID" 2>/dev/null || true
    done
    show "$RELAY_LOG"
    fail "relay did not start"
}
relay_listening() {
    kill -0 "$RELAY_PID" && ss -Htln "sport = :$RELAY_PORT" | grep -q LISTEN
}

# Bytes the relay forwarded in rooms closed so far (sum over "N bytes forwarded" log lines).
relay_forwarded() {
    grep -o '[0-9]* bytes forwarded' "$RELAY_LOG" | awk '{s += $1} END {print s + 0}'
}

# A fresh code phrase for this test run (unique, so parallel tests never share a room).
new_code() {
    "$T" run /dev/stdin <<'LUA'
print(require("tallow").code.generate(3))
LUA
}

# json_field FILE EVENT FIELD : the numeric FIELD of the last {"event":"EVENT"...} line of FILE
json_field() {
    grep "\"event\":\"$2\"" "$1" | tail -n 1 | grep -o "\"$3\":[0-9.]*" | head -n 1 | cut -d: -f2
}

# Random file of N bytes
mkrand() { head -c "$2" /dev/urandom >"$1"; }

# stat fingerprint of a tree: relative path, type, mode, mtime (seconds) — one line each
tree_stat() {
    (cd "$1" && find . -mindepth 1 -printf '%P\t%y\t%m\t%T@\n' | LC_ALL=C sort)
}

# start_send TAG ARGS... : a sender in the background with a fresh code ($CODE), its stdout in
# $E2E_TMP/TAG.send.out and stderr in TAG.send.err; sets SEND_PID (the tallow process itself, so
# a kill reaches it; finish_send bounds the wait). Stdin is inherited.
start_send() {
    local tag=$1; shift
    CODE=$(new_code)
    "$T" send --code "$CODE" "$@" <&0 >"$E2E_TMP/$tag.send.out" 2>"$E2E_TMP/$tag.send.err" &
    SEND_PID=$!
    track "$SEND_PID"
}

# run_recv TAG SECS ARGS... : a receiver in the foreground with the code given (or $CODE),
# bounded by SECS; sets RECV_RC; stdout/stderr in $E2E_TMP/TAG.recv.out / .recv.err
run_recv() {
    local tag=$1 secs=$2; shift 2
    RECV_RC=0
    timeout -s KILL "$secs" "$T" receive "$@" </dev/null >"$E2E_TMP/$tag.recv.out" 2>"$E2E_TMP/$tag.recv.err" || RECV_RC=$?
}

# finish_send TAG SECS : waits for the sender; sets SEND_RC
finish_send() {
    wait_pid "$2" "$SEND_PID"
    SEND_RC=$WAIT_RC
}

# both_ok TAG : fails unless sender and receiver exited 0, printing their output
both_ok() {
    if [ "$SEND_RC" -ne 0 ] || [ "$RECV_RC" -ne 0 ]; then
        show "$E2E_TMP/$1.send.out"; show "$E2E_TMP/$1.send.err"
        show "$E2E_TMP/$1.recv.out"; show "$E2E_TMP/$1.recv.err"
        show "$RELAY_LOG"
        fail "$1: sender exited $SEND_RC, receiver exited $RECV_RC"
    fi
}
