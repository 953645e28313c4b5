"""Write the decrypted inner streams as a pcapng Wireshark can dissect on its own.

pcapng (draft-ietf-opsawg-pcapng §4.1 SHB, §4.2 IDB, §4.3 EPB with ``opt_comment``), LINKTYPE_RAW
(101: IPv4 / IPv6 packets without a link header), TCP per RFC 9293 (three-way handshake, then data
segments with running sequence numbers, a FIN at the end).  Each decrypted handshake of a session
becomes one conversation between the session's own addresses: authd lines to port 902, RFB to
5900, NFC to 902, HTTP to 80; timestamps are those of the original frames.

An MKS stream begins at ServerInit (authd did the RFB opening): a minimal RFB 3.8 opening
(ProtocolVersion both ways, security None, SecurityResult OK, ClientInit) is prepended, and the
client's 16-byte token (a secret) is left out, so Wireshark's VNC dissector is in step; those
packets carry a comment saying they were synthesized.

Secrets stay redacted unless ``show_secrets``: authd lines are written as the dialogue shows
them (``PASS <redacted>``), credential headers and password / ticket / token elements of HTTP
are masked with ``*`` (same length, so the HTTP framing holds), and RFB KeyEvent keysyms are
zeroed (what was typed at the console is a secret; the events themselves stay).
"""

from __future__ import annotations

import ipaddress
import re
import struct

LINKTYPE_RAW = 101
PORTS = {"authd": 902, "authd+http": 902, "http": 80, "rfb": 5900, "nfc": 902, "opaque": 902}
SEGMENT = 16000
RFB_OPENING = [  # (from_client, bytes)
    (False, b"RFB 003.008\n"), (True, b"RFB 003.008\n"), (False, b"\x01\x01"), (True, b"\x01"),
    (False, b"\x00\x00\x00\x00"), (True, b"\x01"),
]
SYNTH = "synthesized by dissect902: RFB opening that authd performed before the hand-off (not in the capture)"


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _packet(src, dst, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    else:
        pseudo = src.packed + dst.packed + struct.pack("!I3xB", len(tcp) + len(payload), 6)
    c = _csum(pseudo + tcp + payload)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    if src.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0,
                         src.packed, dst.packed)
        ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp) + len(payload), 6, 64, src.packed, dst.packed)
    return ip + tcp + payload


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


class PcapngWriter:
    def __init__(self, handle) -> None:
        self.h = handle
        shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _option(4, b"dissect902 --export-decrypted") + _option(0, b"")
        handle.write(_block(0x0A0D0D0A, shb))
        idb = struct.pack("<HHI", LINKTYPE_RAW, 0, 0) + _option(9, b"\x06") + _option(0, b"")  # if_tsresol 10^-6
        handle.write(_block(1, idb))
        self.count = 0

    def packet(self, ts: float, data: bytes, comment: str | None = None) -> None:
        us = int(round(ts * 1e6))
        body = struct.pack("<IIIII", 0, us >> 32, us & 0xFFFFFFFF, len(data), len(data)) + data + b"\x00" * (-len(data) % 4)
        if comment:
            body += _option(1, comment.encode()) + _option(0, b"")
        self.h.write(_block(6, body))
        self.count += 1


class _Conversation:
    def __init__(self, w: PcapngWriter, client, server, cport: int, sport: int, isn: int = 0) -> None:
        self.w, self.c, self.s, self.cport, self.sport = w, client, server, cport, sport
        self.seq = {True: 1000 + isn, False: 5000 + isn}  # a new ISN per conversation on reused ports
        self.opened = False

    def _send(self, from_client: bool, ts: float, flags: int, payload: bytes, comment=None) -> None:
        src, dst = (self.c, self.s) if from_client else (self.s, self.c)
        sp, dp = (self.cport, self.sport) if from_client else (self.sport, self.cport)
        pkt = _packet(src, dst, sp, dp, self.seq[from_client], self.seq[not from_client], flags, payload)
        self.w.packet(ts, pkt, comment)
        self.seq[from_client] += len(payload) + (1 if flags & 0x03 else 0)

    def open(self, ts: float) -> None:
        self.seq[True] -= 1
        self.seq[False] -= 1
        c, s = self.seq[True], self.seq[False]
        self.w.packet(ts, _packet(self.c, self.s, self.cport, self.sport, c, 0, 0x02, b""))
        self.w.packet(ts, _packet(self.s, self.c, self.sport, self.cport, s, c + 1, 0x12, b""))
        self.seq[True], self.seq[False] = c + 1, s + 1
        self.w.packet(ts, _packet(self.c, self.s, self.cport, self.sport, c + 1, s + 1, 0x10, b""))
        self.opened = True

    def data(self, from_client: bool, ts: float, payload: bytes, comment=None) -> None:
        for i in range(0, len(payload), SEGMENT):
            self._send(from_client, ts, 0x18, payload[i:i + SEGMENT], comment)

    def close(self, ts: float) -> None:
        self._send(True, ts, 0x11, b"")
        self._send(False, ts, 0x11, b"")
        self._send(True, ts, 0x10, b"")  # the last ACK: the conversation is closed (ports may be reused)


_HTTP_SECRETS = (
    re.compile(rb"(?im)^(?:authorization|proxy-authorization|cookie|set-cookie):[ \t]*([^\r\n]*)"),
    re.compile(rb"(?i)<(?:[\w.-]+:)?(?:password|ticket|token|sessionId|samlToken)(?:\s[^>]*)?>([^<]+)"),
)
_RFB_SIZES = {0: 20, 3: 10, 4: 8, 5: 6}


def _mask_http(data: bytearray) -> None:
    for pattern in _HTTP_SECRETS:
        for m in pattern.finditer(bytes(data)):
            data[m.start(1):m.end(1)] = b"*" * (m.end(1) - m.start(1))


class _HttpMask:
    """Masks one direction's HTTP as it streams.  Bytes are held back only up to the last place
    a secret cannot straddle: before the last ``<`` (an XML element's value ends there) or after
    the last newline (a header ends there); at most ``HOLD`` bytes are held."""

    HOLD = 1 << 16
    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = bytearray()

    def feed(self, data: bytes, final: bool = False) -> bytes:
        buf = self.held
        buf += data
        cut = len(buf) if final or len(buf) > self.HOLD else max(buf.rfind(b"<"), buf.rfind(b"\n") + 1)
        if cut <= 0:
            return b""
        out = bytearray(buf[:cut])
        del buf[:cut]
        _mask_http(out)
        return bytes(out)


class _KeysymZero:
    """The client side of an RFB stream as it streams, every KeyEvent's keysym set to 0; messages
    are passed on whole (ClientCutText text streamed by its length).  Unknown message type: the
    parser reported the desync; the rest passes unchanged."""

    __slots__ = ("held", "skip", "token", "lost")

    def __init__(self, token: int) -> None:
        self.held, self.skip, self.token, self.lost = bytearray(), 0, token, False

    def feed(self, data: bytes) -> bytes:
        if self.lost:
            return bytes(data)
        buf = self.held
        buf += data
        out = bytearray()
        pos = 0
        if self.token:
            n = min(self.token, len(buf))
            out += buf[:n]
            pos, self.token = n, self.token - n
        while pos < len(buf):
            if self.skip:
                n = min(self.skip, len(buf) - pos)
                out += buf[pos:pos + n]
                pos += n
                self.skip -= n
                continue
            t, left = buf[pos], len(buf) - pos
            if t in _RFB_SIZES:
                size = _RFB_SIZES[t]
            elif t == 2:
                if left < 4:
                    break
                size = 4 + 4 * int.from_bytes(buf[pos + 2:pos + 4], "big")
            elif t == 6:
                if left < 8:
                    break
                out += buf[pos:pos + 8]
                self.skip = int.from_bytes(buf[pos + 4:pos + 8], "big")
                pos += 8
                continue
            else:
                self.lost = True
                out += buf[pos:]
                pos = len(buf)
                break
            if left < size:
                break
            msg = bytearray(buf[pos:pos + size])
            if t == 4:
                msg[4:8] = b"\x00\x00\x00\x00"
            out += msg
            pos += size
        del buf[:pos]
        return bytes(out)


class _Stream:
    """One decrypted handshake written as one conversation."""

    __slots__ = ("conv", "hs", "last_ts", "http", "keys", "skip_token")

    def __init__(self, conv: _Conversation, hs: int) -> None:
        self.conv, self.hs, self.last_ts = conv, hs, 0.0
        self.http: dict[bool, _HttpMask] = {}
        self.keys: _KeysymZero | None = None
        self.skip_token = 0


class SessionExport:
    """What one session's decryption writes (``decrypt.inner`` calls it as plaintext arrives)."""

    def __init__(self, out: "StreamExport", session) -> None:
        conn = session.conn
        self.out, self.uid = out, conn.uid
        self.client, self.server = ipaddress.ip_address(conn.orig_ip), ipaddress.ip_address(conn.resp_ip)
        self.cport = conn.orig_port
        self.streams: dict[int, _Stream] = {}

    def _stream(self, hs: int, kind: str, mks: bool, ts: float) -> _Stream:
        st = self.streams.get(hs)
        if st is None:
            # a new handshake on the stream ends the one before (authd hands the raw stream on):
            # close it first, so the conversations on the same addresses and ports do not overlap
            # and Wireshark takes the second SYN for a new conversation (port reuse)
            self.finish()
            conv = _Conversation(self.out.w, self.client, self.server, self.cport, PORTS.get(kind, 902),
                                 isn=(hs - 1) << 28)
            conv.open(ts)
            self.out.conversations += 1
            st = self.streams[hs] = _Stream(conv, hs)
            if kind == "rfb" and mks:
                for fc, data in RFB_OPENING:
                    conv.data(fc, ts, data, SYNTH)
                st.skip_token = 16
            if kind == "rfb" and not self.out.show_secrets:
                # a plain opening inside TLS: the client's version, security choice and ClientInit
                # (RFB 3.7/3.8, 14 bytes) come before its messages; an MKS stream's token is cut above
                st.keys = _KeysymZero(0 if mks else 14)
        return st

    def _write(self, st: _Stream, fc: bool, ts: float, frame: int, data: bytes) -> None:
        if data:
            st.conv.data(fc, ts, data, f"decrypted from TLS #{st.hs} of session {self.uid}, frame {frame}")

    def chunk(self, hs: int, fc: bool, ts: float, frame: int, data: bytes, mode: str, kind: str, mks: bool) -> None:
        st = self._stream(hs, kind, mks, ts)
        st.last_ts = ts
        secrets = self.out.show_secrets
        if mode == "lines" and not secrets:
            return  # written line by line as the dialogue shows them (``line``)
        if fc and st.skip_token:
            cut = min(st.skip_token, len(data))
            st.skip_token -= cut
            data = data[cut:]
        if mode == "http" and not secrets:
            data = st.http.setdefault(fc, _HttpMask()).feed(data)
        elif mode == "rfb" and fc and st.keys is not None:
            data = st.keys.feed(data)
        self._write(st, fc, ts, frame, data)

    def line(self, hs: int, fc: bool, text: str, ts: float, frame: int, kind: str) -> None:
        if self.out.show_secrets:
            return  # the raw chunks were written
        st = self._stream(hs, kind, False, ts)
        st.last_ts = ts
        self._write(st, fc, ts, frame, (text + "\r\n").encode("latin-1", "replace"))

    def finish(self) -> None:
        for st in self.streams.values():
            for fc, mask in list(st.http.items()):
                self._write(st, fc, st.last_ts, 0, mask.feed(b"", final=True))
            st.conv.close(st.last_ts)
        self.streams = {}


class StreamExport:
    """``--export-decrypted``: a pcapng written while the capture is read, one conversation per
    decrypted handshake, so memory does not grow with the plaintext.  Pass it to
    ``analyze(..., keep_plaintext=StreamExport(path))`` and :meth:`close` it afterwards."""

    def __init__(self, path: str, show_secrets: bool = False) -> None:
        self.handle = open(path, "wb")
        self.w = PcapngWriter(self.handle)
        self.show_secrets = show_secrets
        self.conversations = 0

    def session(self, session) -> SessionExport:
        return SessionExport(self, session)

    def close(self) -> int:
        self.handle.close()
        return self.conversations

    def __enter__(self) -> "StreamExport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def export_decrypted(analysis, path: str, show_secrets: bool = False) -> int:
    """Write the inner streams kept by an analysis run with ``keep_plaintext=True`` (every
    plaintext chunk held in memory: for small captures and tests; the CLI streams with
    :class:`StreamExport`); returns the number of conversations written."""
    with StreamExport(path, show_secrets) as out:
        for rec in analysis.sessions:
            dec = rec.decryption
            if dec is None or not dec.plaintext:
                continue
            one = SessionExport.__new__(SessionExport)
            one.out, one.uid, one.streams, one.cport = out, rec.uid, {}, rec.client_port
            one.client, one.server = ipaddress.ip_address(rec.client_ip), ipaddress.ip_address(rec.server_ip)
            mks = dec.rfb is not None and dec.rfb.mks
            events = [(ts, 0, (hs, fc, ts, frame, data, mode)) for hs, fc, ts, frame, data, mode in dec.plaintext]
            if not show_secrets:
                events += [(ln.ts, 1, ln) for ln in rec.dialogue if ln.decrypted]
            for _ts, what, ev in sorted(events, key=lambda e: e[0]):
                if what:
                    one.line(1, ev.from_client, ev.text, ev.ts, ev.frame, dec.inner.get(1, "authd"))
                else:
                    one.chunk(*ev, dec.inner.get(ev[0], "opaque"), mks)
            one.finish()
    return out.conversations
