# tests/ux/lib.sh — shared by the ux tests: tests/e2e/lib.sh (temp dir, cleanup, relay, bounded
# waits) plus a pseudo-terminal runner for what only shows on a terminal.
UX_DIR=$(cd "$(dirname "$0")" && pwd)
. "$UX_DIR/../e2e/lib.sh"

# in_tty COLS OUTFILE SECS COMMAND... : runs COMMAND on a pseudo-terminal COLS columns wide
# (stdin, stdout and stderr all on it, like a user's terminal), records everything it printed
# into OUTFILE and its exit status into $TTY_RC; killed after SECS. Input for it: $TTY_INPUT
# (written after $TTY_INPUT_AFTER seconds, default 1).
in_tty() {
    local cols=$1 out=$2 secs=$3; shift 3
    TTY_RC=0
    python3 "$UX_DIR/pty_run.py" "$cols" "$out" "$secs" "$@" || TTY_RC=$?
}

# as_nobody COMMAND... : runs COMMAND without the power to ignore file modes when we are root
# (root reads any file, so unreadable files need a process that cannot): root without
# CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, whose own files' modes then apply to it. (Another
# user would not do: in a freshly debootstrapped root, / itself is 0700.) As ourselves otherwise.
as_nobody() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --bounding-set=-dac_override,-dac_read_search "$@"
    else
        "$@"
    fi
}

# no_code FILE : fails if FILE shows a code phrase (the pre-flight must stop before it)
no_code() {
    if grep -q "Code is" "$1"; then show "$1"; fail "a code was shown although the pre-flight failed"; fi
    if grep -q "stack traceback" "$1"; then show "$1"; fail "a Lua traceback"; fi
}
