#!/usr/bin/env python3
"""tests/bench/relay_scale.py — one relay at scale, on loopback (`make bench-relay`).

The clients speak the relay's wire protocol directly (RoomJoin, then framed data; see
plugins/relay/relay_proto.c) from one Python process with a selector loop, so thousands of
rooms cost a few sockets each and no tallow processes: what is measured is the relay.

  idle     BENCH_IDLE_ROOMS (10000) rooms, each one connection waiting for its peer: relay RSS
           and open fds with all of them open, and after they close
  transfer BENCH_TRANSFERS (1000) pairs at once, each moving BENCH_TRANSFER_MIB (2) MiB in
           256 KiB frames: relay CPU seconds per GiB forwarded, peak RSS and fds, and each
           transfer's time (median, slowest, slowest / median)
  churn    for BENCH_CHURN_SECS (60) seconds or BENCH_CHURN_MAX (20000) rooms, whichever comes
           first: BENCH_CHURN_PAR (64) rooms at a time open, pair, move 256 KiB, close; then
           RSS and fds against the baseline taken before the churn

Client connections come from 127.0.0.2..127.0.0.101 (the relay's per-address limits are raised
for the run). Prints one table; every figure is from /proc of the relay's pid. Exits 1 if a
transfer failed or a room could not be opened."""
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from relaywire import data_frame_header, join_frame, leave_frame  # noqa: E402

T = os.path.abspath(os.environ.get("TALLOW_BIN", "build/bin/tallow"))
IDLE = int(os.environ.get("BENCH_IDLE_ROOMS", "10000"))
TRANSFERS = int(os.environ.get("BENCH_TRANSFERS", "1000"))
MIB = int(os.environ.get("BENCH_TRANSFER_MIB", "2"))
CHURN_SECS = float(os.environ.get("BENCH_CHURN_SECS", "60"))
CHURN_MAX = int(os.environ.get("BENCH_CHURN_MAX", "20000"))
CHURN_PAR = int(os.environ.get("BENCH_CHURN_PAR", "64"))
FRAME = 256 * 1024
SOURCES = [f"127.0.0.{i}" for i in range(2, 102)]
failures = []


# ---- the relay's figures from /proc

def proc_figures(pid):
    st = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            st[k] = int(v.split()[0]) / 1024.0  # MiB
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    f = open(f"/proc/{pid}/stat").read()
    fields = f[f.rindex(")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return st["VmRSS"], st["VmHWM"], fds, cpu


# ---- a tiny client side

class Conn:
    """One client connection: joins `room`, then either sends `send_bytes` of data frames once the
    room is paired, or counts the data it receives until `expect` bytes arrived."""

    def __init__(self, sel, port, room, src, send_bytes=0, expect=0):
        self.sel = sel
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind((src, 0))
        self.s.connect(("127.0.0.1", port))
        self.s.setblocking(False)
        self.out = bytearray(join_frame(room))
        self.send_left = send_bytes
        self.expect = expect
        self.got = 0
        self.ctrl_seen = 0
        self.buf = bytearray()
        self.frame_left = 0   # payload bytes of the data frame being received
        self.frame_data = False
        self.started = self.done_at = None
        self.closed = False
        self.payload = memoryview(bytes(FRAME))
        sel.register(self.s, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

    def events(self):
        return selectors.EVENT_READ | (selectors.EVENT_WRITE if self.out or self.sending() else 0)

    def sending(self):
        return self.send_left > 0 and self.ctrl_seen > 0

    def on_write(self):
        while True:
            if not self.out and self.sending():
                n = min(FRAME, self.send_left)
                if self.started is None:
                    self.started = time.monotonic()
                self.out += data_frame_header(n)
                self.out += self.payload[:n]
                self.send_left -= n
            if not self.out:
                break
            try:
                w = self.s.send(self.out)
            except BlockingIOError:
                break
            del self.out[:w]
            if self.out:
                break

    def on_read(self):
        try:
            data = self.s.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        i, n = 0, len(data)
        while i < n:
            if self.frame_left:  # inside a frame: data counts, control is skipped
                k = min(self.frame_left, n - i)
                if self.frame_data:
                    self.got += k
                self.frame_left -= k
                i += k
                continue
            take = data[i:i + 5 - len(self.buf)]
            self.buf += take
            i += len(take)
            if len(self.buf) < 5:
                break
            length, ch = int.from_bytes(self.buf[:4], "big"), self.buf[4]
            self.buf = bytearray()
            self.frame_left = length - 1
            self.frame_data = ch != 0
            if ch == 0:
                self.ctrl_seen += 1
        if self.expect and self.got >= self.expect and self.done_at is None:
            self.done_at = time.monotonic()

    def leave(self):
        """Leaves the room in order (a dropped connection's slot would be held for its resume)."""
        if not self.closed:
            try:
                self.s.setblocking(True)
                self.s.sendall(self.out + leave_frame())
            except OSError:
                pass
            self.close()

    def close(self):
        if not self.closed:
            self.closed = True
            self.sel.unregister(self.s)
            self.s.close()


def pump(sel, conns, until, limit):
    """Runs the selector until until() is true or limit seconds passed."""
    deadline = time.monotonic() + limit
    while not until() and time.monotonic() < deadline:
        for key, ev in sel.select(0.05):
            c = key.data
            if c.closed:
                continue
            if ev & selectors.EVENT_READ:
                c.on_read()
            if not c.closed and ev & selectors.EVENT_WRITE:
                c.on_write()
            if not c.closed:
                sel.modify(c.s, c.events(), c)
        for c in conns:
            if not c.closed and c.sending():
                sel.modify(c.s, c.events(), c)
    return until()


def room_id(tag, i):
    return (f"{tag}-{i}".encode() * 4)[:32]


LOAD0 = "%.2f" % os.getloadavg()[0]


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    relay = subprocess.Popen([T, "relay", "--quiet", "--listen", f"127.0.0.1:{port}",
                              "--max-rooms", str(IDLE + 2 * TRANSFERS + 1000),
                              "--max-conns-per-ip", "1000000", "--max-rooms-per-ip", "1000000"],
                             stderr=subprocess.DEVNULL)
    rows = []
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.3)
        pid = relay.pid
        rss0, _, fds0, cpu0 = proc_figures(pid)
        rows.append(("relay at rest", f"{rss0:.1f} MiB", fds0, ""))

        # ---- idle rooms
        sel = selectors.DefaultSelector()
        t0 = time.monotonic()
        idle = []
        for i in range(IDLE):
            try:
                idle.append(Conn(sel, port, room_id("idle", i), SOURCES[i % len(SOURCES)]))
            except OSError as e:
                failures.append(f"idle room {i}: {e}")
                break
        pump(sel, idle, lambda: all(c.ctrl_seen > 0 for c in idle), 60)
        joined = sum(1 for c in idle if c.ctrl_seen > 0)
        opened = time.monotonic() - t0
        time.sleep(0.5)
        rss, _, fds, _ = proc_figures(pid)
        rows.append((f"{joined} idle rooms open (in {opened:.1f} s)", f"{rss:.1f} MiB", fds,
                     f"{(rss - rss0) * 1024 / max(joined, 1):.2f} KiB per room"))
        if joined < IDLE:
            failures.append(f"only {joined} of {IDLE} idle rooms joined")
        idle_rss = rss
        for c in idle:
            c.leave()
        time.sleep(1.0)
        rss, _, fds, _ = proc_figures(pid)
        rows.append(("idle rooms closed", f"{rss:.1f} MiB", fds, ""))

        # ---- concurrent transfers
        size = MIB * 1024 * 1024
        pairs = []
        for i in range(TRANSFERS):
            room = room_id("xfer", i)
            src = SOURCES[i % len(SOURCES)]
            rx = Conn(sel, port, room, src, expect=size)
            pairs.append(rx)
        pump(sel, pairs, lambda: all(c.ctrl_seen > 0 for c in pairs), 60)
        for i in range(TRANSFERS):
            tx = Conn(sel, port, room_id("xfer", i), SOURCES[(i + 7) % len(SOURCES)], send_bytes=size)
            pairs.append(tx)
        _, _, _, cpu_a = proc_figures(pid)
        t0 = time.monotonic()
        peak_rss, peak_fds = 0.0, 0
        receivers = pairs[:TRANSFERS]
        senders = pairs[TRANSFERS:]
        last_probe = 0
        def all_done():
            nonlocal peak_rss, peak_fds, last_probe
            now = time.monotonic()
            if now - last_probe > 0.2:
                last_probe = now
                r, _, f, _ = proc_figures(pid)
                peak_rss, peak_fds = max(peak_rss, r), max(peak_fds, f)
            return all(c.done_at is not None for c in receivers)
        ok = pump(sel, pairs, all_done, 600)
        wall = time.monotonic() - t0
        _, hwm, _, cpu_b = proc_figures(pid)
        done = [c for c in receivers if c.done_at is not None]
        if not ok:
            failures.append(f"{TRANSFERS - len(done)} of {TRANSFERS} transfers did not finish")
        times = [c.done_at - s.started for c, s in zip(receivers, senders) if c.done_at and s.started]
        gib = TRANSFERS * size / (1 << 30)
        med = statistics.median(times) if times else float("nan")
        slow = max(times) if times else float("nan")
        rows.append((f"{TRANSFERS} transfers of {MIB} MiB at once ({gib:.2f} GiB in {wall:.1f} s)",
                     f"peak {peak_rss:.1f} MiB", f"peak {peak_fds}",
                     f"CPU {cpu_b - cpu_a:.2f} s = {(cpu_b - cpu_a) / gib:.3f} s/GiB; per transfer: median "
                     f"{med:.2f} s, slowest {slow:.2f} s ({slow / med:.2f}x median)"))
        for c in pairs:
            c.leave()
        time.sleep(1.0)
        base_rss, _, base_fds, _ = proc_figures(pid)
        rows.append(("transfers closed: baseline before the churn", f"{base_rss:.1f} MiB", base_fds, ""))

        # ---- churn
        t0 = time.monotonic()
        n_done = n_opened = 0
        live = []
        chunk = 256 * 1024
        churn_peak = 0.0
        last = 0
        def conns():
            return [c for p in live for c in p[:2] if c is not None]
        # a room's sender joins once its receiver is in (so the room is paired when it sends)
        while time.monotonic() - t0 < CHURN_SECS and n_opened < CHURN_MAX:
            while len(live) < CHURN_PAR and n_opened < CHURN_MAX:
                room = room_id("churn", n_opened)
                live.append([Conn(sel, port, room, SOURCES[n_opened % len(SOURCES)], expect=chunk), None, room])
                n_opened += 1
            pump(sel, conns(), lambda: any((p[1] is None and p[0].ctrl_seen) or p[0].done_at for p in live), 10)
            keep = []
            for p in live:
                rx, tx, room = p
                if tx is None and rx.ctrl_seen:
                    p[1] = Conn(sel, port, room, SOURCES[(n_opened + 3) % len(SOURCES)], send_bytes=chunk)
                if rx.done_at:
                    rx.leave()
                    p[1].leave()
                    n_done += 1
                else:
                    keep.append(p)
            live = keep
            if time.monotonic() - last > 1:
                last = time.monotonic()
                churn_peak = max(churn_peak, proc_figures(pid)[0])
        for p in live:
            if p[1] is None:
                p[1] = Conn(sel, port, p[2], SOURCES[0], send_bytes=chunk)
        pump(sel, conns(), lambda: all(p[0].done_at for p in live), 30)
        for rx, tx, _ in live:
            if rx.done_at:
                n_done += 1
            rx.leave()
            tx.leave()
        churn_wall = time.monotonic() - t0
        if n_done < n_opened:
            failures.append(f"churn: {n_opened - n_done} of {n_opened} rooms did not complete")
        time.sleep(1.5)
        rss, hwm, fds, cpu_end = proc_figures(pid)
        rows.append((f"churn: {n_done} rooms opened, paired, 256 KiB moved, closed in {churn_wall:.0f} s "
                     f"({n_done / churn_wall:.0f}/s, {CHURN_PAR} at a time)", f"{rss:.1f} MiB (peak {churn_peak:.1f})",
                     fds, f"vs baseline: RSS {rss - base_rss:+.1f} MiB, fds {fds - base_fds:+d}"))
        if fds != base_fds:
            failures.append(f"churn: fds {fds} vs baseline {base_fds}")
        rows.append(("whole run", f"VmHWM {hwm:.1f} MiB", "", f"relay CPU {cpu_end - cpu0:.1f} s"))
    finally:
        relay.send_signal(2)
        try:
            relay.wait(10)
        except subprocess.TimeoutExpired:
            relay.kill()

    print("| relay on loopback | RSS | fds | notes |")
    print("|---|---:|---:|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print(f"\nload average at the start {LOAD0}, at the end {os.getloadavg()[0]:.2f} (2 cores shared with other work)")
    print(f"idle rooms: {IDLE}, goal <= 128 MiB RSS: {'met' if idle_rss <= 128 else 'NOT met'} ({idle_rss:.1f} MiB)")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
