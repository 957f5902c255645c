"""tests/pylib/tallowtest.py — small helpers the Python end-to-end tests share (abuse, secrets,
faults, hostile; the relay's wire protocol is in relaywire.py). Imported after
`sys.path.insert(0, <this folder>)`."""
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time

ROOM_SALT = b"tallow-nameplate-v2"  # core/crypto/codephrase.c, public by design



def wait_until(cond, limit, step=0.05):
    """Polls cond() every step seconds for at most limit seconds; its last answer."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_listening(host, port, secs=5.0, proc=None):
    """True once a TCP connection to host:port succeeds (tried every 50 ms for secs); False at
    once if proc (the server's Popen, when given) has exited."""
    end = time.monotonic() + secs
    while time.monotonic() < end and (proc is None or proc.poll() is None):
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def lo_with(*addrs):
    """In a network namespace of the test's own (unshare -n, root): lo up, with these IPv6
    addresses (prefix included, no DAD). Without root: FAIL, exit 1."""
    if os.geteuid() != 0:
        print("FAIL: needs root (a network namespace)")
        sys.exit(1)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for a in addrs:
        subprocess.run(["ip", "-6", "addr", "add", a, "dev", "lo", "nodad"], check=True)


def room_id(code):
    """The room id (32 bytes) the relay sees for a code: keyed BLAKE2b of the number alone."""
    n_word = str(int(code.split("-")[0]))
    data = len(n_word).to_bytes(8, "little") + n_word.encode()
    return hashlib.blake2b(data, digest_size=32, key=ROOM_SALT).digest()


def finish(name, fails, work, ok_text, bad_text="failures"):
    """Prints each failure and the verdict, removes the work folder (if any) on success, exits 1
    or 0."""
    for f in fails:
        print("FAIL:", f)
    logs = f" (logs in {work})" if work else ""
    print(f"{name}:", ok_text if not fails else f"{len(fails)} {bad_text}{logs}")
    if not fails and work:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if fails else 0)
