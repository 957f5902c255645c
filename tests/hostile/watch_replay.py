#!/usr/bin/env python3
"""tests/hostile/watch_replay.py — the replayed watch batch. A relay that records what it
forwards to a `watch --receive` mirror replays, verbatim, every frame of the first batches after
twelve newer batches have gone by (with the old 8-key cache those transfer keys were derived
again at record 0 and the old batch authenticated: the mirror rolled the file back). Now: the
replay is refused (a decryption error, then the watch reconnects), the mirror keeps the newest
content, and a change made after the replay still arrives. Real relay, sender and receiver."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from tallowtest import finish, free_port  # noqa: E402

T = os.path.abspath(os.environ.get("TALLOW_BIN", "build/bin/tallow"))


class Recorder:
    """Proxy for the mirror's relay connection: keeps every sealed frame sent to the mirror."""

    def __init__(self, relay_port):
        self.relay_port = relay_port
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(4)
        self.port = self.ls.getsockname()[1]
        self.frames, self.lock, self.down = [], threading.Lock(), None
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.relay_port))
            self.down = c
            threading.Thread(target=self.pipe, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self.pipe, args=(u, c, True), daemon=True).start()

    def pipe(self, src, dst, record):
        buf = b""
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                if not record:
                    dst.sendall(b)
                    continue
                buf += b
                while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
                    n = 4 + int.from_bytes(buf[:4], "big")
                    fr, buf = buf[:n], buf[n:]
                    with self.lock:
                        if fr[4] == 1 and fr[5] == 2:  # a sealed transfer frame
                            self.frames.append(fr)
                        dst.sendall(fr)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def replay(self, count):
        with self.lock:
            old = self.frames[:count]
            self.down.sendall(b"".join(old))
        return len(old)


def wait_for(what, fn, secs=15):
    end = time.time() + secs
    while time.time() < end:
        if fn():
            return True
        time.sleep(0.05)
    return False


def main():
    work = tempfile.mkdtemp(prefix="tallow-watch-replay.")
    src, dst = os.path.join(work, "src"), os.path.join(work, "dst")
    os.makedirs(src)
    os.makedirs(dst)
    port = free_port()
    env = dict(os.environ, TALLOW_NO_P2P="1", TALLOW_LOG="info")
    procs, fails = [], []
    relay = subprocess.Popen([T, "relay", "--listen", f"127.0.0.1:{port}"], env=env,
                             stderr=open(os.path.join(work, "relay.log"), "wb"))
    procs.append(relay)
    f = os.path.join(src, "f.txt")
    g = os.path.join(dst, "f.txt")

    def put(text):
        with open(f + ".tmp", "w") as o:
            o.write(text)
        os.rename(f + ".tmp", f)

    def has(text):
        try:
            return open(g).read() == text
        except OSError:
            return False
    try:
        wait_for("relay", lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 5)
        rec = Recorder(port)
        code = "44-replay-walnut-sparrow"
        put("version 1\n")
        snd = subprocess.Popen([T, "watch", "--debounce", "50", "--code", code, src],
                               env=dict(env, TALLOW_RELAY=f"127.0.0.1:{port}"),
                               stdout=subprocess.DEVNULL,
                               stderr=open(os.path.join(work, "send.log"), "wb"))
        procs.append(snd)
        rcv = subprocess.Popen([T, "watch", "--receive", code, dst],
                               env=dict(env, TALLOW_RELAY=f"127.0.0.1:{rec.port}"),
                               stdout=subprocess.DEVNULL,
                               stderr=open(os.path.join(work, "recv.log"), "wb"))
        procs.append(rcv)
        if not wait_for("first sync", lambda: has("version 1\n")):
            fails.append("the first version never arrived")
        first = len(rec.frames)  # the first sync's frames: the batch that will be replayed
        for v in range(2, 14):  # twelve more batches, each its own transfer id
            put(f"version {v}\n")
            if not wait_for(f"version {v}", lambda: has(f"version {v}\n")):
                fails.append(f"version {v} never arrived")
                break
        n = rec.replay(first)
        print(f"replayed {n} frames of the first sync after 12 newer batches")
        time.sleep(2)
        if not has("version 13\n"):
            fails.append(f"the mirror changed after the replay: {open(g).read()!r}")
        put("version 14\n")
        if not wait_for("after the replay", lambda: has("version 14\n"), 30):
            fails.append("a change after the replay never arrived (no recovery)")
        log = open(os.path.join(work, "recv.log")).read()
        if "decryption failed" not in log:
            fails.append("the mirror said nothing about the replayed frames")
        print("mirror:", [l for l in log.splitlines() if "decryption" in l][:1])
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    finish("watch_replay", fails, work, "the replayed batch was refused; the mirror kept the newest")


if __name__ == "__main__":
    main()
