#!/usr/bin/env python3
"""tests/relayops/metrics.py — `tallow relay --metrics`: a real relay serving Prometheus text.

  1. the endpoint answers GET /metrics (200, text/plain version 0.0.4) and 404 elsewhere, and
     `promtool check metrics` (Debian's prometheus package) accepts the exposition;
  2. during a 256 MiB transfer through the relay (--no-p2p), scrapes see a paired room, two
     peers, and forwarded bytes that grow while the room is paired; after it the counter is at
     least the file size, the room is gone, and rooms_paired_total is 1;
  3. refusals and STUN are counted: a wrong relay password (reason="wrong_password"), a STUN
     Binding request answered and a junk datagram dropped;
  4. process_resident_memory_bytes and process_open_fds match /proc of the relay's pid."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from tallowtest import finish, free_port  # noqa: E402

T = os.path.abspath(os.environ.get("TALLOW_BIN", "build/bin/tallow"))
SIZE = 256 * 1024 * 1024
fails = []
work = tempfile.mkdtemp(prefix="tallow-metrics-")


def scrape(port, path="/metrics"):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def value(text, name, labels=""):
    m = re.search(r"^" + re.escape(name + (("{" + labels + "}") if labels else "")) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


promtool = shutil.which("promtool")
if not promtool:
    print("FAIL: promtool not found (Debian package prometheus; run make deps)")
    sys.exit(1)

port, mport = free_port(), free_port()
relay_log = open(os.path.join(work, "relay.log"), "w")
env = dict(os.environ, TALLOW_LOG="info")
relay = subprocess.Popen([T, "relay", "--listen", f"127.0.0.1:{port}", "--metrics", f"127.0.0.1:{mport}",
                          "--password", "hunter2"], stderr=relay_log, env=env)
try:
    deadline = time.time() + 10
    text = None
    while time.time() < deadline:
        try:
            st, ctype, text = scrape(mport)
            break
        except OSError:
            time.sleep(0.1)
    if text is None:
        fails.append("the metrics endpoint never answered")
        raise SystemExit
    if st != 200 or not ctype.startswith("text/plain; version=0.0.4"):
        fails.append(f"GET /metrics: status {st}, content type {ctype}")
    st404, _, _ = scrape(mport, "/nothing")
    if st404 != 404:
        fails.append(f"GET /nothing answered {st404}, not 404")
    path = os.path.join(work, "m1.txt")
    open(path, "w").write(text)
    pc = subprocess.run([promtool, "check", "metrics"], stdin=open(path), capture_output=True, text=True)
    if pc.returncode != 0:
        fails.append(f"promtool check metrics failed: {pc.stdout}{pc.stderr}")
    else:
        print("promtool check metrics: ok (", len(text.splitlines()), "lines )")
    for name in ["tallow_relay_connections", "tallow_relay_forwarded_bytes_total", "tallow_relay_peers",
                 "process_resident_memory_bytes", "process_open_fds", "tallow_relay_reconnections_total"]:
        if value(text, name) is None:
            fails.append(f"{name} missing")

    # 4. process figures against /proc
    rss = int(open(f"/proc/{relay.pid}/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    fds = len(os.listdir(f"/proc/{relay.pid}/fd"))
    _, _, text = scrape(mport)
    mrss, mfds = value(text, "process_resident_memory_bytes"), value(text, "process_open_fds")
    if mrss is None or abs(mrss - rss) > 4 * 1024 * 1024:
        fails.append(f"process_resident_memory_bytes {mrss} vs /proc {rss}")
    if mfds is None or abs(mfds - fds) > 2:
        fails.append(f"process_open_fds {mfds} vs /proc {fds}")

    # 3. a wrong password is refused and counted; STUN answered / dropped
    w = subprocess.run([T, "send", "--no-p2p", "--relay", f"127.0.0.1:{port}", "--relay-password", "wrong",
                        "--code", "5-wrong-password-test", "--text", "x"], capture_output=True, text=True, timeout=30)
    if w.returncode == 0:
        fails.append("a wrong relay password was accepted")
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(3)
    req = bytes.fromhex("0001 0000 2112a442") + os.urandom(12)
    u.sendto(req, ("127.0.0.1", port))
    try:
        u.recvfrom(512)
    except socket.timeout:
        fails.append("no STUN answer")
    u.sendto(b"junk datagram", ("127.0.0.1", port))
    time.sleep(0.3)
    _, _, text = scrape(mport)
    if value(text, "tallow_relay_joins_refused_total", 'reason="wrong_password"') != 1:
        fails.append("wrong_password refusal not counted: " +
                     str(value(text, "tallow_relay_joins_refused_total", 'reason="wrong_password"')))
    if value(text, "tallow_relay_stun_requests_total", 'result="answered"') != 1:
        fails.append("STUN answer not counted")
    if value(text, "tallow_relay_stun_requests_total", 'result="dropped"') != 1:
        fails.append("dropped STUN datagram not counted")

    # 2. a transfer, scraped while it runs
    src = os.path.join(work, "big.bin")
    with open(src, "wb") as f:
        block = os.urandom(1024 * 1024)
        for _ in range(SIZE // len(block)):
            f.write(block)
    dst = os.path.join(work, "dst")
    os.mkdir(dst)
    base = value(text, "tallow_relay_forwarded_bytes_total")
    common = ["--no-p2p", "--relay", f"127.0.0.1:{port}", "--relay-password", "hunter2"]
    code = "7-metrics-scrape-during"
    snd = subprocess.Popen([T, "send", *common, "--code", code, src], stdout=subprocess.DEVNULL,
                           stderr=open(os.path.join(work, "send.err"), "w"))
    rcv = subprocess.Popen([T, "receive", *common, "--yes", "-o", dst, code], stdout=subprocess.DEVNULL,
                           stderr=open(os.path.join(work, "recv.err"), "w"))
    during = []  # forwarded bytes of scrapes that saw the room paired with both peers in it
    deadline = time.time() + 60
    while rcv.poll() is None and time.time() < deadline:
        _, _, t = scrape(mport)
        if value(t, "tallow_relay_rooms", 'state="paired"') == 1 and value(t, "tallow_relay_peers") == 2:
            during.append(value(t, "tallow_relay_forwarded_bytes_total") - base)
        time.sleep(0.02)
    rc_r, rc_s = rcv.wait(timeout=30), snd.wait(timeout=30)
    if rc_r != 0 or rc_s != 0:
        fails.append(f"transfer failed: receiver {rc_r}, sender {rc_s}")
    elif open(src, "rb").read() != open(os.path.join(dst, "big.bin"), "rb").read():
        fails.append("received file differs")
    moving = [b for b in during if 0 < b < SIZE]
    print(f"scrapes during the transfer: {len(during)}, forwarded bytes seen: "
          + ", ".join(str(int(b)) for b in during[:8]) + (" ..." if len(during) > 8 else ""))
    if len(set(moving)) < 2 or sorted(moving) != moving:
        fails.append(f"scrapes did not see the bytes move while paired: {during}")
    _, _, t = scrape(mport)
    total = value(t, "tallow_relay_forwarded_bytes_total") - base
    print(f"forwarded after the transfer: {int(total)} bytes for a {SIZE}-byte file")
    if total < SIZE:
        fails.append(f"forwarded {total} < file size {SIZE}")
    if value(t, "tallow_relay_rooms_paired_total") != 1:
        fails.append("rooms_paired_total is not 1")
    open(path, "w").write(t)
    pc = subprocess.run([promtool, "check", "metrics"], stdin=open(path), capture_output=True, text=True)
    if pc.returncode != 0:
        fails.append(f"promtool check metrics failed after the transfer: {pc.stdout}{pc.stderr}")
except SystemExit:
    pass
finally:
    relay.terminate()
    try:
        relay.wait(timeout=40)
    except subprocess.TimeoutExpired:
        relay.kill()

finish("relay_metrics", fails, work, "ok")
