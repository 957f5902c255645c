#!/usr/bin/env python3
"""tests/hostile/hostile.py — the hostile-peer battery. Each case runs a real relay and a real
`tallow receive --yes -o DEST`, against either the hostile Lua peer (peer.lua CASE: completes the
PAKE, then lies in one way) or a real `tallow send` whose relay connection goes through a
man-in-the-middle that captures genuine sealed frames and replays, truncates, reorders, corrupts
or inflates them (speaking the relay protocol: u32be length | u8 channel | payload).

For every case: the receiver ends by itself within the timeout (no hang, no crash), its stderr
carries the expected error and no raw escape character, nothing changes outside DEST (a sentinel
directory, the working directory, the case root), DEST holds no file under a final name that was
not expected (only .tallow-part temporaries may remain), and its peak RSS stays under MEM_LIMIT.
Prints a table: case, receiver exit code, peak RSS, what the user saw.

Usage: TALLOW_BIN=build/bin/tallow hostile.py [CASE...]"""
import concurrent.futures
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from relaywire import Proxy, ctrl, data, f_b, f_u, frames, message, pipe, spawn  # noqa: E402
from tallowtest import free_port, wait_listening  # noqa: E402

T = os.path.abspath(os.environ.get("TALLOW_BIN", "build/bin/tallow"))
HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "peer.lua")
MEM_LIMIT_KB = 64 * 1024
TIMEOUT = 20
PART = re.compile(r"^\..*\.[0-9a-f]{16}\.tallow-part$")

REFUSED_PATH = r"refused the offer: unsafe path refused"
MALFORMED = r"refused the offer: malformed message"
CRYPTO = r"decryption failed: frame forged, replayed or corrupted"
HS_BROKEN = (r"relay connection broke during the key exchange|key exchange got no answer|"
             r"the peer is gone|the peer went away|connection")
SOURCE = object()  # in finals: may be there, and then equal to the MITM sender's source file

# name -> (how, expected receiver exit code, regex on its stderr, files allowed under final names)
CASES = {
    "dotdot": ("peer", 1, REFUSED_PATH, {}),
    "dotdot_nested": ("peer", 1, REFUSED_PATH, {}),
    "absolute": ("peer", 1, REFUSED_PATH, {}),
    "backslash": ("peer", 1, REFUSED_PATH, {}),
    "case_collision": ("peer", 1, REFUSED_PATH, {}),
    "nfc_nfd": ("peer", 1, REFUSED_PATH, {}),
    "nul_in_name": ("peer", 1, REFUSED_PATH, {}),
    "device_con": ("peer", 1, REFUSED_PATH, {}),
    "device_nul_txt": ("peer", 1, REFUSED_PATH, {}),
    "terminal_escape": ("peer", 1, REFUSED_PATH, {}),
    "bad_utf8": ("peer", 1, REFUSED_PATH, {}),
    "trailing_dot": ("peer", 1, REFUSED_PATH, {}),
    "symlink_dir": ("peer", 1, r"refused link/evil.txt: unsafe path refused", {}),
    "symlink_file": ("peer", 1, r"refused planted.txt: unsafe path refused", {}),
    # refused before the question (issue 16), exit 3 (refused)
    "no_overwrite": ("peer", 3, r"1 name already exists in .*\(keep.txt\).*--overwrite",
                     {"keep.txt": b"precious\n"}),
    "more_bytes": ("peer", 1, r"peer sent more bytes than declared for f.bin", {}),
    "fewer_then_complete": ("peer", 1, r"transfer ended in the middle of a file", {}),
    "fewer_last": ("peer", 1, r"peer sent fewer bytes than declared for f.bin", {}),
    "silent": ("peer", 1, r"nothing from the peer for 3 s", {}),
    "silent_before_offer": ("peer", 1, r"the sender sent nothing for 3 s after pairing", {}),
    "huge_size": ("peer", 1, r"cannot write huge.bin: (File too large|no space left)", {}),
    "hash_on_fresh": ("peer", 1, r"unexpected file hash for f.bin", {}),
    "bad_prefix_hash": ("peer", 1, r"f.bin: integrity check failed: the part kept from the "
                        r"interrupted transfer does not match", {}),
    "no_prefix_hash": ("peer", 1, r"missing hash of the resumed part of f.bin", {}),
    "size_over_int64": ("peer", 1, MALFORMED, {}),
    "len_overflow_varint": ("peer", 1, MALFORMED, {}),
    "len_negative": ("peer", 1, MALFORMED, {}),
    "ten_million_entries": ("peer", 1, r"refused an offer: 10000000 entries: more than 4194304 "
                            r"in one offer", {}),
    "million_entries_short": ("peer", 1, MALFORMED, {}),
    "offer_in_parts": ("peer", 0, r"Received 2 files", {"d/one.txt": b"one", "d/two.txt": b""}),
    "parts_interrupted": ("peer", 1, r"refused an offer: offer 4242 came in parts and offer 4243 "
                          r"began before its last part", {}),
    "parts_other_key": ("peer", 1, r"refused an offer: a part of offer 4242 came under another key",
                        {}),
    "reordered_chunks": ("peer", 1, r"out-of-order data for f.bin", {}),
    "chunk_after_last": ("peer", 1, r"peer sent data for an unknown or finished file", {"e.txt": b""}),
    "chunk_after_complete": ("peer", 0, r"Received 1 file", {"e.txt": b""}),
    "chunk_unknown_file": ("peer", 1, r"peer sent data for an unknown or finished file", {}),
    "skip_a_file": ("peer", 1, r"peer skipped a file it had to send", {}),
    "complete_early": ("peer", 1, r"transfer ended before every file arrived", {}),
    "unknown_type": ("peer", 0, r"unknown type; ignored(.|\n)*Received 1 file", {"ok.txt": b""}),
    "flood_messages": ("peer", 0, r"not reading messages; dropping ChatText(.|\n)*Received 1 file",
                       {"f.txt": b"hello"}),
    "malformed_message": ("peer", 1, r"malformed message from the peer", {}),
    "cross_transfer_key": ("peer", 1, r"Chunk for this transfer came under another key", {}),
    "session_key_chunk": ("peer", 1, r"Chunk for this transfer came under another key", {}),
    "vanish": ("peer", 1, r"the peer left", {}),
    "vanish_abrupt": ("peer", 1, r"the peer went away|the peer is gone|connection", {}),
    "mitm_replay": ("mitm", 1, CRYPTO, {}),
    "mitm_truncate": ("mitm", 1, CRYPTO, {}),
    "mitm_reorder": ("mitm", 1, CRYPTO, {}),
    "mitm_garbage": ("mitm", 1, CRYPTO, {}),
    # the relay cuts the sender's connection; either the room ends, or the sender's transport
    # resumes and the transfer completes from the receiver's position (then with the right bytes)
    "mitm_oversized_relay": ("mitm", (0, 1),
                             r"the peer went away|the peer is gone|connection|Received 1 file",
                             {"data.bin": SOURCE}),
    "mitm_oversized_session": ("mitm", 1, r"frame larger than the session allows", {}),
    "mitm_bad_confirm": ("mitm", 4, r"code mismatch, or someone tried to guess it", {}),
    # a hostile relay (HostileRelay, in front of the receiver): fake reconnections, old frames
    # replayed, duplicated, reordered, the connection cut at each handshake step, a peer that
    # does not exist. Never a silent loss: the file arrives whole or there is a clear error.
    "relay_fake_reconnects": ("relay", (0, 1), r"Received 1 file|" + CRYPTO, {"data.bin": SOURCE}),
    "relay_replay_batch": ("relay", 1, CRYPTO, {}),
    "relay_replay_after_reconnect": ("relay", (0, 1), r"Received 1 file|" + CRYPTO,
                                     {"data.bin": SOURCE}),
    "relay_duplicate": ("relay", 1, CRYPTO, {}),
    "relay_reorder": ("relay", 1, CRYPTO, {}),
    "relay_drop_hs_1": ("relay", 1, HS_BROKEN, {}),
    "relay_drop_hs_2": ("relay", 1, HS_BROKEN, {}),
    "relay_drop_hs_3": ("relay", 1, HS_BROKEN, {}),
    "relay_phantom_peer": ("relay", 1, r"key exchange got no answer within 3 s", {}),
    # a peer of the release before (handshake version 2): refused, both versions named
    "relay_phantom_old_peer": ("relay", 1, r"incompatible versions: the peer speaks handshake "
                               r"version 2, this tallow 3", {}),
    # a frame in the direct path's format (0x82: a transfer record not sealed) injected on the
    # relay, where every frame must authenticate
    "relay_inject_direct": ("relay", 1, r"arrived on the relay channel: refused", {}),
    "relay_plain_failed_after_ready": ("relay", 0, r"Received 1 file", {"data.bin": SOURCE}),
}


def start_relay(logpath, extra=()):
    port = free_port()
    log = open(logpath, "wb")
    p = subprocess.Popen([T, "relay", "--listen", f"127.0.0.1:{port}", *extra], stderr=log,
                         stdout=subprocess.DEVNULL, env=dict(os.environ, TALLOW_LOG="info"))
    if not wait_listening("127.0.0.1", port):
        raise RuntimeError("relay did not start")
    return p, port


def snapshot(top):
    """Every path under top with its kind and content (symlinks: their target)."""
    out = {}
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, top)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir", None)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", f.read())
    return out


# ---------------------------------------------------------------- man in the middle

class Mitm(Proxy):
    """Relay proxy for the sender's connection; mutates the sender -> relay direction."""

    def __init__(self, relay_port, mode):
        self.mode = mode
        self.applied = False
        super().__init__(relay_port)

    def accepted(self, c):
        u = self.upstream()
        sealed = [0]  # sealed frames seen on this connection
        spawn(pipe, u, c)
        spawn(frames, c, u, lambda fr, out: self.each(fr, out, sealed))

    def each(self, fr, out, sealed):
        ch, payload = fr[4], fr[5:]
        if ch != 1 or self.applied:
            out.append(fr)
            return
        if payload[:2] == b"\x00\x16" and self.mode == "mitm_bad_confirm":
            fr = fr[:-1] + bytes([fr[-1] ^ 0x01])  # last byte of the confirm MAC
            self.applied = True
        if payload[:1] == b"\x02":
            sealed[0] += 1
        if sealed[0] >= 3 and payload[:1] == b"\x02" and self.mode != "mitm_bad_confirm":
            fr = self.mutate(fr, out)
        if fr is not None:
            out.append(fr)

    @staticmethod
    def sealed_header(fr):
        """Bytes of relay header + kind + epoch + transfer-id varint in a sealed transfer frame."""
        i = 7
        while fr[i] & 0x80:
            i += 1
        return i + 1

    def mutate(self, fr, out):
        """The third sealed frame of the transfer (a chunk): what happens to it."""
        m = self.mode
        if m == "mitm_reorder" and not hasattr(self, "held"):
            self.held = fr  # keep the third; it goes out after the fourth
            return None
        self.applied = True
        if m == "mitm_replay":
            out.append(fr)
            return fr
        if m == "mitm_truncate":
            fr = fr[:-16]
            return (len(fr) - 4).to_bytes(4, "big") + fr[4:]
        hdr = self.sealed_header(fr)
        if m == "mitm_garbage":  # the genuine header, then random bytes: "sealed" under no key
            return fr[:hdr] + os.urandom(len(fr) - hdr)
        if m == "mitm_oversized_relay":  # above the relay's max-frame (default 2 MiB + 64)
            n = 4 * 1024 * 1024
            out.append((n + 1).to_bytes(4, "big") + b"\x01" + b"\x02" + os.urandom(n - 1))
            return fr
        if m == "mitm_oversized_session":
            n = 3 * 1024 * 1024
            out.append((n + 1).to_bytes(4, "big") + fr[4:hdr] + os.urandom(n + 5 - hdr))
            return fr
        if m == "mitm_reorder":
            out.append(fr)
            return self.held
        return fr


# ---------------------------------------------------------------- hostile relay

# what the relay says when the other peer's connection drops and when it is back (ids 7 and 6)
DEPARTED = ctrl(7, f_u(1, 1) + f_b(2, b"reconnecting") + f_u(3, 1))
ARRIVED = ctrl(6, f_u(1, 1) + f_u(2, 2))
# a valid ristretto255 point (the base point), as a phantom peer's CPace share
BASEPOINT = bytes.fromhex("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76")


class HostileRelay(Mitm):
    """The relay as an adversary, for the receiver's connection: frames from the real relay to the
    receiver pass through `lie`, which may inject room events, replay, duplicate or reorder
    sealed frames, or cut both connections at the Nth handshake frame (either direction).
    relay_phantom_peer talks to no relay at all: it answers the join as if a sender were there."""

    def __init__(self, relay_port, mode):
        self.sealed, self.kept, self.held, self.hs = 0, [], None, 0
        super().__init__(relay_port, mode)

    def accepted(self, c):
        if self.mode.startswith("relay_phantom_"):
            spawn(self.phantom, c)
            return
        u = self.upstream()
        self.hs, self.held = 0, None
        spawn(frames, c, u, lambda fr, out: self.each(fr, out, False))
        spawn(frames, u, c, lambda fr, out: self.each(fr, out, True))

    def phantom(self, c):
        try:
            c.settimeout(30)
            c.recv(4096)  # the RoomJoin, for a room nobody else is in
            joined = ctrl(4, f_u(1, 2) + f_u(2, 2) + f_b(3, bytes(16)) + f_u(4, 2))
            version = 2 if self.mode == "relay_phantom_old_peer" else 3  # the handshake's
            body = f_u(1, version) + f_b(2, os.urandom(32)) + f_b(3, BASEPOINT) + f_u(4, 0)
            c.sendall(joined + data(b"\x00" + message(19, body)))
            while c.recv(65536):
                pass
        except OSError:
            pass

    def each(self, fr, out, to_receiver):
        if fr[4] == 1 and fr[5:6] == b"\x00" and self.mode.startswith("relay_drop_hs_"):
            self.hs += 1
            if self.hs == int(self.mode[-1]):
                return False  # what came before goes on; then both connections are cut
        if to_receiver and fr[4] == 1 and fr[5:6] in (b"\x01", b"\x02"):
            self.lie(fr, out)
        else:
            out.append(fr)

    def lie(self, fr, out):
        m, n = self.mode, self.sealed
        self.sealed += 1
        if m == "relay_fake_reconnects" and n < 30:
            out.append(fr)
            out.append((DEPARTED + ARRIVED) * 20)  # nothing was lost: the session must not care
        elif m == "relay_replay_batch":
            if n < 5:
                self.kept.append(fr)
            out.append(fr)
            if n == 10:
                out.extend(self.kept)  # the first frames again, verbatim, later
        elif m == "relay_replay_after_reconnect":
            if n < 5:
                self.kept.append(fr)
            if n == 10:
                out.append(DEPARTED)  # a "gap" is now expected: old frames are dropped, not used
                out.extend(self.kept)
                out.append(ARRIVED)
            out.append(fr)
        elif m == "relay_duplicate" and n == 4:
            out.extend([fr, fr])
        elif m == "relay_reorder" and n == 4:
            self.held = fr
        elif m == "relay_reorder" and n == 5:
            out.extend([fr, self.held])
        elif m == "relay_inject_direct" and n == 3:
            # kind 0x82, epoch 0, transfer 1, record 0, then a Ping in clear
            out.append(data(b"\x82\x00\x01\x00" + message(17, f_u(1, 1))))
            out.append(fr)
        elif m == "relay_plain_failed_after_ready" and n == 3:
            out.append(fr)
            why = b"code mismatch"
            body = f_b(1, why) + f_u(2, 2 * 1015 - 1)  # HandshakeFailed{code TALLOW_ECODE, zigzag}
            out.append(data(b"\x00" + message(24, body)))
        else:
            out.append(fr)


# ---------------------------------------------------------------- one case

def planted_part(path, size, mtime_ns):
    """The receiver's temporary name for a file entry (core/transfer/sink.c part_name)."""
    import hashlib
    h = hashlib.blake2b(digest_size=16)
    tag = b"tallow-part-v1\0"
    h.update(tag + len(path.encode()).to_bytes(8, "little") + path.encode() +
             size.to_bytes(8, "little") + mtime_ns.to_bytes(8, "little", signed=True))
    base = os.path.basename(path)
    return f".{base}.{h.hexdigest()[:16]}.tallow-part"


def setup(case, root, dest, outside):
    os.makedirs(dest)
    os.makedirs(outside)
    with open(os.path.join(outside, "sentinel.txt"), "wb") as f:
        f.write(b"sentinel\n")
    if case == "symlink_dir":
        os.symlink(outside, os.path.join(dest, "link"))
    if case == "symlink_file":
        with open(os.path.join(outside, "target.txt"), "wb") as f:
            f.write(b"target\n")
        os.symlink(os.path.join(outside, "target.txt"), os.path.join(dest, "planted.txt"))
    if case in ("bad_prefix_hash", "no_prefix_hash"):
        with open(os.path.join(dest, planted_part("f.bin", 2 << 20, 0)), "wb") as f:
            f.write(b"a" * (1 << 20))
    if case == "no_overwrite":
        with open(os.path.join(dest, "keep.txt"), "wb") as f:
            f.write(b"precious\n")


def run_case(case, n, relays, work):
    how, want_rc, pattern, finals = CASES[case]
    root = os.path.join(work, case)
    dest, outside, cwd = (os.path.join(root, d) for d in ("dest", "outside", "cwd"))
    os.makedirs(cwd)
    setup(case, root, dest, outside)
    before_out = snapshot(outside)
    before_dest = {k: v for k, v in snapshot(dest).items()}
    code = f"{100 + n}-hostile{chr(97 + n // 26)}{chr(97 + n % 26)}-amber-cloud"
    rport = relays["big"] if case == "mitm_oversized_session" else relays["main"]
    env = dict(os.environ, TALLOW_NO_P2P="1", TALLOW_CODE=code, OUTSIDE=outside,
               TALLOW_RELAY=f"127.0.0.1:{rport}")
    env["TALLOW_LOG"] = "info"
    env["TALLOW_STALL_TIMEOUT"] = "3"  # the `silent` case: a peer that stops talking mid-file
    env["TALLOW_OFFER_TIMEOUT"] = "3"  # `silent_before_offer`: a peer that pairs and never offers
    mem = os.path.join(root, "mem")
    errp = os.path.join(work, case + ".recv.log")
    peerlog = open(os.path.join(work, case + ".peer.log"), "wb")
    mitm = None
    src_file = os.path.join(work, case + ".src", "data.bin")
    env["TALLOW_HANDSHAKE_TIMEOUT"] = "3"  # relay_phantom_peer: a key exchange left hanging
    renv = env
    if how == "peer":
        peer = subprocess.Popen(["timeout", "-k", "2", str(TIMEOUT), T, "run", PEER, case],
                                cwd=cwd, env=env, stdout=peerlog, stderr=peerlog)
    elif how == "relay":
        src = os.path.dirname(src_file)
        os.makedirs(src)
        with open(src_file, "wb") as f:
            f.write(random.Random(n).randbytes(3 * 1024 * 1024))
        mitm = HostileRelay(rport, case)
        renv = dict(env, TALLOW_RELAY=f"127.0.0.1:{mitm.port}")
        argv = ["true"] if case.startswith("relay_phantom_") else \
            ["timeout", "-k", "2", str(TIMEOUT), T, "send", os.path.join(src, "data.bin")]
        peer = subprocess.Popen(argv, cwd=src, env=env, stdout=peerlog, stderr=peerlog)
    else:
        src = os.path.dirname(src_file)
        os.makedirs(src)
        with open(src_file, "wb") as f:
            f.write(random.Random(n).randbytes(3 * 1024 * 1024))
        mitm = Mitm(rport, case)
        senv = dict(env, TALLOW_RELAY=f"127.0.0.1:{mitm.port}")
        peer = subprocess.Popen(["timeout", "-k", "2", str(TIMEOUT), T, "send",
                                 os.path.join(src, "data.bin")],
                                cwd=src, env=senv, stdout=peerlog, stderr=peerlog)
    with open(errp, "wb") as err:
        rc = subprocess.call(["/usr/bin/time", "-f", "%M", "-o", mem, "timeout", "-k", "2",
                              str(TIMEOUT), T, "receive", "--yes", "-o", dest],
                             cwd=cwd, env=renv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        peer.wait(TIMEOUT + 5)
    except subprocess.TimeoutExpired:
        peer.kill()
    if mitm:
        mitm.close()
    stderr = open(errp, "rb").read()
    problems = []
    if rc in (124, 137) or rc < 0 or rc >= 128:
        problems.append(f"receiver hung or crashed (exit {rc})")
    elif rc not in (want_rc if isinstance(want_rc, tuple) else (want_rc,)):
        problems.append(f"exit {rc}, expected {want_rc}")
    text = stderr.decode("utf-8", "replace")
    if not re.search(pattern, text):
        problems.append(f"stderr lacks /{pattern}/")
    if b"\x1b" in stderr or b"\x07" in stderr:
        problems.append("raw escape character reached the terminal")
    if snapshot(outside) != before_out:
        problems.append("something changed outside DEST")
    if os.listdir(cwd):
        problems.append(f"files appeared in the working directory: {os.listdir(cwd)}")
    extra = set(os.listdir(root)) - {"dest", "outside", "cwd", "mem"}
    if extra:
        problems.append(f"files appeared beside DEST: {extra}")
    after = snapshot(dest)
    for rel, (kind, data) in after.items():
        base = os.path.basename(rel)
        if rel in before_dest and before_dest[rel] == (kind, data):
            continue
        if kind == "file" and PART.match(base):
            continue
        if kind == "dir":
            continue
        want = finals.get(rel)
        if want is SOURCE and kind == "file" and data == open(src_file, "rb").read():
            continue
        if rel in finals and kind == "file" and data == want:
            continue
        problems.append(f"unexpected {kind} under a final name in DEST: {rel!r}")
    for rel, v in before_dest.items():
        if case == "bad_prefix_hash" and PART.match(os.path.basename(rel)):
            if rel in after:  # it did not match the source: useless, removed
                problems.append(f"the partial copy {rel!r} was kept after a wrong prefix hash")
            continue
        if case == "no_prefix_hash" and PART.match(os.path.basename(rel)):
            continue  # kept (the peer broke the protocol; the copy may still be good)
        if after.get(rel) != v:
            problems.append(f"planted {rel!r} was changed or removed")
    for rel, data in finals.items():
        if data is not SOURCE and case not in ("chunk_after_last",) and rel not in after:
            problems.append(f"expected file {rel!r} missing")
    try:
        kb = int(open(mem).read().split()[-1])
    except (OSError, ValueError, IndexError):
        kb = -1
    if kb > MEM_LIMIT_KB:
        problems.append(f"peak RSS {kb} KiB above {MEM_LIMIT_KB} KiB")
    said = [l for l in text.splitlines() if l.startswith("tallow: ") and "info:" not in l]
    said = [l[8:] for l in said if "refused " in l or l is said[-1]] if said else []
    shown = " / ".join(said) or (text.strip().splitlines() or [""])[-1]
    return case, rc, kb, shown, problems


def main():
    names = sys.argv[1:] or list(CASES)
    work = tempfile.mkdtemp(prefix="tallow-hostile.")
    relays, procs = {}, []
    ok = True
    try:
        # a short resume grace: a peer that vanished is given up after 2 s, not 30
        p, relays["main"] = start_relay(os.path.join(work, "relay.log"), ["--grace", "2"])
        procs.append(p)
        p, relays["big"] = start_relay(os.path.join(work, "relay-big.log"),
                                       ["--max-frame", "8000000", "--grace", "2"])
        procs.append(p)
        results = []
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            futs = [ex.submit(run_case, c, i, relays, work) for i, c in enumerate(names)]
            for f in futs:
                results.append(f.result())
        print(f"{'case':26} {'rc':>3} {'maxrss':>8}  receiver's last words")
        for case, rc, kb, shown, problems in results:
            print(f"{case:26} {rc:>3} {kb:>6}KB  {shown}")
            for pr in problems:
                ok = False
                print(f"    FAIL: {pr}")
        for p in procs:
            if p.poll() is not None:
                ok = False
                print(f"FAIL: a relay died (exit {p.returncode})")
        print(f"{len(results)} hostile cases: {'all held' if ok else 'FAILURES'}")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        if ok and not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"(logs kept in {work})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
