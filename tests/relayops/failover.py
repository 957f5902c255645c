#!/usr/bin/env python3
"""tests/relayops/failover.py — a relay dies in the middle of a transfer and the pair moves on.

Three real relays on loopback; sender and receiver are given all three (in different orders:
--relay on one side, TALLOW_RELAYS on the other) and --no-p2p, so every byte goes through the
room's first relay. Mid-way (the receiver is stopped with SIGSTOP once the carrying relay has
forwarded a quarter of the file, so the kill lands mid-transfer whatever the machine's speed),
that relay is killed with SIGKILL and the receiver continued. Both peers must move to the
room's second relay, meet there (its log shows the room paired), re-key the session and resume:
the file arrives identical and both exit 0; the third relay carries nothing. Then the same with
`sync` (a folder of files; the mirror identical) and `watch` (a live session: the file in flight
and a later change arrive through the next relay, in the same session), a pair `chat` (lines
both ways after the kill, nobody joins twice), a relay restarted on its port mid-transfer (it
forgot the room: "unknown resume token" sends both to the next relay), and a direct-path `watch`
whose only relay dies.
Prints how long after the kill the second relay paired the room (a figure, not asserted)."""
import filecmp
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from tallowtest import finish, wait_until  # noqa: E402
from relayfleet import forwarded, room_order, start_fleet  # noqa: E402

T = os.path.abspath(os.environ.get("TALLOW_BIN", "build/bin/tallow"))
SIZE = 192 * 1024 * 1024
fails = []
work = tempfile.mkdtemp(prefix="tallow-failover-")
procs = []


def start_relays(tag):
    return start_fleet(T, work, procs, tag)


def order(relays, code):
    return room_order(T, work, relays, code)


def kill_midway(first, victim_peer, total, what):
    """Waits until `first` forwarded a quarter of total, freezes victim_peer, kills the relay."""
    deadline = time.time() + 60
    while time.time() < deadline and forwarded(first["mport"]) < total // 4:
        if victim_peer.poll() is not None:
            fails.append(f"{what}: the transfer ended before the relay could be killed")
            return None
        time.sleep(0.01)
    victim_peer.send_signal(signal.SIGSTOP)
    got = forwarded(first["mport"])
    first["proc"].kill()
    first["proc"].wait()
    killed = time.time()
    victim_peer.send_signal(signal.SIGCONT)
    print(f"{what}: relay {first['addr']} killed after forwarding {got} of {total} bytes")
    if got >= total:
        fails.append(f"{what}: the kill came after the whole transfer")
    return killed


def paired_after(relay, since, limit=30):
    if wait_until(lambda: re.search(r"room \w+ paired", open(relay["log"]).read()), limit, 0.02):
        return time.time() - since
    return None


def section(tag, code):
    """The relays of one section, their order for code, and the listing in start order."""
    relays = start_relays(tag)
    return relays, order(relays, code), ",".join(r["addr"] for r in relays)


def reversed_listing(relays):
    return ",".join(r["addr"] for r in reversed(relays))


def stop(relays):
    for r in relays:
        if r["proc"].poll() is None:
            r["proc"].send_signal(signal.SIGINT)


def peer(argv, log, env, out=None, **kw):
    """A tallow process, its stderr in work/log (stdout to work/out, or nowhere)."""
    p = subprocess.Popen([T] + argv, stdout=open(os.path.join(work, out), "w") if out else subprocess.DEVNULL,
                         stderr=open(os.path.join(work, log), "w"), env=env, **kw)
    procs.append(p)
    return p


def ended(what, rcv, snd):
    """Waits (90 s each) for both peers; True if both exited 0, else a failure is noted."""
    try:
        rr, rs = rcv.wait(90), snd.wait(90)
    except subprocess.TimeoutExpired:
        rr = rs = "hung"
    if rr != 0 or rs != 0:
        fails.append(f"{what}: exit statuses receiver {rr}, sender {rs}")
        return False
    return True


try:
    # ---- send / receive
    code = "21-apple-river-stone"
    relays, o, listing = section("send", code)
    if len(o) != 3:
        fails.append(f"no relay order: {o}")
        raise SystemExit
    src = os.path.join(work, "big.bin")
    with open(src, "wb") as f:
        block = os.urandom(1024 * 1024)
        for i in range(SIZE // len(block)):
            f.write(block[i % 7:] + block[:i % 7])
    dst = os.path.join(work, "dst")
    os.mkdir(dst)
    env = dict(os.environ, TALLOW_LOG="info")
    env.pop("TALLOW_RELAY", None)
    snd = peer(["send", "--no-p2p", "--json", "--relay", listing, "--code", code, src], "send.log", env, "send.json")
    rcv = peer(["receive", "--no-p2p", "--json", "--yes", "-o", dst, code], "recv.log",
               dict(env, TALLOW_RELAYS=reversed_listing(relays)), "recv.json")
    killed = kill_midway(o[0], rcv, SIZE, "send")
    if killed:
        took = paired_after(o[1], killed)
        print(f"send: the room paired on the next relay {o[1]['addr']} "
              + (f"{took:.2f} s after the kill" if took is not None else "NEVER"))
        if took is None:
            fails.append("send: the room never paired on the next relay")
    if ended("send", rcv, snd) and not filecmp.cmp(src, os.path.join(dst, "big.bin"), shallow=False):
        fails.append("send: the received file differs")
    if re.search(r"room \w+ created", open(o[2]["log"]).read()):
        fails.append("send: the third relay got a room")
    for side in ("send", "recv"):
        log = open(os.path.join(work, f"{side}.log")).read()
        if f"moving to {o[1]['addr']}" not in log:
            fails.append(f"send: the {side} side did not say it moved to {o[1]['addr']}")
    later = forwarded(o[1]["mport"])
    print(f"send: the next relay forwarded {later} bytes; file identical: {not fails}")
    stop(relays)

    # ---- sync
    code = "22-maple-cloud-river"
    relays, o, listing = section("sync", code)
    tree = os.path.join(work, "tree")
    os.makedirs(os.path.join(tree, "sub"))
    total = 0
    for i in range(48):
        data = os.urandom(2 * 1024 * 1024)
        total += len(data)
        open(os.path.join(tree, "sub" if i % 2 else "", f"f{i}.bin"), "wb").write(data)
    mirror = os.path.join(work, "mirror")
    os.mkdir(mirror)
    snd = peer(["sync", "--no-p2p", "--relay", listing, "--code", code, tree], "sync-send.log", env)
    rcv = peer(["sync", "--receive", "--no-p2p", "--relay", reversed_listing(relays), code, mirror], "sync-recv.log", env)
    killed = kill_midway(o[0], rcv, total, "sync")
    if killed:
        took = paired_after(o[1], killed)
        print(f"sync: the room paired on the next relay " + (f"{took:.2f} s after the kill" if took is not None else "NEVER"))
    ok = ended("sync", rcv, snd)
    if ok:
        d = subprocess.run(["diff", "-r", tree, mirror], capture_output=True, text=True)
        if d.returncode != 0:
            fails.append(f"sync: the mirror differs: {d.stdout[:300]}")
    print("sync: mirror identical" if ok else "sync: failed")
    stop(relays)

    # ---- watch: a live session; its relay killed while a 64 MiB file goes through; the file and a
    # later change arrive through the next relay within the same session (no "connected" again)
    code = "23-stone-apple-maple"
    relays, o, listing = section("watch", code)
    wsrc, wdst = os.path.join(work, "wsrc"), os.path.join(work, "wdst")
    os.mkdir(wsrc)
    os.mkdir(wdst)
    wenv = dict(env, TALLOW_CODE=code)
    snd = peer(["watch", "--no-p2p", "--relay", listing, wsrc], "watch-send.log", wenv)
    rcv = peer(["watch", "--receive", "--no-p2p", "--relay", listing, wdst], "watch-recv.log", wenv)

    def arrived(name, data):
        path = os.path.join(wdst, name)  # the current section's mirror
        return os.path.exists(path) and open(path, "rb").read() == data

    def wait_arrived(name, data, limit=60):
        return wait_until(lambda: arrived(name, data), limit)

    first = b"first\n"
    open(os.path.join(wsrc, "a.txt"), "wb").write(first)
    if not wait_arrived("a.txt", first):
        fails.append("watch: the first file never arrived")
    big = os.urandom(64 * 1024 * 1024)
    base = forwarded(o[0]["mport"])
    open(os.path.join(wsrc, "big.bin"), "wb").write(big)
    kill_midway(o[0], rcv, 4 * base + len(big), "watch")  # at base + a quarter of the file
    if not wait_arrived("big.bin", big):
        fails.append("watch: the file in flight when the relay died never arrived")
    later = b"after the failover\n"
    open(os.path.join(wsrc, "later.txt"), "wb").write(later)
    if not wait_arrived("later.txt", later):
        fails.append("watch: a change after the failover never arrived")
    rlog = open(os.path.join(work, "watch-recv.log")).read()
    if rlog.count("connected; mirroring") != 1:
        fails.append("watch: the session was opened again instead of failing over")
    if f"moving to {o[1]['addr']}" not in rlog:
        fails.append(f"watch: the receiver did not move to {o[1]['addr']}")
    print("watch: the file in flight and a later change arrived through the next relay, same session")
    stop(relays)

    # ---- restart: the carrying relay is restarted on the same port (its rooms are gone): both
    # peers are told "unknown resume token" there and move on to the room's next relay
    code = "26-cloud-maple-lamp"
    relays, o, listing = section("restart", code)
    dst = os.path.join(work, "dst-restart")
    os.mkdir(dst)
    snd = peer(["send", "--no-p2p", "--relay", listing, "--code", code, src], "restart-send.log", env)
    rcv = peer(["receive", "--no-p2p", "--yes", "--relay", listing, "-o", dst, code], "restart-recv.log", env)
    wait_until(lambda: forwarded(o[0]["mport"]) >= SIZE // 4 or rcv.poll() is not None, 60, 0.01)
    snd.send_signal(signal.SIGSTOP)
    rcv.send_signal(signal.SIGSTOP)
    o[0]["proc"].kill()
    o[0]["proc"].wait()
    fresh = peer(["relay", "--listen", o[0]["addr"]], "restart-fresh.log", dict(os.environ, TALLOW_LOG="info"))
    wait_until(lambda: "listening" in open(os.path.join(work, "restart-fresh.log")).read(), 10, 0.02)
    snd.send_signal(signal.SIGCONT)
    rcv.send_signal(signal.SIGCONT)
    if ended("restart", rcv, snd) and not filecmp.cmp(src, os.path.join(dst, "big.bin"), shallow=False):
        fails.append("restart: the received file differs")
    for side in ("send", "recv"):
        log = open(os.path.join(work, f"restart-{side}.log")).read()
        if f"unknown resume token; moving to {o[1]['addr']}" not in log:
            fails.append(f"restart: the {side} side did not move on after 'unknown resume token'")
    print("restart: the restarted relay forgot the room; both moved to the next relay, file identical")
    fresh.send_signal(signal.SIGINT)
    stop(relays)

    # ---- chat: a pair chat whose relay dies between two lines; the next lines go both ways
    # through the room's next relay, in the same chat (nobody "joined" twice), /quit exits 0
    code = "25-lamp-river-cloud"
    relays, o, listing = section("chat", code)
    cenv = dict(env, TALLOW_LOG="info")
    ca = peer(["chat", "--no-p2p", "--relay", listing, "--code", code], "chat-a.err", cenv, "chat-a.out",
              stdin=subprocess.PIPE)
    cb = peer(["chat", "--no-p2p", "--relay", reversed_listing(relays), code], "chat-b.err", cenv, "chat-b.out",
              stdin=subprocess.PIPE)

    def chat_wait(name, text, limit=20):
        if wait_until(lambda: text in open(os.path.join(work, name)).read(), limit):
            return True
        fails.append(f"chat: '{text}' never showed in {name}")
        return False

    def say(p, line):
        p.stdin.write(line.encode() + b"\n")
        p.stdin.flush()

    if chat_wait("chat-a.err", "* peer joined") and chat_wait("chat-b.err", "* peer joined"):
        say(ca, "before the failover")
        chat_wait("chat-b.out", "peer: before the failover")
        o[0]["proc"].kill()
        o[0]["proc"].wait()
        chat_wait("chat-a.err", f"moving to {o[1]['addr']}")
        chat_wait("chat-b.err", f"moving to {o[1]['addr']}")
        say(ca, "after the failover, from A")
        say(cb, "after the failover, from B")
        chat_wait("chat-b.out", "peer: after the failover, from A")
        chat_wait("chat-a.out", "peer: after the failover, from B")
        for name in ("chat-a.err", "chat-b.err"):
            if open(os.path.join(work, name)).read().count("joined") != 1:
                fails.append(f"chat: {name}: the peer joined again instead of failing over")
        say(ca, "/quit")
        try:
            if ca.wait(20) != 0 or cb.wait(20) != 0:
                fails.append(f"chat: exit statuses {ca.returncode}, {cb.returncode}")
        except subprocess.TimeoutExpired:
            fails.append("chat: did not end after /quit")
        print("chat: lines went both ways through the next relay after the kill; /quit ended both")
    stop(relays)

    # ---- direct: a watch session on the direct path (QUIC on loopback) keeps going when its only
    # relay dies; the relay channel gives up after TALLOW_RELAY_RECONNECT_MS and the session stays
    relays = start_relays("direct")[:1]
    code = "24-river-stone-apple"
    wsrc, wdst = os.path.join(work, "dsrc"), os.path.join(work, "ddst")
    os.mkdir(wsrc)
    os.mkdir(wdst)
    denv = dict(env, TALLOW_CODE=code, TALLOW_RELAY_RECONNECT_MS="1500", TALLOW_LOG="info")
    logs = [os.path.join(work, "direct-send.log"), os.path.join(work, "direct-recv.log")]
    snd = peer(["watch", "--relay", relays[0]["addr"], wsrc], logs[0], denv)
    rcv = peer(["watch", "--receive", "--relay", relays[0]["addr"], wdst], logs[1], denv)
    first = b"direct first\n"
    open(os.path.join(wsrc, "a.txt"), "wb").write(first)
    if not wait_arrived("a.txt", first):
        fails.append("direct: the first file never arrived")

    def both(text, limit=30):
        return wait_until(lambda: all(text in open(f).read() for f in logs), limit)

    if not both("direct path up"):
        fails.append("direct: the session did not go direct (cannot test the relay's death under it)")
    else:
        relays[0]["proc"].kill()
        relays[0]["proc"].wait()
        if not both("going on over the direct path"):
            fails.append("direct: the relay channel's end was not survived")
        after = os.urandom(4 * 1024 * 1024)
        open(os.path.join(wsrc, "after.bin"), "wb").write(after)
        if not wait_arrived("after.bin", after):
            fails.append("direct: a change after the relay died never arrived")
        if open(logs[1]).read().count("connected; mirroring") != 1:
            fails.append("direct: the session was opened again")
        print("direct: the relay died under a direct watch session; it went on and a later change arrived")
except SystemExit:
    pass
finally:
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)
            except OSError:
                pass
            p.kill()
            p.wait()

finish("relay_failover", fails, work, "ok")
