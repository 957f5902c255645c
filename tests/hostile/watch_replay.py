#!/usr/bin/env python3
"""tests/hostile/watch_replay.py — the replayed watch batch. A relay that records what it
forwards to a `watch --receive` mirror replays, verbatim, every frame of the first batches after
twelve newer batches have gone by (with the old 8-key cache those transfer keys were derived
again at record 0 and the old batch authenticated: the mirror rolled the file back). Now: the
replay is refused (a decryption error, then the watch reconnects), the mirror keeps the newest
content, and a change made after the replay still arrives. Real relay, sender and receiver."""
import os
import subprocess
import sys
import tempfile
import threading
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from relaywire import Proxy, frames, pipe, spawn  # noqa: E402
from tallowtest import finish, free_port, wait_listening  # noqa: E402

T = os.path.abspath(os.environ.get("TALLOW_BIN", "build/bin/tallow"))


class Recorder(Proxy):
    """Proxy for the mirror's relay connection: keeps every sealed frame sent to the mirror."""

    def __init__(self, relay_port):
        self.frames, self.lock, self.down = [], threading.Lock(), None
        super().__init__(relay_port)

    def accepted(self, c):
        u = self.upstream()
        self.down = c
        spawn(pipe, c, u)
        spawn(frames, u, c, self.record, lambda b: self.send_locked(c, b))

    def record(self, fr, out):
        if fr[4] == 1 and fr[5] == 2:  # a sealed transfer frame
            with self.lock:
                self.frames.append(fr)
        out.append(fr)

    def send_locked(self, c, b):  # not in the middle of a replay
        with self.lock:
            c.sendall(b)

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
        wait_listening("127.0.0.1", port)
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
