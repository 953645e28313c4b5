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
    def __init__(self, w: PcapngWriter, client, server, cport: int, sport: int) -> None:
        self.w, self.c, self.s, self.cport, self.sport = w, client, server, cport, sport
        self.seq = {True: 1000, False: 5000}
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


_HTTP_SECRETS = (
    re.compile(rb"(?im)^(?:authorization|proxy-authorization|cookie|set-cookie):[ \t]*([^\r\n]*)"),
    re.compile(rb"(?i)<(?:[\w.-]+:)?(?:password|ticket|token|sessionId|samlToken)(?:\s[^>]*)?>([^<]+)"),
)
_RFB_SIZES = {0: 20, 3: 10, 4: 8, 5: 6}


def _mask_http(data: bytearray) -> None:
    for pattern in _HTTP_SECRETS:
        for m in pattern.finditer(bytes(data)):
            data[m.start(1):m.end(1)] = b"*" * (m.end(1) - m.start(1))


def _zero_keysyms(data: bytearray, start: int) -> None:
    """Client RFB messages from ``start``: every KeyEvent's keysym set to 0 (lengths kept)."""
    pos, n = start, len(data)
    while pos < n:
        t = data[pos]
        if t in _RFB_SIZES:
            size = _RFB_SIZES[t]
        elif t == 2 and pos + 4 <= n:
            size = 4 + 4 * int.from_bytes(data[pos + 2:pos + 4], "big")
        elif t == 6 and pos + 8 <= n:
            size = 8 + int.from_bytes(data[pos + 4:pos + 8], "big")
        else:
            return  # unknown message: stop (the parser reported the desync)
        if t == 4 and pos + 8 <= n:
            data[pos + 4:pos + 8] = b"\x00\x00\x00\x00"
        pos += size


def _joined(chunks: list, side: bool, modes: tuple, edit) -> list:
    """Apply ``edit`` to the concatenated bytes of one direction's chunks in ``modes`` and cut the
    result back at the original chunk boundaries."""
    picked = [i for i, c in enumerate(chunks) if c[0] == side and c[4] in modes]
    if not picked:
        return chunks
    buf = bytearray(b"".join(chunks[i][3] for i in picked))
    edit(buf)
    out, pos = list(chunks), 0
    for i in picked:
        fc, ts, frame, data, mode = chunks[i]
        out[i] = (fc, ts, frame, bytes(buf[pos:pos + len(data)]), mode)
        pos += len(data)
    return out


def _redacted(rec, hs: int, chunks: list) -> list:
    if any(c[4] == "lines" for c in chunks):  # authd lines: as the (redacted) dialogue shows them
        lines = [(ln.from_client, ln.ts, ln.frame, (ln.text + "\r\n").encode("latin-1", "replace"), "line")
                 for ln in rec.dialogue if ln.decrypted]
        chunks = sorted([c for c in chunks if c[4] != "lines"] + lines, key=lambda c: c[1])
    for side in (True, False):
        chunks = _joined(chunks, side, ("http",), _mask_http)
    chunks = _joined(chunks, True, ("rfb",), lambda b: _zero_keysyms(b, 16))
    return chunks


def export_decrypted(analysis, path: str, show_secrets: bool = False) -> int:
    """Write every decrypted inner stream of ``analysis`` (run with ``keep_plaintext=True``) to
    ``path``; returns the number of conversations written.  Secrets are redacted unless
    ``show_secrets`` (module docstring)."""
    conversations = 0
    with open(path, "wb") as handle:
        w = PcapngWriter(handle)
        for rec in analysis.sessions:
            dec = rec.decryption
            if dec is None or not dec.plaintext:
                continue
            client, server = ipaddress.ip_address(rec.client_ip), ipaddress.ip_address(rec.server_ip)
            by_hs: dict[int, list] = {}
            for hs, fc, ts, frame, data, mode in dec.plaintext:
                by_hs.setdefault(hs, []).append((fc, ts, frame, data, mode))
            for hs, chunks in sorted(by_hs.items()):
                if not show_secrets:
                    chunks = _redacted(rec, hs, chunks)
                kind = dec.inner.get(hs, "opaque")
                conv = _Conversation(w, client, server, rec.client_port, PORTS.get(kind, 902))
                first_ts = chunks[0][1]
                conv.open(first_ts)
                conversations += 1
                skip_token = 0
                if kind == "rfb" and dec.rfb is not None and dec.rfb.mks:
                    for fc, data in RFB_OPENING:
                        conv.data(fc, first_ts, data, SYNTH)
                    skip_token = 16
                for fc, ts, frame, data, _mode in chunks:
                    if fc and skip_token:
                        cut = min(skip_token, len(data))
                        skip_token -= cut
                        data = data[cut:]
                        if not data:
                            continue
                    conv.data(fc, ts, data, f"decrypted from TLS #{hs} of session {rec.uid}, frame {frame}")
                conv.close(chunks[-1][1])
    return conversations
