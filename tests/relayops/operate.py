#!/usr/bin/env python3
"""tests/relayops/operate.py — running a relay as a service, with real processes on loopback:

  check   `tallow relay --check --config FILE`: a file with every key is valid (exit 0); an
          unknown key, a bad value, a bad listen address are refused (exit 1, saying where)
  config  the relay runs from the file alone (listen, metrics, limits, log format json): every
          stderr line is one JSON object with time/level/source/msg, and /metrics shows the
          file's limits
  reload  SIGHUP with a changed file while a room is paired (the receiver is at its accept
          question): limits change (max_rooms 50 -> 40), reloads_total 1, the room is still
          paired and its transfer then completes; a broken file on SIGHUP changes nothing
          (reload_failures_total 1) and the relay keeps serving
  drain   SIGTERM while one room is paired (at the question) and two wait for their peer: the
          waiting sender with only this relay is told at once ("relay shutting down"), the one
          with a second relay moves there and meets its late receiver; new connections are refused,
          the paired transfer then completes (file identical, both exit 0) and the relay exits
          0 by itself when the room is done
  deadline  SIGTERM with a paired room that never finishes and --drain-timeout 1: the relay
          still exits, closing the room, and says so"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from tallowtest import finish, free_port  # noqa: E402

T = os.path.abspath(os.environ.get("TALLOW_BIN", "build/bin/tallow"))
fails = []
work = tempfile.mkdtemp(prefix="tallow-operate-")
procs = []


def run(*args, **kw):
    return subprocess.run([T, *args], capture_output=True, text=True, timeout=30, **kw)


def scrape(mport):
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as r:
        return r.read().decode()


def value(text, name, labels=""):
    m = re.search(r"^" + re.escape(name + (("{" + labels + "}") if labels else "")) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def wait_for(what, cond, limit=20):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            if cond():
                return True
        except OSError:
            pass
        time.sleep(0.05)
    fails.append(f"timed out waiting for {what}")
    return False


def write_conf(path, port, mport, **over):
    keys = {"listen": f"127.0.0.1:{port}", "metrics": f"127.0.0.1:{mport}", "password": "",
            "max-rooms": "50", "max-peers": "8", "max-frame": "2097216", "max-conns-per-ip": "64",
            "max-rooms-per-ip": "32", "room-timeout": "600", "unpaired-timeout": "120",
            "join-timeout": "10", "grace": "30", "queue-high": "65536", "stun": "on", "splice": "on",
            "drain-timeout": "20", "log-format": "json", "quiet": "false"}
    keys.update(over)
    with open(path, "w") as f:
        f.write("# tallow relay configuration (every flag has a key)\n")
        for k, v in keys.items():
            f.write(f"{k} = {v}   # {k}\n" if v != "" else f"# {k} unset\n")


def relay_from(conf, log):
    p = subprocess.Popen([T, "relay", "--config", conf], stderr=open(log, "w"),
                         env=dict(os.environ, TALLOW_LOG="info"))
    procs.append(p)
    return p


def pair_at_question(port, code, src, dst, extra=()):
    """A sender and a receiver without --yes: they pair, and the receiver waits at its question."""
    common = ["--no-p2p", "--relay", f"127.0.0.1:{port}", *extra]
    snd = subprocess.Popen([T, "send", *common, "--code", code, src], stdout=subprocess.DEVNULL,
                           stderr=open(dst + ".send.err", "w"))
    rcv = subprocess.Popen([T, "receive", *common, "-o", dst, code], stdin=subprocess.PIPE,
                           stdout=subprocess.DEVNULL, stderr=open(dst + ".recv.err", "w"))
    procs.extend([snd, rcv])
    wait_for(f"{code}: the accept question", lambda: "Accept" in open(dst + ".recv.err").read())
    return snd, rcv


def answer_and_wait(snd, rcv, what):
    rcv.stdin.write(b"y\n")
    rcv.stdin.close()
    try:
        rr, rs = rcv.wait(60), snd.wait(60)
    except subprocess.TimeoutExpired:
        fails.append(f"{what}: transfer hung")
        return False
    if rr != 0 or rs != 0:
        fails.append(f"{what}: transfer failed (receiver {rr}, sender {rs})")
        return False
    return True


try:
    src = os.path.join(work, "data.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(8 * 1024 * 1024))

    # ---- check
    port, mport = free_port(), free_port()
    conf = os.path.join(work, "relay.conf")
    write_conf(conf, port, mport)
    r = run("relay", "--check", "--config", conf)
    if r.returncode != 0 or "configuration ok" not in r.stdout:
        fails.append(f"check: a valid file refused: {r.stdout}{r.stderr}")
    for bad, want in [({"max-roomz": "5"}, "unknown key 'max-roomz'"), ({"max-peers": "1"}, "out of range"),
                      ({"listen": "127.0.0.1:notaport"}, "listen address"), ({"room-timeout": "soon"}, "room-timeout")]:
        bconf = os.path.join(work, "bad.conf")
        write_conf(bconf, port, mport, **bad)
        r = run("relay", "--check", "--config", bconf)
        if r.returncode != 1 or want not in r.stderr:
            fails.append(f"check: {bad} not refused as expected (exit {r.returncode}): {r.stderr.strip()}")
    with open(os.path.join(work, "syntax.conf"), "w") as f:
        f.write("listen = 127.0.0.1:1\nthis line has no equals sign\n")
    r = run("relay", "--check", "--config", os.path.join(work, "syntax.conf"))
    if r.returncode != 1 or "syntax.conf:2" not in r.stderr:
        fails.append(f"check: a syntax error is not located: {r.stderr.strip()}")
    # the command line wins over the file
    r = run("relay", "--check", "--config", conf, "--max-peers", "1")
    if r.returncode != 1:
        fails.append("check: --max-peers 1 on the command line did not override the file")
    example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "relay", "relay.conf")
    r = run("relay", "--check", "--config", example)
    if r.returncode != 0:
        fails.append(f"check: examples/relay/relay.conf refused: {r.stderr.strip()}")
    print("check: valid file (and examples/relay/relay.conf) accepted, 5 broken ones refused")

    # ---- config + json logs + reload
    log = os.path.join(work, "relay.log")
    relay = relay_from(conf, log)
    wait_for("metrics", lambda: scrape(mport) is not None)
    t = scrape(mport)
    if value(t, "tallow_relay_limit", 'limit="max_rooms"') != 50 or value(t, "tallow_relay_limit", 'limit="max_peers"') != 8:
        fails.append("config: limits from the file not applied")
    dst = os.path.join(work, "r1")
    os.mkdir(dst)
    snd, rcv = pair_at_question(port, "11-apple-river-stone", src, dst)
    write_conf(conf, port, mport, **{"max-rooms": "40"})
    relay.send_signal(signal.SIGHUP)
    wait_for("reload", lambda: value(scrape(mport), "tallow_relay_reloads_total") == 1)
    t = scrape(mport)
    if value(t, "tallow_relay_limit", 'limit="max_rooms"') != 40:
        fails.append("reload: max_rooms did not change to 40")
    if value(t, "tallow_relay_rooms", 'state="paired"') != 1 or value(t, "tallow_relay_peers") != 2:
        fails.append("reload: the paired room was dropped")
    with open(conf, "a") as f:
        f.write("max-peers = 1\n")  # out of range: refused, nothing changes
    relay.send_signal(signal.SIGHUP)
    wait_for("refused reload", lambda: value(scrape(mport), "tallow_relay_reload_failures_total") == 1)
    t = scrape(mport)
    if value(t, "tallow_relay_limit", 'limit="max_peers"') != 8 or value(t, "tallow_relay_limit", 'limit="max_rooms"') != 40:
        fails.append("reload: a refused file changed the limits")
    if answer_and_wait(snd, rcv, "reload") and open(src, "rb").read() != open(os.path.join(dst, "data.bin"), "rb").read():
        fails.append("reload: received file differs")
    print("reload: limits changed under a paired room, which then finished; a broken file was refused")
    write_conf(conf, port, mport)
    relay.send_signal(signal.SIGINT)
    relay.wait(10)
    lines = open(log).read().splitlines()
    bad = []
    for ln in lines:
        try:
            o = json.loads(ln)
            if not all(k in o for k in ("time", "level", "source", "msg")):
                bad.append(ln)
        except ValueError:
            bad.append(ln)
    if bad or not lines:
        fails.append(f"json logs: {len(bad)} of {len(lines)} lines are not JSON log objects: {bad[:3]}")
    msgs = [json.loads(ln)["msg"] for ln in lines if ln not in bad]
    if not any(re.match(r"room \w+ paired", m) for m in msgs) or not any("configuration reloaded" in m for m in msgs):
        fails.append(f"json logs: room and reload events missing: {msgs[:10]}")
    print(f"json logs: {len(lines)} lines, all JSON objects")

    # ---- drain
    port, mport = free_port(), free_port()
    write_conf(conf, port, mport, **{"log-format": "text"})
    log = os.path.join(work, "drain.log")
    relay = relay_from(conf, log)
    wait_for("metrics", lambda: scrape(mport) is not None)
    dst = os.path.join(work, "r2")
    os.mkdir(dst)
    snd, rcv = pair_at_question(port, "12-apple-river-stone", src, dst)
    lone = subprocess.Popen([T, "send", "--no-p2p", "--relay", f"127.0.0.1:{port}", "--code", "13-maple-cloud-river",
                             "--text", "nobody comes"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    procs.append(lone)
    # a pair whose room's first relay is this one and its second another relay: the one waiting
    # when the drain starts moves on, the late one finds the listener closed, they meet there
    port2 = free_port()
    other = subprocess.Popen([T, "relay", "--listen", f"127.0.0.1:{port2}"], stderr=subprocess.DEVNULL)
    procs.append(other)
    both = f"127.0.0.1:{port},127.0.0.1:{port2}"
    olua = os.path.join(work, "order.lua")
    open(olua, "w").write('for n = 30, 99 do local c = n .. "-apple-cloud-stone"\n'
                          '  if require("tallow.relays").pick(arg[1], c) == arg[2] then print(c) return end end\n')
    mcode = run("run", olua, both, f"127.0.0.1:{port}").stdout.strip()
    mover = subprocess.Popen([T, "send", "--no-p2p", "--relay", both, "--code", mcode, "--text", "moved on"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    procs.append(mover)
    wait_for("the waiting rooms", lambda: value(scrape(mport), "tallow_relay_rooms", 'state="open"') == 2)
    relay.send_signal(signal.SIGTERM)
    try:
        _, lerr = lone.communicate(timeout=20)
        if lone.returncode == 0 or "shutting down" not in lerr:
            fails.append(f"drain: the waiting sender was not told (exit {lone.returncode}): {lerr.strip()[-200:]}")
    except subprocess.TimeoutExpired:
        fails.append("drain: the waiting sender was left waiting")
    wait_for("the listener to close", lambda: value(scrape(mport), "tallow_relay_up") == 0)
    late = run("receive", "--no-p2p", "--yes", "--relay", both, mcode)
    try:
        mover.wait(20)
    except subprocess.TimeoutExpired:
        pass
    if late.returncode != 0 or "moved on" not in late.stdout or mover.returncode != 0:
        fails.append(f"drain: the waiting pair did not meet on the next relay (sender {mover.returncode}, "
                     f"receiver {late.returncode}: {late.stderr.strip()[-200:]})")
    c = socket.socket()
    try:
        c.connect(("127.0.0.1", port))
        fails.append("drain: a new connection was accepted")
    except OSError:
        pass
    c.close()
    if relay.poll() is not None:
        fails.append("drain: the relay exited before its paired room finished")
    if answer_and_wait(snd, rcv, "drain") and open(src, "rb").read() != open(os.path.join(dst, "data.bin"), "rb").read():
        fails.append("drain: received file differs")
    try:
        if relay.wait(15) != 0:
            fails.append(f"drain: relay exit status {relay.returncode}")
    except subprocess.TimeoutExpired:
        fails.append("drain: the relay did not exit after its last room closed")
    text = open(log).read()
    if "draining: no new connections, 2 waiting rooms closed, 1 paired rooms" not in text:
        fails.append("drain: no drain line in the log")
    print("drain: waiting sender told, a waiting pair met on the next relay, new connections refused, "
          "the paired transfer finished, relay exited 0")

    # ---- deadline
    port, mport = free_port(), free_port()
    write_conf(conf, port, mport, **{"log-format": "text", "drain-timeout": "1"})
    log = os.path.join(work, "deadline.log")
    relay = relay_from(conf, log)
    wait_for("metrics", lambda: scrape(mport) is not None)
    dst = os.path.join(work, "r3")
    os.mkdir(dst)
    snd, rcv = pair_at_question(port, "14-apple-river-stone", src, dst)
    relay.send_signal(signal.SIGTERM)
    try:
        relay.wait(20)
    except subprocess.TimeoutExpired:
        fails.append("deadline: the relay did not stop at its drain deadline")
    if "1 rooms still open were closed" not in open(log).read():
        fails.append("deadline: the relay did not say it closed the open room")
    print("deadline: the relay stopped at its drain deadline, closing the unfinished room")
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()

finish("relay_operate", fails, work, "ok")
