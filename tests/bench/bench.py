#!/usr/bin/python3
"""tallow benchmarks against magic-wormhole 0.12 and cp, all on loopback (run by `make bench`).

Sections (BENCH_ONLY=big,small,concurrent,sync,watch,interop selects some):
  big         one 1 GiB file: tallow via its relay, tallow direct (QUIC), magic-wormhole direct and
              through its transit relay, scp (AES-128-GCM and the default cipher) and rsync -e ssh
              to a throwaway sshd on loopback (root only), cp (and cp + fsync: tallow's receiver
              fsyncs); CPU seconds per GiB for every row, min/median/max over BENCH_TALLOW_RUNS
              (5) runs for the tallow rows
  small       one 1 KiB file end to end (pairing, handshake, transfer)
  concurrent  BENCH_CONCURRENT (1000) transfers of 1 MiB through one relay, all in flight at once
  sync        tallow sync of BENCH_SYNC_FILES (10,000) small files (if `tallow sync` exists)
  watch       tallow watch propagation latency (if `tallow watch` exists)
  interop     one 1 GiB file between tallow (--wormhole) and magic-wormhole, each way, against
              magic-wormhole to magic-wormhole; direct and through the transit relay

Every peer runs under /usr/bin/time (wall, user+sys CPU, peak RSS); servers are sampled from
/proc (VmHWM, reset between runs through clear_refs; CPU from /proc/PID/stat). Each case runs
BENCH_RUNS times (default 3; the tallow rows of the 1 GiB table max(BENCH_RUNS, BENCH_TALLOW_RUNS)
times) and the median of each figure is reported. No thresholds: only
"everything arrived intact" is checked.
"""
import json
import os
import pwd
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "pylib"))
from tallowtest import free_port, wait_listening  # noqa: E402

TALLOW = os.environ.get("TALLOW_BIN", os.path.join(ROOT, "build", "bin", "tallow"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
TRUNS = max(RUNS, int(os.environ.get("BENCH_TALLOW_RUNS", "5")))  # tallow rows: min/median/max
SIZE_MB = int(os.environ.get("BENCH_SIZE_MB", "1024"))  # MiB
WORK = os.environ.get("BENCH_DIR", "/tmp/tallow-bench")
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "big,small,concurrent,sync,watch,interop").split(",")))
NCONC = int(os.environ.get("BENCH_CONCURRENT", "1000"))
CASES = list(filter(None, os.environ.get("BENCH_CASES", "").split(",")))
NSYNC = int(os.environ.get("BENCH_SYNC_FILES", "10000"))
WORMHOLE = "/usr/bin/wormhole"
TWIST = "/usr/bin/twist3"
TIME = "/usr/bin/time"
SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
GIB = float(1 << 30)
CLK = os.sysconf("SC_CLK_TCK")
MB = 1e6  # throughput in MB/s (10^6 bytes), sizes in MiB
OUT_LINES = []


def say(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    OUT_LINES.append(s)


def note(*a):
    print("  .. " + " ".join(str(x) for x in a), file=sys.stderr, flush=True)


def wait_port(port, proc, timeout=20):
    if not wait_listening("127.0.0.1", port, timeout, proc):
        raise RuntimeError("%r: exited while starting, or port %d never opened" % (proc.args, port))


class Server:
    """A long-running process on loopback whose CPU and peak memory we sample from /proc."""

    def __init__(self, name, argv, port, env=None, log=None, children=False):
        self.name = name
        self.children = children  # count the CPU of the children it has reaped (sshd's sessions)
        self.log = open(log or os.path.join(WORK, name + ".log"), "w")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                  cwd=WORK)
        wait_port(port, self.p)

    def cpu(self):
        with open("/proc/%d/stat" % self.p.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        own = int(fields[11]) + int(fields[12])  # utime, stime
        if self.children:
            own += int(fields[13]) + int(fields[14])  # cutime, cstime
        return own / CLK

    def live_children(self):
        """Pids whose parent is this server (a session sshd has not reaped yet)."""
        kids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == self.p.pid:
                            kids.append(int(d))
                except (OSError, ValueError, IndexError):
                    pass
        return kids

    def status(self, key):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def reset_peak(self):
        try:
            with open("/proc/%d/clear_refs" % self.p.pid, "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        except OSError:
            pass
        self.cpu0 = self.cpu()

    def sample(self):
        if self.children:  # a child's CPU reaches cutime when it is reaped: wait for that (10 s)
            end = time.monotonic() + 10
            while self.live_children() and time.monotonic() < end:
                time.sleep(0.01)
        return {"cpu": self.cpu() - self.cpu0, "rss": self.status("VmHWM")}

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def timed(argv, tag, env=None, stdin=None):
    """Start argv under /usr/bin/time; returns (Popen, timefile, stdout file)."""
    tf = os.path.join(WORK, tag + ".time")
    of = os.path.join(WORK, tag + ".out")
    out = open(of, "w")
    err = open(os.path.join(WORK, tag + ".err"), "w")
    p = subprocess.Popen([TIME, "-f", "%e %U %S %M", "-o", tf] + argv, stdout=out, stderr=err,
                         stdin=stdin if stdin is not None else subprocess.DEVNULL, env=env, cwd=WORK)
    out.close()
    err.close()
    return p, tf, of


RUSAGE = {}


def wait(p, timeout=600):
    """Popen.wait that also keeps the process's rusage (µs CPU; /usr/bin/time prints 10 ms)."""
    end = time.monotonic() + timeout
    while p.returncode is None:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            RUSAGE[p.pid] = ru
            break
        if time.monotonic() > end:
            p.kill()
        time.sleep(0.002)
    return p.returncode


def read_time(tf, p=None):
    """Figures of one process: wall and peak RSS from /usr/bin/time -f; CPU (user+sys) from the
    rusage of /usr/bin/time itself, which includes the process it ran, when we have it."""
    with open(tf) as f:
        last = f.read().strip().splitlines()[-1].split()
    e, u, s, m = float(last[0]), float(last[1]), float(last[2]), int(last[3])
    cpu = u + s
    if p is not None and p.pid in RUSAGE:
        cpu = RUSAGE[p.pid].ru_utime + RUSAGE[p.pid].ru_stime
    return {"wall": e, "cpu": cpu, "rss": m * 1024}


def events(of):
    ev = []
    with open(of, errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    ev.append(json.loads(line))
                except ValueError:
                    pass
    return ev


def tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def make_file(path, size):
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    with open("/dev/urandom", "rb") as r, open(path, "wb") as w:
        left = size
        while left:
            b = r.read(min(left, 1 << 22))
            w.write(b)
            left -= len(b)


def same(a, b):
    if os.path.isdir(a):
        return subprocess.call(["diff", "-rq", a, b], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
    return subprocess.call(["cmp", "-s", a, b]) == 0


def clean(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.unlink(path)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------------------- the tools
class Tallow:
    def __init__(self):
        self.port = free_port()
        self.relay = Server("tallow-relay", [TALLOW, "relay", "--listen", "127.0.0.1:%d" % self.port,
                                             "--max-conns-per-ip", "100000", "--max-rooms-per-ip", "100000",
                                             "--max-rooms", "100000"], self.port,
                            env=dict(os.environ, TALLOW_LOG=os.environ.get("BENCH_RELAY_LOG", "warn")))
        self.env = dict(os.environ, TALLOW_RELAY="127.0.0.1:%d" % self.port)
        self.env.pop("TALLOW_RELAYS", None)
        self.n = 0

    def code(self):
        self.n += 1
        return "%d-bench-apple-banana" % self.n

    def pair(self, src, dst_dir, direct, tag):
        code = self.code()
        flags = ["--allow-loopback"] if direct else ["--no-p2p"]
        s = timed([TALLOW, "send", "--json"] + flags + ["--code", code, src], tag + "-s", self.env)
        r = timed([TALLOW, "receive", "--json", "--yes"] + flags + ["-o", dst_dir, code], tag + "-r", self.env)
        return s, r, [self.relay]

    def path_of(self, r_out):
        for e in events(r_out):
            if e.get("event") == "received":
                return e.get("path")
        return None

    def stop(self):
        self.relay.stop()


class Wormhole:
    def __init__(self):
        self.mport = free_port()
        self.tport = free_port()
        self.mailbox = Server("wormhole-mailbox", [TWIST, "wormhole-mailbox",
                                                   "--port=tcp:%d:interface=127.0.0.1" % self.mport,
                                                   "--channel-db=" + os.path.join(WORK, "mailbox.sqlite")],
                              self.mport)
        self.transit = Server("wormhole-transit", [TWIST, "transitrelay",
                                                   "--port=tcp:%d:interface=127.0.0.1" % self.tport], self.tport)
        self.base = [WORMHOLE, "--relay-url", "ws://127.0.0.1:%d/v1" % self.mport,
                     "--transit-helper", "tcp:127.0.0.1:%d" % self.tport]
        self.n = 0

    def pair(self, src, dst_dir, direct, tag):
        self.n += 1
        code = "%d-bench-apple" % self.n
        flags = [] if direct else ["--no-listen"]
        s = timed(self.base + ["send", "--hide-progress"] + flags + ["--code", code, src], tag + "-s")
        r = timed(self.base + ["receive", "--hide-progress", "--accept-file"] + flags +
                  ["-o", os.path.join(dst_dir, os.path.basename(src)), code], tag + "-r")
        return s, r, [self.transit, self.mailbox]

    def path_of(self, r_out):
        with open(r_out.replace(".out", ".err"), errors="replace") as f:
            t = f.read()
        with open(r_out, errors="replace") as f:
            t += f.read()
        return "relay" if "->relay:" in t else "direct"

    def stop(self):
        self.mailbox.stop()
        self.transit.stop()


class Interop(Wormhole):
    """tallow --wormhole on one side (sender or receiver), magic-wormhole on the other, through
    magic-wormhole's own mailbox server and transit relay."""

    def __init__(self, tallow_sends):
        super().__init__()
        self.tallow_sends = tallow_sends
        self.env = dict(os.environ, TALLOW_WORMHOLE_RELAY="ws://127.0.0.1:%d/v1" % self.mport,
                        TALLOW_WORMHOLE_TRANSIT="tcp:127.0.0.1:%d" % self.tport)
        self.env.pop("TALLOW_NO_P2P", None)

    def pair(self, src, dst_dir, direct, tag):
        self.n += 1
        code = "%d-bench-apple" % self.n
        wflags = [] if direct else ["--no-listen"]
        tflags = [] if direct else ["--no-p2p"]
        if self.tallow_sends:
            s = timed([TALLOW, "send", "--wormhole", "--json"] + tflags + ["--code", code, src], tag + "-s", self.env)
            r = timed(self.base + ["receive", "--hide-progress", "--accept-file"] + wflags +
                      ["-o", os.path.join(dst_dir, os.path.basename(src)), code], tag + "-r")
        else:
            s = timed(self.base + ["send", "--hide-progress"] + wflags + ["--code", code, src], tag + "-s")
            time.sleep(0.3)  # the Python sender claims the nameplate first, as a person would
            r = timed([TALLOW, "receive", "--wormhole", "--json", "--yes"] + tflags + ["-o", dst_dir, code],
                      tag + "-r", self.env)
        return s, r, [self.transit, self.mailbox]

    def path_of(self, r_out):
        if self.tallow_sends:
            return super().path_of(r_out)
        for e in events(r_out):
            if e.get("event") == "received":
                return e.get("path")
        return None


class Ssh:
    """What a user with SSH access would pick instead: scp and rsync -e ssh to a throwaway sshd on
    127.0.0.1. Its host key, the user key, authorized_keys, known_hosts and its config live in a
    temporary folder; the system's sshd config is not read or changed. sshd runs as root in the
    foreground (-D -e) and stops with the benchmark."""

    CASES = [("scp -c aes128-gcm@openssh.com", "scp-gcm"), ("scp (default cipher)", "scp"),
             ("rsync -e ssh", "rsync")]

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tallow-bench-ssh-")
        d = self.dir
        for name in ("host_ed25519", "user_ed25519"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tallow-bench",
                            "-f", os.path.join(d, name)], check=True)
        shutil.copy(os.path.join(d, "user_ed25519.pub"), os.path.join(d, "authorized_keys"))
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.port = free_port()
        cfg = os.path.join(d, "sshd_config")
        with open(cfg, "w") as f:
            f.write("\n".join([
                "ListenAddress 127.0.0.1:%d" % self.port,
                "HostKey %s/host_ed25519" % d,
                "PidFile %s/sshd.pid" % d,
                "AuthorizedKeysFile %s/authorized_keys" % d,
                "AllowUsers %s" % self.user,
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",  # the keys are in a folder under /tmp
                "PrintMotd no",
                "Subsystem sftp %s" % SFTP_SERVER]) + "\n")
        # sshd's privilege separation folder is compiled in; the packaged service creates it
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.sshd = Server("sshd", [SSHD, "-D", "-e", "-f", cfg], self.port, children=True)
        self.opts = ["-F", "none", "-i", os.path.join(d, "user_ed25519"), "-o", "IdentitiesOnly=yes",
                     "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                     "-o", "UserKnownHostsFile=%s/known_hosts" % d, "-o", "LogLevel=ERROR"]

    def argv(self, how, src, dst_dir):
        target = "%s@127.0.0.1:%s/" % (self.user, dst_dir)
        if how == "rsync":
            return ["rsync", "-e", " ".join(["ssh", "-p", str(self.port)] + self.opts), src, target]
        cipher = ["-c", "aes128-gcm@openssh.com"] if how == "scp-gcm" else []
        return ["scp", "-q", "-P", str(self.port)] + self.opts + cipher + [src, target]

    def stop(self):
        self.sshd.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_ssh(ssh, how, src, tag):
    """One copy to the local sshd. Sender = the client (scp or rsync and its ssh); receiver = the
    sshd side (listener, session processes and sftp-server or rsync --server, summed once the
    listener has reaped them; no peak RSS)."""
    dst = os.path.join(WORK, "dst")
    clean(dst)
    os.makedirs(dst)
    subprocess.call(["sync"])
    ssh.sshd.reset_peak()
    t0 = time.monotonic()
    p, tf, of = timed(ssh.argv(how, src, dst), tag)
    rc = wait(p)
    wall = time.monotonic() - t0
    server = ssh.sshd.sample()
    out = os.path.join(dst, os.path.basename(src))
    if rc or not same(src, out):
        note("%s: copy failed (rc %s)\n%s%s" % (tag, rc, tail(tf.replace(".time", ".err")),
                                               tail(os.path.join(WORK, "sshd.log"))))
        return None
    t = read_time(tf, p)
    clean(dst)
    return {"wall": wall, "s_cpu": t["cpu"], "r_cpu": server["cpu"], "s_rss": t["rss"], "r_rss": None,
            "relay_cpu": None, "relay_rss": [], "path": "ssh"}


def bench_interop():
    """tallow <-> magic-wormhole through the wormhole plugin, against wormhole <-> wormhole."""
    size = SIZE_MB << 20
    src = os.path.join(WORK, "bench-%d.bin" % size)
    make_file(src, size)
    subprocess.call(["cat", src], stdout=subprocess.DEVNULL)
    w, tw, wt = Wormhole(), Interop(True), Interop(False)
    try:
        cases = []
        for direct, how in ((True, "direct"), (False, "relay")):
            cases += [("magic-wormhole → magic-wormhole %s" % how, w, direct),
                      ("tallow → magic-wormhole %s" % how, tw, direct),
                      ("magic-wormhole → tallow %s" % how, wt, direct)]
        res = {c[0]: [] for c in cases}
        for i in range(RUNS):
            for label, tool, direct in cases:
                note("interop run %d/%d: %s" % (i + 1, RUNS, label))
                res[label].append(run_pair(tool, src, direct, "i-%d-%d" % (i, len(res[label])),
                                           "direct" if direct else "relay"))
        rows = [(label, summarize(res[label]) or "failed") for label, _, _ in cases]
        base = {}
        for how in ("direct", "relay"):
            base["tallow → magic-wormhole %s" % how] = "magic-wormhole → magic-wormhole %s" % how
            base["magic-wormhole → tallow %s" % how] = "magic-wormhole → magic-wormhole %s" % how
        table("one %d MiB file, tallow --wormhole with magic-wormhole" % SIZE_MB, size, rows, list(base.items()))
        say("")
        say("(%d runs each, median; both peers started → both exited; magic-wormhole's mailbox server "
            "and transit relay; relay = --no-listen on the Python side, --no-p2p on tallow's)" % RUNS)
    finally:
        w.stop()
        tw.stop()
        wt.stop()


def run_pair(tool, src, direct, tag, expect_path=None):
    """One transfer; returns a dict of figures, or None (with a note) when it did not arrive."""
    dst = os.path.join(WORK, "dst")
    clean(dst)
    os.makedirs(dst)
    subprocess.call(["sync"])
    servers = [tool.relay] if isinstance(tool, Tallow) else [tool.transit, tool.mailbox]
    for sv in servers:
        sv.reset_peak()
    t0 = time.monotonic()
    (sp, stf, sof), (rp, rtf, rof), servers = tool.pair(src, dst, direct, tag)
    rc_r = wait(rp)
    rc_s = wait(sp)
    wall = time.monotonic() - t0
    samples = [sv.sample() for sv in servers]
    out = os.path.join(dst, os.path.basename(src))
    if rc_s or rc_r or not same(src, out):
        note("%s: transfer failed (sender rc %s, receiver rc %s)\n%s%s" % (tag, rc_s, rc_r, tail(sof.replace(".out", ".err")), tail(rof.replace(".out", ".err"))))
        return None
    path = tool.path_of(rof)
    if expect_path and path != expect_path:
        return {"path": path}
    s, r = read_time(stf, sp), read_time(rtf, rp)
    res = {"wall": wall, "s_cpu": s["cpu"], "r_cpu": r["cpu"], "s_rss": s["rss"], "r_rss": r["rss"],
           "relay_cpu": sum(x["cpu"] for x in samples), "relay_rss": [x["rss"] for x in samples],
           "path": path}
    clean(dst)
    return res


def run_cp(src, fsync, tag):
    dst = os.path.join(WORK, "cp-dst")
    clean(dst)
    subprocess.call(["sync"])
    argv = ["cp", src, dst] if not fsync else ["sh", "-c", 'cp "$0" "$1" && sync "$1"', src, dst]
    t0 = time.monotonic()
    p, tf, of = timed(argv, tag)
    wait(p)
    wall = time.monotonic() - t0
    ok = same(src, dst)
    clean(dst)
    if not ok:
        return None
    t = read_time(tf, p)
    return {"wall": wall, "s_cpu": t["cpu"], "r_cpu": None, "s_rss": t["rss"], "r_rss": None,
            "relay_cpu": None, "relay_rss": [], "path": "disk"}


def summarize(runs):
    runs = [r for r in runs if r and "wall" in r]
    if not runs:
        return None
    keys = ["wall", "s_cpu", "r_cpu", "s_rss", "r_rss", "relay_cpu"]
    m = {k: med([r[k] for r in runs]) for k in keys}
    for k in ("wall", "s_cpu", "r_cpu", "relay_cpu"):  # the spread, for the tallow rows
        xs = [r[k] for r in runs if r[k] is not None]
        m["min_" + k], m["max_" + k] = (min(xs), max(xs)) if xs else (None, None)
    n = max(len(r["relay_rss"]) for r in runs)
    m["relay_rss"] = [med([r["relay_rss"][i] for r in runs if len(r["relay_rss"]) > i]) for i in range(n)]
    m["n"] = len(runs)
    return m


def fmt(x, f="%.2f"):
    return "-" if x is None else f % x


def mib(x):
    return "-" if x is None else "%.1f" % (x / 1048576)


def table(title, size, rows, base_of):
    """rows: [(label, summary or str)], base_of: [(tallow label, label it is compared with)]."""
    say("")
    say("### " + title)
    say("")
    say("| case | wall s | MB/s | CPU s sender | CPU s receiver | CPU s relay | RSS MiB sender | RSS MiB receiver | relay peak MiB |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, m in rows:
        if not isinstance(m, dict):
            say("| %s | %s | | | | | | | |" % (label, m))
            continue
        rr = "/".join(mib(x) for x in m["relay_rss"]) or "-"
        say("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, fmt(m["wall"], "%.3f" if m["wall"] < 10 else "%.2f"), fmt(size / MB / m["wall"] if size >= MB and "nothing changed" not in label else None, "%.0f"),
            fmt(m["s_cpu"], "%.3f"), fmt(m["r_cpu"], "%.3f"), fmt(m["relay_cpu"]), mib(m["s_rss"]), mib(m["r_rss"]), rr))
    byl = dict(rows)
    ratios = []
    for label, base in base_of:
        a, b = byl.get(label), byl.get(base)
        if isinstance(a, dict) and isinstance(b, dict):
            ca = a["s_cpu"] + a["r_cpu"] + (a["relay_cpu"] or 0)
            cb = b["s_cpu"] + b["r_cpu"] + (b["relay_cpu"] or 0)
            ra = max(x for x in (a["s_rss"], a["r_rss"]) if x is not None)
            rb = max(x for x in (b["s_rss"], b["r_rss"]) if x is not None)
            ratios.append("| %s vs %s | %.2f× | %s | %.2f× |" % (label, base, b["wall"] / a["wall"],
                                                                 "%.2f×" % (cb / ca) if ca > 0 else "-", rb / ra))
        else:
            ratios.append("| %s vs %s | n/a | n/a | n/a |" % (label, base))
    if ratios:
        say("")
        say("| ratio (other ÷ tallow, >1 = tallow better) | speed | total CPU | peer peak RSS |")
        say("|---|---:|---:|---:|")
        for r in ratios:
            say(r)


def span(m, k, scale=1.0, f="%.2f"):
    if m.get("min_" + k) is None:
        return "-"
    return " / ".join(f % (m[x] * scale) for x in ("min_" + k, k, "max_" + k))


def per_gib(size, rows):
    """CPU seconds per GiB moved, every row; then min / median / max of the rows run often enough."""
    g = GIB / size
    say("")
    say("| CPU s per GiB (median) | sender | receiver | relay / server | total |")
    say("|---|---:|---:|---:|---:|")
    for label, m in rows:
        if not isinstance(m, dict):
            continue
        parts = [m["s_cpu"], m["r_cpu"], m["relay_cpu"]]
        total = sum(x for x in parts if x is not None)
        say("| %s | %s | %s | %s | %.2f |" % (label, fmt(g * parts[0] if parts[0] is not None else None),
                                             fmt(g * parts[1] if parts[1] is not None else None),
                                             fmt(g * parts[2] if parts[2] is not None else None), g * total))
    spread = [(label, m) for label, m in rows if isinstance(m, dict) and m["n"] >= 5]
    if not spread:
        return
    say("")
    say("| spread, min / median / max | runs | wall s | max ÷ min wall | CPU s/GiB sender | CPU s/GiB receiver | CPU s/GiB relay |")
    say("|---|---:|---:|---:|---:|---:|---:|")
    for label, m in spread:
        say("| %s | %d | %s | %.2f | %s | %s | %s |" % (
            label, m["n"], span(m, "wall", 1, "%.3f"), m["max_wall"] / m["min_wall"],
            span(m, "s_cpu", g), span(m, "r_cpu", g), span(m, "relay_cpu", g)))


# ---------------------------------------------------------------------------- sections
def direct_landed(t):
    src = os.path.join(WORK, "probe.bin")
    make_file(src, 65536)
    r = run_pair(t, src, True, "probe-direct")
    return r is not None and r.get("path") == "direct"


def ssh_missing():
    if os.getuid() != 0:
        return "n/a (sshd needs root: run `make bench` as root)"
    for path in (SSHD, SFTP_SERVER, "/usr/bin/scp", "/usr/bin/rsync"):
        if not os.path.exists(path):
            return "n/a (%s missing: openssh-server, openssh-client, rsync)" % path
    return None


def bench_transfer(title, size, runs, big, truns=None):
    """One file, every tool; big adds cp, cp + fsync, scp and rsync. The tallow rows run truns
    times (default: runs), the others runs times, interleaved."""
    truns = truns or runs
    src = os.path.join(WORK, "bench-%d.bin" % size)
    make_file(src, size)
    subprocess.call(["cat", src], stdout=subprocess.DEVNULL)  # warm the page cache
    t, w, ssh = Tallow(), Wormhole(), None
    no_ssh = ssh_missing() if big else None
    try:
        landed = direct_landed(t)
        cases = [("tallow relay (--no-p2p)", truns, lambda i: run_pair(t, src, False, "t-relay-%d" % i, "relay"))]
        if landed:
            cases.append(("tallow direct QUIC", truns, lambda i: run_pair(t, src, True, "t-direct-%d" % i, "direct")))
        cases += [("magic-wormhole direct", runs, lambda i: run_pair(w, src, True, "w-direct-%d" % i, "direct")),
                  ("magic-wormhole relay (--no-listen)", runs,
                   lambda i: run_pair(w, src, False, "w-relay-%d" % i, "relay"))]
        if big and not no_ssh:
            ssh = Ssh()
            for label, how in Ssh.CASES:
                cases.append((label, runs, lambda i, how=how: run_ssh(ssh, how, src, "%s-%d" % (how, i))))
        if big:
            cases += [("cp", runs, lambda i: run_cp(src, False, "cp-%d" % i)),
                      ("cp + fsync", runs, lambda i: run_cp(src, True, "cpsync-%d" % i))]
        if CASES:  # BENCH_CASES=relay,direct keeps the cases whose label contains one of the words
            cases = [c for c in cases if any(w in c[0] for w in CASES)]
        res = {label: [] for label, _, _ in cases}
        for i in range(max(n for _, n, _ in cases)):  # interleaved, so drift hits every case alike
            for label, n, fn in cases:
                if i < n:
                    note("%s run %d/%d: %s" % (title, i + 1, n, label))
                    res[label].append(fn(i))
        rows = []
        for label, n, _ in cases:
            m = summarize(res[label])
            bad = [r for r in res[label] if r and "wall" not in r]
            if m is None:
                m = "failed" if not bad else "went %s, not the expected path" % bad[0]["path"]
            elif len([r for r in res[label] if r and "wall" in r]) < n:
                note("%s: only %d of %d runs completed" % (label, m["n"], n))
            rows.append((label, m))
            if label == "tallow relay (--no-p2p)" and not landed:
                rows.append(("tallow direct QUIC", "n/a (direct path not landed)"))
            if label == "magic-wormhole relay (--no-listen)" and no_ssh:
                rows += [(x, no_ssh) for x, _ in Ssh.CASES]
        gcm = Ssh.CASES[0][0]
        table(title, size, rows, [("tallow relay (--no-p2p)", "magic-wormhole relay (--no-listen)"),
                                  ("tallow direct QUIC", "magic-wormhole direct")] +
              ([("tallow relay (--no-p2p)", gcm), ("tallow direct QUIC", gcm)] if big else []))
        if size >= 1 << 20:
            per_gib(size, rows)
        say("")
        say("(runs: %d of each row, %d of the tallow rows; median; wall = both peers started → both exited, pairing "
            "included; RSS = peak resident set per process; tallow's receiver fsyncs before its rename, "
            "magic-wormhole's%s do not%s. wormhole relay figures are transit relay + mailbox server (CPU "
            "summed, peaks transit/mailbox).%s)" % (
                runs, truns, ", scp's, rsync's and cp's" if big else "", " — hence the cp + fsync row" if big else "",
                " scp and rsync copy to a throwaway sshd on 127.0.0.1: sender = the client with its ssh, "
                "receiver = sshd with its session processes and sftp-server / rsync --server (CPU of the whole "
                "connection, no RSS)." if big else ""))
    finally:
        t.stop()
        w.stop()
        if ssh:
            ssh.stop()


def conc_code(i):
    # the room is the number alone (the nameplate): 1,000 pairs at most, each its own number
    assert i < 1000, "one relay holds at most 1,000 concurrent pairs: the numbers 0..999"
    return "%d-load-apple-banana" % i


def bench_concurrent():
    n = NCONC
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, 8 * n + 1024)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    size = 1 << 20
    src = os.path.join(WORK, "conc-src.bin")
    make_file(src, size)
    base = os.path.join(WORK, "conc")
    clean(base)
    os.makedirs(base)
    t = Tallow()
    t.relay.reset_peak()
    procs = []
    try:
        t_start = time.monotonic()
        senders = []
        for i in range(n):
            code = conc_code(i)
            senders.append(timed([TALLOW, "send", "--json", "--no-p2p", "--code", code, src],
                                 "conc-logs/s%d" % i, t.env))
        # receivers without --yes stop at the consent prompt once paired and offered: a barrier
        receivers = []
        for i in range(n):
            code = conc_code(i)
            d = os.path.join(base, "d%d" % i)
            os.makedirs(d)
            p = timed([TALLOW, "receive", "--no-p2p", "-o", d, code], "conc-logs/r%d" % i, t.env, stdin=subprocess.PIPE)
            receivers.append(p)
        procs = senders + receivers
        launched = time.monotonic() - t_start
        note("concurrent: %d processes launched in %.1f s; waiting for every pair to reach the offer" % (2 * n, launched))
        deadline = time.monotonic() + 300
        while True:
            ready = 0
            for i in range(n):
                if "Accept " in tail(os.path.join(WORK, "conc-logs/r%d.err" % i), 3):
                    ready += 1
            dead = [x for x in procs if x[0].poll() is not None]
            if ready == n or dead or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        paired_at = time.monotonic() - t_start
        if ready != n:
            say("")
            say("### %d concurrent 1 MiB transfers through one relay" % n)
            say("")
            say("FAILED: only %d of %d pairs reached the offer (%d processes exited early)" % (ready, n, len(dead)))
            for p, tf, of in dead[:3]:
                note("%s exited %s: %s" % (of, p.returncode, tail(of.replace(".out", ".err"))))
            return
        rss_paired = t.relay.status("VmRSS")
        conns = len(os.listdir("/proc/%d/fd" % t.relay.p.pid))
        # hold the relay, let every receiver accept, release: all n transfers start together
        t.relay.p.send_signal(signal.SIGSTOP)
        for p, _, _ in receivers:
            p.stdin.write(b"y\n")
            p.stdin.close()
        time.sleep(2.0)
        t0 = time.monotonic()
        t.relay.p.send_signal(signal.SIGCONT)
        rcs = [wait(p) for p, _, _ in procs]
        t_all = time.monotonic() - t0
        relay = t.relay.sample()
        ok = 0
        for i in range(n):
            out = os.path.join(base, "d%d" % i, os.path.basename(src))
            if rcs[i] == 0 and rcs[n + i] == 0 and same(src, out):
                ok += 1
        cpu = [read_time(tf, p)["cpu"] for p, tf, _ in procs]
        rss = [read_time(tf)["rss"] for _, tf, _ in procs]
        say("")
        say("### %d concurrent 1 MiB transfers through one relay" % n)
        say("")
        say("| figure | value |")
        say("|---|---:|")
        say("| transfers complete and intact | %d / %d%s |" % (ok, n, "" if ok == n else "  **NOT ALL**"))
        say("| launch %d processes → all %d pairs paired and offered | %.1f s |" % (2 * n, n, paired_at))
        say("| release → all %d transfers done (all in flight at once) | %.2f s |" % (n, t_all))
        say("| aggregate throughput through the relay | %.0f MB/s |" % (n * size / MB / t_all))
        say("| relay open fds while all paired | %d |" % conns)
        say("| relay RSS with %d rooms paired | %.1f MiB |" % (n, rss_paired / 1048576))
        say("| relay peak RSS (VmHWM) | %.1f MiB |" % (relay["rss"] / 1048576))
        say("| relay CPU (whole run) | %.2f s |" % relay["cpu"])
        say("| peer CPU, median (sender, receiver) | %.3f s, %.3f s |" % (med(cpu[:n]), med(cpu[n:])))
        say("| peer peak RSS, median | %.1f MiB |" % (med(rss) / 1048576))
        say("")
        say("(all pairs first meet and stop at the receiver's consent prompt; the relay is then paused "
            "with SIGSTOP, every receiver answers yes, and the relay resumes: at that instant all %d "
            "transfers are accepted and none has moved a byte, so all %d are in flight through the relay "
            "together.)" % (n, n))
    finally:
        for p, _, _ in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        t.stop()
        clean(base)


def has_command(name):
    return subprocess.call([TALLOW, name, "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def bench_sync():
    """NSYNC small files in 100 folders: `tallow send DIR` (in every build), `tallow sync` (when the
    command exists: a fresh copy, then again with nothing changed), and `wormhole send DIR` (which
    zips the folder), all through the relays."""
    title = "%d small files" % NSYNC
    src = os.path.join(WORK, "sync-src")
    have = sum(len(fs) for _, _, fs in os.walk(src)) if os.path.isdir(src) else -1
    if have != NSYNC:
        clean(src)
        for d in range(100):
            os.makedirs(os.path.join(src, "d%02d" % d))
        for i in range(NSYNC):
            with open(os.path.join(src, "d%02d" % (i % 100), "f%05d.txt" % i), "wb") as f:
                f.write(os.urandom(512 + (i * 37) % 1536))
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(src) for f in fs)
    sync = has_command("sync")
    t, w = Tallow(), Wormhole()
    labels = ["tallow send DIR (relay)"]
    if sync:
        labels += ["tallow sync, fresh copy", "tallow sync, nothing changed"]
    labels.append("magic-wormhole send DIR (relay)")
    rows = {k: [] for k in labels}
    try:
        for i in range(RUNS):
            note("tallow send DIR run %d/%d" % (i + 1, RUNS))
            rows["tallow send DIR (relay)"].append(run_pair(t, src, False, "t-dir-%d" % i))
            dst = os.path.join(WORK, "sync-dst")
            for label in labels[1:-1]:
                if label.endswith("copy"):
                    clean(dst)
                    os.makedirs(dst)
                subprocess.call(["sync"])
                note("%s run %d/%d" % (label, i + 1, RUNS))
                code = t.code()
                t.relay.reset_peak()
                t0 = time.monotonic()
                sp, stf, sof = timed([TALLOW, "sync", "--json", "--no-p2p", "--code", code, src], "sync-s%d" % i, t.env)
                rp, rtf, rof = timed([TALLOW, "sync", "--receive", "--json", "--no-p2p", code, dst], "sync-r%d" % i, t.env)
                rc = (wait(rp), wait(sp))
                wall = time.monotonic() - t0
                ok = rc == (0, 0) and same(src, dst)
                if not ok:
                    note("sync failed %s\n%s%s" % (rc, tail(stf.replace(".time", ".err")), tail(rtf.replace(".time", ".err"))))
                    rows[label].append(None)
                    continue
                s, r = read_time(stf, sp), read_time(rtf, rp)
                rl = t.relay.sample()
                note("%s: %.3f s" % (label, wall))
                rows[label].append({"wall": wall, "s_cpu": s["cpu"], "r_cpu": r["cpu"], "s_rss": s["rss"],
                                    "r_rss": r["rss"], "relay_cpu": rl["cpu"], "relay_rss": [rl["rss"]]})
            note("magic-wormhole send DIR run %d/%d" % (i + 1, RUNS))
            rows["magic-wormhole send DIR (relay)"].append(run_pair(w, src, False, "w-dir-%d" % i))
        out = [(k, summarize(rows[k]) or "failed") for k in labels]
        if not sync:
            out.insert(1, ("tallow sync", "n/a (`tallow sync` is not in this build)"))
        table(title + " (%.1f MiB in all, 100 folders)" % (total / 1048576), total, out,
              [("tallow send DIR (relay)", "magic-wormhole send DIR (relay)"),
               ("tallow sync, fresh copy", "magic-wormhole send DIR (relay)")])
        say("")
        say("(%d runs, median. files/s: %s. tallow's receiver fsyncs every file and its folder; "
            "wormhole receives one zip and unpacks it without fsync.)" % (RUNS, ", ".join(
                "%s %.0f" % (k, NSYNC / m["wall"]) for k, m in out
                if isinstance(m, dict) and "nothing changed" not in k)))
    finally:
        t.stop()
        w.stop()


def bench_watch():
    title = "watch propagation latency"
    if not has_command("watch"):
        say("")
        say("### " + title)
        say("")
        say("n/a (`tallow watch` is not in this build)")
        return
    t = Tallow()
    say("")
    say("### " + title)
    say("")
    say("| debounce | changes | median ms | p90 ms | max ms |")
    say("|---|---:|---:|---:|---:|")
    try:
        for deb in [int(x) for x in os.environ.get("BENCH_WATCH_DEBOUNCE", "200,20").split(",")]:
            src, dst = os.path.join(WORK, "watch-src"), os.path.join(WORK, "watch-dst")
            clean(src)
            clean(dst)
            os.makedirs(src)
            os.makedirs(dst)
            with open(os.path.join(src, "seed.txt"), "w") as f:
                f.write("seed\n")
            code = t.code()
            sp, _, _ = timed([TALLOW, "watch", "--json", "--no-p2p", "--debounce", str(deb), "--code", code, src],
                             "watch-s%d" % deb, t.env)
            rp, _, rof = timed([TALLOW, "watch", "--receive", "--json", "--no-p2p", code, dst], "watch-r%d" % deb, t.env)
            lat = []
            try:
                end = time.monotonic() + 30
                while not os.path.exists(os.path.join(dst, "seed.txt")) and time.monotonic() < end:
                    time.sleep(0.01)
                time.sleep(0.5)
                for k in range(20):
                    name = "change%02d.txt" % k
                    body = os.urandom(4096)
                    t0 = time.monotonic()
                    with open(os.path.join(src, name), "wb") as f:
                        f.write(body)
                    target = os.path.join(dst, name)
                    end = t0 + 10
                    while time.monotonic() < end:
                        try:
                            if os.path.getsize(target) == len(body):
                                break
                        except OSError:
                            pass
                        time.sleep(0.001)
                    else:
                        lat.append(None)
                        continue
                    lat.append((time.monotonic() - t0) * 1000)
                    time.sleep(0.3)
            finally:
                # GNU time ignores SIGINT while its command runs: signal the tallow child itself
                for p in (sp, rp):
                    subprocess.run(["pkill", "-INT", "-P", str(p.pid)])
                    p.send_signal(signal.SIGINT)
                for p in (sp, rp):
                    try:
                        p.wait(5)
                    except subprocess.TimeoutExpired:
                        subprocess.run(["pkill", "-KILL", "-P", str(p.pid)])
                        p.kill()
            got = sorted(x for x in lat if x is not None)
            if not got:
                say("| %d ms | 0 / %d arrived | | | |" % (deb, len(lat)))
                continue
            p90 = got[min(len(got) - 1, int(0.9 * len(got)))]
            say("| %d ms | %d / %d arrived | %.0f | %.0f | %.0f |" % (deb, len(got), len(lat), med(got), p90, got[-1]))
        say("")
        say("(a 4 KiB file is written in the watched folder; latency = write → the file complete on the "
            "receiving side, polled every 1 ms; relay path)")
    finally:
        t.stop()


def main():
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(os.path.join(WORK, "conc-logs"), exist_ok=True)
    say("## tallow benchmarks — %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    say("")
    say("machine: %d cores, %s; tallow %s; %s; all on loopback" % (
        os.cpu_count(), open("/proc/meminfo").readline().split(":")[1].strip(),
        subprocess.run([TALLOW, "--version"], capture_output=True, text=True).stdout.strip(),
        subprocess.run([WORMHOLE, "--version"], capture_output=True, text=True).stdout.strip()))
    say("load average at start: %s (other work on the machine skews every figure: compare rows of one run)" %
        open("/proc/loadavg").read().split()[0])
    if "big" in ONLY:
        bench_transfer("one %d MiB file" % SIZE_MB, SIZE_MB << 20, RUNS, True, TRUNS)
    if "small" in ONLY:
        bench_transfer("one 1 KiB file, end to end", 1024, max(RUNS, 5), False)
    if "concurrent" in ONLY:
        bench_concurrent()
    if "sync" in ONLY:
        bench_sync()
    if "watch" in ONLY:
        bench_watch()
    if "interop" in ONLY:
        bench_interop()
    say("")
    say("load average at the end: %s" % open("/proc/loadavg").read().split()[0])
    with open(os.path.join(WORK, "results.md"), "w") as f:
        f.write("\n".join(OUT_LINES) + "\n")
    print("\n(results also in %s)" % os.path.join(WORK, "results.md"))


if __name__ == "__main__":
    main()
