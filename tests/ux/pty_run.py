"""tests/ux/pty_run.py COLS OUTFILE SECS COMMAND... — runs COMMAND on a pseudo-terminal COLS
columns wide (stdin, stdout and stderr on it, as in a user's terminal) and records every byte it
prints into OUTFILE. Input from the environment: TTY_INPUT (written TTY_INPUT_AFTER seconds after
the start, default 1; Python escapes such as \\n, \\t, \\x03 understood), TTY_INPUT2 (TTY_INPUT2_AFTER later).
Exits with the command's status (128+N for a signal), 124 when SECS ran out (it is killed)."""
import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time

cols, out, secs = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
cmd = sys.argv[4:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
start = time.monotonic()
inputs = []
for name in ("TTY_INPUT", "TTY_INPUT2"):
    if name in os.environ:
        data = os.environ[name].encode().decode("unicode_escape").encode("latin-1")
        inputs.append((float(os.environ.get(name + "_AFTER", "1")), data))
buf = b""
status = None
while True:
    now = time.monotonic() - start
    while inputs and inputs[0][0] <= now:
        os.write(fd, inputs.pop(0)[1])
    if now > secs:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        status = 124
        break
    r, _, _ = select.select([fd], [], [], 0.05)
    if r:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            _, st = os.waitpid(pid, 0)
            status = os.waitstatus_to_exitcode(st)
            status = 128 - status if status < 0 else status
            break
        buf += chunk
with open(out, "wb") as f:
    f.write(buf)
sys.exit(status)
