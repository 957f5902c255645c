"""tests/pylib/relaywire.py — the relay's wire protocol as the Python tests speak it (abuse,
hostile, relay_scale): frames are u32be length | u8 channel (0 control, 1 data) | payload; a control
payload is a registry message (msg.h): varint type, varint length, then tagged fields
(tag << 3 | wire; wire 0 a varint, wire 2 length-prefixed bytes). Also the reader every relay
proxy of the tests uses: a listening socket whose connections go on to the real relay, and a loop
that cuts a byte stream into whole frames. Imported after `sys.path.insert(0, <this folder>)`."""
import socket
import threading


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def f_u(tag, v):
    """A varint field."""
    return varint(tag << 3 | 0) + varint(v)


def f_b(tag, b):
    """A bytes field."""
    return varint(tag << 3 | 2) + varint(len(b)) + b


def message(type_id, body):
    """A registry message: type, length, body."""
    return varint(type_id) + varint(len(body)) + body


def ctrl_frame(msg):
    """A control frame (channel 0) carrying an encoded message."""
    return (len(msg) + 1).to_bytes(4, "big") + b"\x00" + msg


def ctrl(type_id, body):
    """A control frame with the message of this type and body."""
    return ctrl_frame(message(type_id, body))


def data_frame_header(n):
    """The header of a data frame (channel 1) of n payload bytes."""
    return (n + 1).to_bytes(4, "big") + b"\x01"


def data(payload):
    return data_frame_header(len(payload)) + payload


def room_join(room, version=2):
    """RoomJoin{room = 1, version = 3} (type 3), the message alone."""
    return message(3, f_b(1, room) + f_u(3, version))


def join_frame(room, version=2):
    """RoomJoin as a control frame: the first thing a client sends."""
    return ctrl_frame(room_join(room, version))


def leave_frame(reason=b"bye"):
    """RoomLeave{reason} (type 5) as a control frame, as a client closing in order sends."""
    return ctrl(5, f_b(1, reason))


def shut(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def pipe(src, dst):
    """Copies src to dst byte for byte until either closes; then shuts both down."""
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
    shut(src, dst)


def frames(src, dst, each, send=None):
    """Reads whole relay frames from src until it closes. For each, each(frame, out) appends to the
    list out what goes on to dst (the frame, nothing, others); returning False stops the loop once
    out is sent. What one read completed goes to dst in one send(bytes) (default dst.sendall).
    Both sockets are shut down at the end."""
    send = send or dst.sendall
    buf = b""
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            buf += b
            out, go = [], True
            while go and len(buf) >= 4:
                n = 4 + int.from_bytes(buf[:4], "big")
                if len(buf) < n:
                    break
                fr, buf = buf[:n], buf[n:]
                go = each(fr, out) is not False
            if out:
                send(b"".join(out))
            if not go:
                break
    except OSError:
        pass
    shut(src, dst)


def spawn(fn, *args):
    threading.Thread(target=fn, args=args, daemon=True).start()


class Proxy:
    """Listens on 127.0.0.1 (a free port, self.port) in a thread of its own; each connection is
    handed to self.accepted(c), which a subclass defines (self.upstream() opens one to the relay).
    A subclass sets its own fields before calling this __init__."""

    def __init__(self, relay_port):
        self.relay_port = relay_port
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(4)
        self.port = self.ls.getsockname()[1]
        spawn(self.serve)

    def serve(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            self.accepted(c)

    def upstream(self):
        return socket.create_connection(("127.0.0.1", self.relay_port))

    def close(self):
        self.ls.close()
