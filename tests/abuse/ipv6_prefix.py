#!/usr/bin/env python3
"""tests/abuse/ipv6_prefix.py — the relay counts its per-address limits per IPv6 /64 (one host
commonly holds a whole /64, so per-address limits were no limit). In a network namespace of its
own (unshare -n, root), lo gets 2001:db8:64::1, 2001:db8:64::2 (one /64) and 2001:db8:65::1; a
relay with --max-conns-per-ip 2 takes two connections from 2001:db8:64::1, refuses the third
from 2001:db8:64::2 (same /64), and takes one from 2001:db8:65::1 (another /64).
Run as: unshare -n python3 ipv6_prefix.py (root)."""
import os
import socket
import subprocess
import sys
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from tallowtest import finish, lo_with, wait_listening  # noqa: E402

T = os.path.abspath(os.environ.get("TALLOW_BIN", "build/bin/tallow"))


def conn(src, port):
    s = socket.socket(socket.AF_INET6)
    s.bind((src, 0))
    s.settimeout(3)
    s.connect(("2001:db8:64::1", port))
    return s


def refused(s):
    """True if the relay closed the connection at once (no data, EOF)."""
    s.settimeout(1.0)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def main():
    lo_with("2001:db8:64::1/64", "2001:db8:64::2/64", "2001:db8:65::1/64")
    port = 4433
    relay = subprocess.Popen([T, "relay", "--listen", f"[2001:db8:64::1]:{port}",
                              "--max-conns-per-ip", "2"], stderr=subprocess.DEVNULL)
    fails = []
    try:
        wait_listening("2001:db8:64::1", port)
        time.sleep(0.2)  # the probe connection is gone from the relay's count
        a = [conn("2001:db8:64::1", port), conn("2001:db8:64::1", port)]
        if any(refused(s) for s in a):
            fails.append("the first two connections from one /64 were refused")
        b = conn("2001:db8:64::2", port)
        if not refused(b):
            fails.append("a third connection from the same /64 (another address) was taken")
        c = conn("2001:db8:65::1", port)
        if refused(c):
            fails.append("a connection from another /64 was refused")
    finally:
        relay.terminate()
        relay.wait(5)
    finish("ipv6_prefix", fails, None, "limits count per /64")


if __name__ == "__main__":
    main()
