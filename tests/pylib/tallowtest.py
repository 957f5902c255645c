"""tests/pylib/tallowtest.py — small helpers the Python end-to-end tests share (abuse, secrets,
faults, hostile). Imported after `sys.path.insert(0, <this folder>)`."""
import hashlib
import shutil
import socket
import sys

ROOM_SALT = b"tallow-nameplate-v2"  # core/codephrase.c, public by design


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def room_id(code):
    """The room id (32 bytes) the relay sees for a code: keyed BLAKE2b of the number alone."""
    n_word = str(int(code.split("-")[0]))
    data = len(n_word).to_bytes(8, "little") + n_word.encode()
    return hashlib.blake2b(data, digest_size=32, key=ROOM_SALT).digest()


def finish(name, fails, work, ok_text, bad_text="failures"):
    """Prints each failure and the verdict, removes the work folder on success, exits 1 or 0."""
    for f in fails:
        print("FAIL:", f)
    print(f"{name}:", ok_text if not fails else f"{len(fails)} {bad_text} (logs in {work})")
    if not fails:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if fails else 0)
