#!/usr/bin/env python3
"""tests/abuse/abuse.py — a real relay under abuse, from several loopback source addresses
(127.0.0.2..6; the legitimate peers use 127.0.0.1, so per-address limits do not shut them out):

  junk     connections that send random bytes, over and over
  slow     connections that connect and never join (cut at the join timeout)
  oversize frames that announce more than max-frame, and 1 MB frames that never finish
  paired   pairs of connections in a room: one sends most of a 1 MB frame and stops, the other
           never reads (the relay streams frames: it must not buffer them)
  rooms    one address opening rooms until refused ("too many rooms from your address")
  guess    a wrong-code attempt on a waiting sender's room: the sender exits with the code
           mismatch, the relay closes the room at once, and a second guesser finds nobody

Meanwhile a real transfer must complete (cmp), the relay must stay up, and its peak memory
(VmHWM) must stay under MEM_BOUND_KB. Prints the figures."""
import filecmp
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from tallowtest import finish, free_port, wait_listening  # noqa: E402
from relaywire import ctrl_frame, room_join  # noqa: E402

T = os.path.abspath(os.environ.get("TALLOW_BIN", "build/bin/tallow"))
MEM_BOUND_KB = 16 * 1024
FLOOD_SECONDS = 6
MAX_FRAME = 1048640


def status(pid, key):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def connect(src, port):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(2)
    s.connect(("127.0.0.1", port))
    return s


class Flood:
    def __init__(self, port):
        self.port, self.stop, self.count = port, False, {}
        self.held = []
        self.lock = threading.Lock()

    def bump(self, k):
        with self.lock:
            self.count[k] = self.count.get(k, 0) + 1

    def junk(self, src):
        rng = random.Random(src)
        while not self.stop:
            try:
                s = connect(src, self.port)
                s.sendall(rng.randbytes(rng.randint(1, 4096)))
                s.close()
                self.bump("junk")
            except OSError:
                time.sleep(0.01)

    def slow(self, src, n):
        for _ in range(n):
            try:
                self.held.append(connect(src, self.port))
                self.bump("slow")
            except OSError:
                pass

    def oversize(self, src):
        rng = random.Random(7)
        while not self.stop:
            try:
                s = connect(src, self.port)
                s.sendall((0xFFFFFFF0).to_bytes(4, "big") + b"\x01" + rng.randbytes(65536))
                s.close()
                self.bump("oversize")
            except OSError:
                time.sleep(0.01)

    def unfinished(self, src, n):
        """1 MB frames (under max-frame) that never finish, from connections that never join."""
        for _ in range(n):
            try:
                s = connect(src, self.port)
                s.sendall((MAX_FRAME - 100).to_bytes(4, "big") + b"\x01" + os.urandom(MAX_FRAME - 200))
                self.held.append(s)
                self.bump("unfinished")
            except OSError:
                pass

    def paired(self, src, n):
        """Paired connections: one sends most of a 1 MB frame and stops, the other never reads."""
        for i in range(n):
            try:
                a, b = connect(src, self.port), connect(src, self.port)
                for s in (a, b):
                    s.sendall(ctrl_frame(room_join(b"abuse-pair-%d" % i)))
                    self.held.append(s)
                time.sleep(0.05)
                a.settimeout(0.5)
                try:
                    a.sendall((MAX_FRAME - 100).to_bytes(4, "big") + b"\x01" + os.urandom(MAX_FRAME - 200))
                except socket.timeout:
                    pass  # held back: the relay stopped reading it
                self.bump("paired")
            except OSError:
                pass

    def rooms(self, src, n):
        refused = 0
        for i in range(n):
            try:
                s = connect(src, self.port)
                s.sendall(ctrl_frame(room_join(b"abuse-room-%d" % i)))
                s.settimeout(1)
                data = s.recv(4096)
                if b"too many rooms" in data:
                    refused += 1
                self.held.append(s)
                self.bump("rooms")
            except OSError:
                refused += 1
        self.rooms_refused = refused


def run(cmd, env, log, **kw):
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, **kw)


def main():
    work = tempfile.mkdtemp(prefix="tallow-abuse.")
    port = free_port()
    rlog = os.path.join(work, "relay.log")
    relay = subprocess.Popen([T, "relay", "--listen", f"127.0.0.1:{port}", "--join-timeout", "2"],
                             stdout=subprocess.DEVNULL, stderr=open(rlog, "wb"),
                             env=dict(os.environ, TALLOW_LOG="info"))
    wait_listening("127.0.0.1", port)
    fails = []
    env = dict(os.environ, TALLOW_RELAY=f"127.0.0.1:{port}", TALLOW_NO_P2P="1")
    env.pop("TALLOW_LOG", None)
    flood = Flood(port)
    peak = [0]

    def watch():
        while not flood.stop:
            peak[0] = max(peak[0], status(relay.pid, "VmRSS"))
            time.sleep(0.05)

    threads = [threading.Thread(target=watch)]
    threads += [threading.Thread(target=flood.junk, args=("127.0.0.2",)) for _ in range(3)]
    threads += [threading.Thread(target=flood.slow, args=("127.0.0.3", 60))]
    threads += [threading.Thread(target=flood.oversize, args=("127.0.0.4",))]
    threads += [threading.Thread(target=flood.unfinished, args=("127.0.0.5", 60))]
    threads += [threading.Thread(target=flood.rooms, args=("127.0.0.6", 50))]
    threads += [threading.Thread(target=flood.paired, args=("127.0.0.7", 25))]
    base = status(relay.pid, "VmRSS")
    t0 = time.time()
    for t in threads:
        t.start()
    try:
        # a real transfer in the middle of it
        src = os.path.join(work, "payload.bin")
        with open(src, "wb") as f:
            f.write(random.Random(3).randbytes(16 << 20))
        dest = os.path.join(work, "dest")
        e = dict(env, TALLOW_CODE="50-abuse-legit-transfer")
        snd = run([T, "send", src], e, open(os.path.join(work, "send.log"), "wb"))
        rcv = run([T, "receive", "--yes", "-o", dest], e, open(os.path.join(work, "recv.log"), "wb"))
        try:
            snd.wait(30)
            rcv.wait(30)
        except subprocess.TimeoutExpired:
            snd.kill()
            rcv.kill()
            fails.append("the transfer during the flood hung")
        took = time.time() - t0
        if snd.returncode or rcv.returncode or not filecmp.cmp(src, os.path.join(dest, "payload.bin"),
                                                               shallow=False):
            fails.append("the transfer during the flood failed: "
                         + open(os.path.join(work, "recv.log")).read()[-300:])
        else:
            print(f"legit 16 MiB transfer during the flood: identical, {took:.1f} s")

        # one wrong guess: the sender's room closes, a second guesser finds nobody
        code = "60-abuse-right-words"
        snd = run([T, "send", "--text", "secret"], dict(env, TALLOW_CODE=code),
                  open(os.path.join(work, "guess.send.log"), "wb"))
        time.sleep(0.5)
        g1 = run([T, "receive"], dict(env, TALLOW_CODE="60-abuse-wrong-guess"),
                 open(os.path.join(work, "guess1.log"), "wb"))
        g1.wait(10)
        try:
            snd.wait(5)
        except subprocess.TimeoutExpired:
            snd.kill()
            fails.append("the sender kept waiting after a failed PAKE")
        slog = open(os.path.join(work, "guess.send.log")).read()
        if snd.returncode == 0 or "code mismatch" not in slog:
            fails.append(f"sender after a wrong guess: exit {snd.returncode}, {slog[-200:]!r}")
        g1log = open(os.path.join(work, "guess1.log")).read()
        if g1.returncode == 0 or "secret" in g1log:
            fails.append(f"the wrong guess got something: {g1log[-200:]!r}")
        time.sleep(0.3)
        g2 = run(["timeout", "3", T, "receive"], dict(env, TALLOW_CODE="60-abuse-second-guess"),
                 open(os.path.join(work, "guess2.log"), "wb"))
        g2.wait(10)
        g2log = open(os.path.join(work, "guess2.log")).read()
        if g2.returncode != 124 or "secret" in g2log:
            fails.append(f"second guesser: exit {g2.returncode} (124 = waited alone), {g2log[-200:]!r}")
        print(f"wrong guess: sender exit {snd.returncode} "
              f"({[l for l in slog.splitlines() if 'mismatch' in l][-1:]}), guesser exit {g1.returncode}; "
              f"second guesser waited alone (exit {g2.returncode})")
        while time.time() - t0 < FLOOD_SECONDS:
            time.sleep(0.1)
    finally:
        flood.stop = True
        for t in threads:
            t.join(10)
    alive = relay.poll() is None
    hwm = status(relay.pid, "VmHWM")
    rss = status(relay.pid, "VmRSS")
    time.sleep(2.5)  # the join timeout (2 s) cuts the silent connections
    still = 0
    for s in flood.held:
        try:
            s.settimeout(0.01)
            if s.recv(1) == b"":
                continue
        except (socket.timeout, BlockingIOError):
            still += 1
        except OSError:
            continue
    for s in flood.held:
        s.close()
    relay.send_signal(signal.SIGINT)  # at once (SIGTERM drains paired rooms)
    relay.wait(5)
    log = open(rlog).read()
    m = re.findall(r"room (\w+) closed \(([^)]*)\)", log)
    print(f"flood: {flood.count} connections; rooms refused for one address: "
          f"{getattr(flood, 'rooms_refused', '?')} of 50")
    print(f"relay memory: {base} KiB before, peak RSS {peak[0]} KiB, VmHWM {hwm} KiB, "
          f"{rss} KiB after (bound {MEM_BOUND_KB} KiB); alive: {alive}")
    print(f"held connections still open 2.5 s after the flood: {still} of {len(flood.held)} "
          f"(rooms joined stay open; pending ones are cut)")
    if not alive:
        fails.append("the relay died")
    if hwm > MEM_BOUND_KB:
        fails.append(f"relay VmHWM {hwm} KiB above {MEM_BOUND_KB} KiB")
    if getattr(flood, "rooms_refused", 0) < 10:
        fails.append("one address could open 50 rooms")
    if still > 50:
        fails.append(f"{still} silent connections were never cut")
    if "too many rooms from your address" not in log and getattr(flood, "rooms_refused", 0) == 0:
        fails.append("no per-address room limit seen")
    # log tags are keyed per relay process: the guessed room is the one whose PAKE failed
    guess_closed = [why for t, why in m if why == "handshake-failed"]
    print(f"guessed room: closed ({', '.join(guess_closed) or 'never'})")
    if guess_closed[:1] != ["handshake-failed"]:
        fails.append("the relay did not close the room with handshake-failed after the failed PAKE")
    finish("abuse", fails, work, "relay held")


if __name__ == "__main__":
    main()
