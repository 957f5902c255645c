"""tests/pylib/relayfleet.py — a fleet of real relays on loopback for the failover tests
(tests/relayops/failover.py, failover_group.py): start them with their metrics ports, read how
many bytes each forwarded, and list them in a room's order as tallow.relays does."""
import os
import re
import subprocess
import time
import urllib.request

from tallowtest import free_port


def forwarded(mport):
    """Bytes the relay with metrics port mport forwarded (0 when it says none), -1 if it does
    not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=2) as r:
            m = re.search(r"^tallow_relay_forwarded_bytes_total (\d+)$", r.read().decode(), re.M)
            return int(m.group(1)) if m else 0
    except OSError:
        return -1


def start_fleet(tallow, work, procs, tag, count=3):
    """count relays, each answering on its metrics port (procs gets each process). A port picked
    free can be taken by another test before the relay binds it: such a relay exits at once and
    gets new ports."""
    relays = []
    for i in range(count):
        log = os.path.join(work, f"{tag}-relay{i}.log")
        for attempt in range(5):
            port, mport = free_port(), free_port()
            while mport == port:
                mport = free_port()
            p = subprocess.Popen([tallow, "relay", "--listen", f"127.0.0.1:{port}", "--metrics",
                                  f"127.0.0.1:{mport}"],
                                 stderr=open(log, "w"), env=dict(os.environ, TALLOW_LOG="info"))
            deadline = time.time() + 10
            while time.time() < deadline and p.poll() is None and forwarded(mport) < 0:
                time.sleep(0.05)
            if p.poll() is None:
                break
        procs.append(p)
        relays.append({"addr": f"127.0.0.1:{port}", "mport": mport, "proc": p, "log": log})
    return relays


def room_order(tallow, work, relays, code):
    """The relays in the room's order for code (tallow.relays.order), as both peers derive it."""
    listing = ",".join(r["addr"] for r in relays)
    path = os.path.join(work, "order.lua")
    with open(path, "w") as f:
        f.write('print(table.concat(assert(require("tallow.relays").order(arg[1], arg[2])), " "))\n')
    out = subprocess.run([tallow, "run", path, listing, code], capture_output=True, text=True)
    by = {r["addr"]: r for r in relays}
    return [by[a] for a in out.stdout.split()]
