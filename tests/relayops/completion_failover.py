#!/usr/bin/env python3
"""tests/relayops/completion_failover.py — the relay dies with the receiver's completion in flight.

The receiver has every byte and sends its TransferComplete, but the relay dies before the sender
hears it. The receiver must not simply exit: the sender would move to the room's next relay and
wait there for a peer that never comes, then report a failure for a file that arrived whole.

Three real relays on loopback, --no-p2p. The sender reaches the room's first relay through a
proxy (this file) that, once the sender's whole file has passed it, stops passing anything back
to the sender; a moment later (the receiver has finished meanwhile) that relay is killed and the
proxy closes. Both peers move to the room's second relay; the receiver, still waiting for the
sender to hang up, says its completion again there. The file is identical, both exit 0, and the
sender reports it sent the file. The code is picked so that the room's relay order starts with
the first relay on both sides (the sender lists the proxy in its place)."""
import filecmp
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from tallowtest import finish, wait_until  # noqa: E402
from relayfleet import room_order, start_fleet  # noqa: E402
from relaywire import Proxy, frames, shut, spawn  # noqa: E402

T = os.path.abspath(os.environ.get("TALLOW_BIN", "build/bin/tallow"))
SIZE = 24 * 1024 * 1024
fails = []
work = tempfile.mkdtemp(prefix="tallow-complete-fo-")
procs = []


class HoldingProxy(Proxy):
    """The relay for one client: once `size` bytes came from the client, everything the relay
    sends back is held (never delivered), until close() cuts both sides."""

    def __init__(self, relay_port, size):
        self.size, self.up = size, 0
        self.holding = threading.Event()
        self.socks = []
        super().__init__(relay_port)

    def accepted(self, c):
        u = self.upstream()
        self.socks += [c, u]
        spawn(frames, c, u, self.from_client)
        spawn(frames, u, c, lambda fr, out: None if self.holding.is_set() else out.append(fr))

    def from_client(self, fr, out):
        out.append(fr)
        self.up += len(fr)
        if self.up >= self.size:
            self.holding.set()

    def close(self):
        super().close()
        shut(*self.socks)


def peer(argv, log, env, out=None):
    p = subprocess.Popen([T] + argv, stdout=open(os.path.join(work, out), "w") if out else subprocess.DEVNULL,
                         stderr=open(os.path.join(work, log), "w"), env=env)
    procs.append(p)
    return p


try:
    relays = start_fleet(T, work, procs, "cf")
    # the proxy stands for relays[0] in the sender's listing
    proxy = HoldingProxy(int(relays[0]["addr"].split(":")[1]), SIZE)
    paddr = f"127.0.0.1:{proxy.port}"
    standin = [{"addr": paddr, "mport": 0}] + relays[1:]
    code = None
    for n in range(2, 400):
        c = f"{n}-apple-river-stone"
        if room_order(T, work, relays, c)[:2] == relays[:2] and \
                [r["addr"] for r in room_order(T, work, standin, c)[:2]] == [paddr, relays[1]["addr"]]:
            code = c
            break
    if not code:
        fails.append("no code puts the first relay first on both sides")
        raise SystemExit
    src = os.path.join(work, "f.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(SIZE))
    dst = os.path.join(work, "dst")
    os.mkdir(dst)
    env = dict(os.environ, TALLOW_LOG="info")
    env.pop("TALLOW_RELAY", None)
    env.pop("TALLOW_RELAYS", None)
    snd = peer(["send", "--no-p2p", "--relay", ",".join(r["addr"] for r in standin), "--code", code, src],
               "send.log", env, "send.txt")
    rcv = peer(["receive", "--no-p2p", "--json", "--yes", "-o", dst, "--relay",
                ",".join(r["addr"] for r in relays), code], "recv.log", env, "recv.json")
    if not wait_until(proxy.holding.is_set, 60, 0.01):
        fails.append("the sender's file never passed the proxy")
        raise SystemExit
    # the receiver finishes (its completion is held by the proxy), then the relay dies
    if not wait_until(lambda: '"event":"received"' in open(os.path.join(work, "recv.json")).read(), 20, 0.01):
        fails.append("the receiver never said it received the file")
    time.sleep(0.3)
    relays[0]["proc"].kill()
    relays[0]["proc"].wait()
    proxy.close()
    killed = time.time()
    try:
        rr, rs = rcv.wait(60), snd.wait(60)
    except subprocess.TimeoutExpired:
        rr = rs = "hung"
    slog = open(os.path.join(work, "send.log")).read()
    stxt = open(os.path.join(work, "send.txt")).read()
    if rr != 0 or rs != 0:
        fails.append(f"exit statuses receiver {rr}, sender {rs}; sender said: {slog.strip()[-300:]}")
    if not filecmp.cmp(src, os.path.join(dst, "f.bin"), shallow=False):
        fails.append("the received file differs")
    if not re.search(r"Sent 1 file", slog + stxt):
        fails.append("the sender did not report the file sent")
    if f"moving to {relays[1]['addr']}" not in slog:
        fails.append(f"the sender did not say it moved to {relays[1]['addr']}")
    print(f"completion held by the dying relay: receiver exit {rr}, sender exit {rs}, "
          f"both done {time.time() - killed:.2f} s after the kill")
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
finish("completion_failover", fails, work, "the completion reached the sender through the next relay")
