#!/usr/bin/env python3
"""tests/abuse/join_rate.py — the relay's join rate limit (--join-rate N: RoomJoins per second per
address / IPv6 /64, bursts of 4N). In a network namespace of its own (unshare -n, root), lo gets
2001:db8:64::1, 2001:db8:64::2 (one /64) and 2001:db8:65::1; a relay with --join-rate 2 (burst 8)
answers 8 joins from 2001:db8:64::1 (8 rooms), refuses the 9th from 2001:db8:64::2 (same /64)
with RoomLeave "too many joins ...", takes one from 2001:db8:65::1 (another /64), and takes one
from the first /64 again once a token has come back (>= 0.6 s later at 2 a second); the metrics
count exactly one refusal with reason join_rate.
Run as: unshare -n python3 join_rate.py (under flock /tmp/tallow-netns.lock)."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from relaywire import join_frame  # noqa: E402
from tallowtest import finish, lo_with, wait_listening  # noqa: E402

T = os.path.abspath(os.environ.get("TALLOW_BIN", "build/bin/tallow"))
PORT, MPORT = 4433, 9100


def join(src, n):
    """Joins room n from src: the relay's first answer (bytes), the socket kept open."""
    s = socket.socket(socket.AF_INET6)
    s.bind((src, 0))
    s.settimeout(3)
    s.connect(("2001:db8:64::1", PORT))
    s.sendall(join_frame(b"join-rate-room-%d" % n))
    try:
        data = s.recv(4096)
    except socket.timeout:
        data = b"<no answer>"
    return s, data


def main():
    lo_with("2001:db8:64::1/64", "2001:db8:64::2/64", "2001:db8:65::1/64")
    relay = subprocess.Popen([T, "relay", "--listen", f"[2001:db8:64::1]:{PORT}", "--join-rate", "2",
                              "--metrics", f"[2001:db8:64::1]:{MPORT}"], stderr=subprocess.DEVNULL)
    fails, held = [], []
    try:
        wait_listening("2001:db8:64::1", PORT)
        refusal = b"too many joins"
        for i in range(8):
            s, d = join("2001:db8:64::1", i)
            held.append(s)
            if refusal in d or not d:
                fails.append(f"join {i + 1} of the burst was refused: {d!r}")
        s, d = join("2001:db8:64::2", 8)
        held.append(s)
        if refusal not in d:
            fails.append(f"the 9th join from the same /64 was not refused for its rate: {d!r}")
        s, d = join("2001:db8:65::1", 9)
        held.append(s)
        if refusal in d or not d:
            fails.append(f"a join from another /64 was refused: {d!r}")
        time.sleep(0.6)  # 2 joins a second: at least one token is back
        s, d = join("2001:db8:64::1", 10)
        held.append(s)
        if refusal in d or not d:
            fails.append(f"a join after the bucket refilled was refused: {d!r}")
        text = urllib.request.urlopen(f"http://[2001:db8:64::1]:{MPORT}/metrics", timeout=5).read().decode()
        line = [l for l in text.splitlines() if 'reason="join_rate"' in l and l.startswith("tallow_relay_joins_refused_total")]
        if not line or line[0].split()[-1] != "1":
            fails.append(f"metrics: join_rate refusals {line!r}, expected 1")
    finally:
        for s in held:
            s.close()
        relay.terminate()
        relay.wait(5)
    finish("join_rate", fails, None, "joins limited per /64, counted in the metrics")


if __name__ == "__main__":
    main()
