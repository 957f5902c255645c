#!/usr/bin/env python3
"""tests/abuse/secrets.py — the code phrase stays secret on the machine:

  ps     given by TALLOW_CODE (sender and receiver), typed at the receiver's prompt (stdin), or
         on the command line (`send --code CODE`, `receive CODE`: wiped from argv once read), the
         code never shows in `ps -eo args`, /proc/PID/cmdline or /proc/PID/environ while they run;
  logs   with TALLOW_LOG=debug, the stderr of relay, sender and receiver never holds the code, any
         of its words, or the room id (hex, as the relay sees it: keyed BLAKE2b-256 of "N").
A transfer is actually made each time (so the logs cover the PAKE, the transfer and the end)."""
import os
import signal
import subprocess
import sys
import tempfile
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from tallowtest import finish, free_port, room_id, wait_listening  # noqa: E402

T = os.path.abspath(os.environ.get("TALLOW_BIN", "build/bin/tallow"))
def ps_args():
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def cmdlines(procs, fails, how):
    """/proc/PID/cmdline and environ of each process; each must still be running to be read."""
    out = b""
    for p in procs:
        try:
            out += open(f"/proc/{p.pid}/cmdline", "rb").read() + b"\n"
            out += open(f"/proc/{p.pid}/environ", "rb").read() + b"\n"
        except OSError:
            fails.append(f"{how}: process {p.pid} was gone before its /proc could be read")
    return out.decode("utf-8", "replace")


def main():
    work = tempfile.mkdtemp(prefix="tallow-secrets.")
    port = free_port()
    fails = []
    dbg = dict(os.environ, TALLOW_LOG="debug", TALLOW_RELAY=f"127.0.0.1:{port}", TALLOW_NO_P2P="1")
    relay = subprocess.Popen([T, "relay", "--listen", f"127.0.0.1:{port}"], env=dbg,
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "relay.log"), "wb"))
    wait_listening("127.0.0.1", port)
    src = os.path.join(work, "f.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(20 << 20))
    codes = {"env": "71-quartz-juniper-velvet", "prompt": "72-saffron-bramble-walnut",
             "argv": "73-cobalt-thistle-meadow"}
    try:
        for how, code in codes.items():
            dest = os.path.join(work, "dest-" + how)
            slog = open(os.path.join(work, how + ".send.log"), "wb")
            rlog = open(os.path.join(work, how + ".recv.log"), "wb")
            if how == "argv":  # the code on the command line: wiped from argv once read
                snd = subprocess.Popen([T, "send", "--code", code, src], env=dbg,
                                       stdout=slog, stderr=slog)
            else:
                snd = subprocess.Popen([T, "send", src], env=dict(dbg, TALLOW_CODE=code),
                                       stdout=slog, stderr=slog)
            if how == "argv":
                rcv = subprocess.Popen([T, "receive", "-o", dest, code], env=dbg,
                                       stdout=rlog, stderr=rlog, stdin=subprocess.PIPE)
            elif how == "env":
                # no --yes: the receiver waits at the accept question, so both are alive to read
                rcv = subprocess.Popen([T, "receive", "-o", dest],
                                       env=dict(dbg, TALLOW_CODE=code), stdout=rlog, stderr=rlog,
                                       stdin=subprocess.PIPE)
            else:
                rcv = subprocess.Popen([T, "receive", "--yes", "-o", dest], env=dbg,
                                       stdout=rlog, stderr=rlog, stdin=subprocess.PIPE)
            time.sleep(0.5)  # both up (the receiver at its question, or at the code prompt)
            seen = ps_args() + cmdlines([snd, rcv], fails, how)
            rcv.stdin.write(("y\n" if how != "prompt" else code + "\n").encode())
            rcv.stdin.flush()
            if how == "prompt":
                time.sleep(0.3)  # mid-transfer
                seen += ps_args() + cmdlines([snd, rcv], [], how)
            for p in (snd, rcv):
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    fails.append(f"{how}: a process hung")
            if snd.returncode or rcv.returncode:
                fails.append(f"{how}: the transfer failed ({snd.returncode}, {rcv.returncode})")
            hits = [w for w in code.split("-")[1:] + [code] if w in seen]
            print(f"{how:6}: code in ps/cmdline: {'YES ' + str(hits) if hits else 'no'}")
            if hits:
                fails.append(f"{how}: the code shows in ps: {hits}")
    finally:
        relay.send_signal(signal.SIGINT)  # at once (SIGTERM drains paired rooms)
        relay.wait(5)
    for name in sorted(os.listdir(work)):
        if not name.endswith(".log"):
            continue
        text = open(os.path.join(work, name), "rb").read().decode("utf-8", "replace")
        lines = len(text.splitlines())
        for how, code in codes.items():
            rid = room_id(code).hex()
            secrets = code.split("-")[1:] + [code, rid, rid[:16], rid[-16:]]
            hits = [s for s in secrets if s.lower() in text.lower()]
            if hits:
                fails.append(f"{name} ({lines} debug lines) holds {hits}")
        print(f"{name:16} {lines:4} lines at debug: no code, word or room id")
    finish("secrets", fails, work, "kept", "leaks")


if __name__ == "__main__":
    main()
