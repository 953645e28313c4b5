"""Fuzz targets: each takes bytes and must return without raising (documented errors aside).

A target returning normally is a pass; any other exception is a crash.  The errors a
parser documents for bad input (``dns.Malformed``, ``heartbeat.Malformed``, ``CaptureError``
for a file that is not a capture at all) are part of the contract, not crashes.

Targets
    capture_c, capture_python   the capture reader, each engine, on a whole file
    analyze                     the whole pipeline on a whole (mutated) capture file, then the
                                table and JSON renderers
    pipeline                    the whole pipeline on a byte stream after a valid banner: the
                                input is cut into client/server segments of one TCP connection
    tls                         the TLS record-layer parser, fed in pieces, with gaps
    authd                       authd line buffer + dialogue (both directions), banner parser
    nfc                         the cleartext NFC parser, in pieces, with gaps
    dns                         the DNS message parser and the fast readers
    heartbeat                   the UDP 902 heartbeat parser
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile

from dissect.port902.errors import CaptureError
from dissect.port902.io import capture as capmod
from dissect.port902.proto import authd as authdmod
from dissect.port902.proto import dns as dnsmod
from dissect.port902.proto import heartbeat as hbmod
from dissect.port902.proto import nfc as nfcmod
from dissect.port902.proto import tls as tlsmod

BANNER = (b"220 VMware Authentication Daemon Version 1.10: SSL Required, ServerDaemonProtocol:SOAP, "
          b"MKSDisplayProtocol:VNC , VMXARGS supported, NFCSSL supported/t\r\n")
_TMPDIR = None


def _tmpfile(data: bytes) -> str:
    global _TMPDIR
    if _TMPDIR is None or not os.path.isdir(_TMPDIR):
        _TMPDIR = tempfile.mkdtemp(prefix="fuzz902-")
    path = os.path.join(_TMPDIR, "input.cap")
    with open(path, "wb") as f:
        f.write(data)
    return path


def _pieces(data: bytes):
    """Cut ``data`` into pieces whose lengths the data itself chooses (first byte = seed), and
    mark some cuts as holes: yields ('data', bytes) / ('gap', n)."""
    if not data:
        return
    step = data[0] % 61 + 1
    pos = 1
    k = 0
    while pos < len(data):
        n = step + (data[pos] % 97 if k % 3 == 0 else 0)
        piece = data[pos:pos + n]
        pos += len(piece)
        k += 1
        if k % 11 == 0 and data[0] & 0x80:
            yield "gap", len(piece)
        else:
            yield "data", piece


def _read_capture(data: bytes, engine: str) -> None:
    if engine == "c" and capmod._fastscan is None:
        return
    path = _tmpfile(data)
    sel = capmod.Selection(udp_ports={53, 902}, icmp_errors=True, tcp_control_ports={443})
    try:
        with capmod.CaptureReader(path, sel, engine=engine, chunk_size=4096 if data[:1] == b"\x0a" else 1 << 16) as r:
            for _ in r:
                pass
    except CaptureError:
        pass


def capture_c(data: bytes) -> None:
    _read_capture(data, "c")


def capture_python(data: bytes) -> None:
    _read_capture(data, "python")


def _render(result) -> None:
    from dissect.port902.output.render import render_json, render_table

    out = io.StringIO()
    render_table(result, out)
    text = out.getvalue()
    if any(ch in text for ch in "\x1b\x07\x9b\x00"):
        raise AssertionError("control character in the table output")
    out = io.StringIO()
    render_json(result, out)
    json.loads(out.getvalue())


def analyze(data: bytes) -> None:
    from dissect.port902.analysis import analyze as run

    path = _tmpfile(data)
    try:
        result = run(path)
    except CaptureError:
        return
    _render(result)


_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_REC = struct.Struct("<IIII")
_PCAP = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)  # LINKTYPE_RAW


def stream_capture(data: bytes) -> bytes:
    """A pcap of one port-902 connection: handshake, the greeting, then ``data`` cut into
    segments, the direction of each chosen by the data, some with holes or out of order."""
    c, s = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    seq = [1000, 5000]
    frames = []

    def seg(from_client: bool, flags: int, payload: bytes = b"", skip: int = 0) -> None:
        d = 0 if from_client else 1
        seq[d] += skip
        src, dst, sp, dp = (c, s, 40000, 902) if from_client else (s, c, 902, 40000)
        tcp = _TCP.pack(sp, dp, seq[d] & 0xFFFFFFFF, seq[1 - d] & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0)
        frames.append(_IP.pack(0x45, 0, 40 + len(payload), 0, 0, 64, 6, 0, src, dst) + tcp + payload)
        seq[d] += len(payload) + (1 if flags & 0x03 else 0)

    seg(True, 0x02)
    seg(False, 0x12)
    seg(True, 0x10)
    seg(False, 0x18, BANNER)
    toggle = data[:1] and data[0] & 1
    for kind, piece in _pieces(data):
        from_client = bool(toggle)
        if kind == "gap":
            seq[0 if from_client else 1] += piece
            continue
        seg(from_client, 0x18, piece)
        if piece[:1] and piece[0] & 0x10:
            toggle ^= 1
    if data[-1:] and data[-1] & 1 and len(frames) > 6:  # swap two segments: out of order
        frames[-2], frames[-3] = frames[-3], frames[-2]
    seg(True, 0x11)
    seg(False, 0x11)
    out = [_PCAP]
    for i, fr in enumerate(frames):
        out.append(_REC.pack(1_700_000_000 + i // 100, (i % 100) * 10_000, len(fr), len(fr)))
        out.append(fr)
    return b"".join(out)


def pipeline(data: bytes) -> None:
    from dissect.port902.analysis import analyze as run

    result = run(_tmpfile(stream_capture(data)))
    if len(result.sessions) != 1:
        raise AssertionError(f"one connection in, {len(result.sessions)} sessions out")
    _render(result)


def tls(data: bytes) -> None:
    for role in ("client", "server", None):
        d = tlsmod.TlsDirection(role)
        for i, (kind, piece) in enumerate(_pieces(data)):
            if d.ended:  # the stream left TLS: later bytes belong to another parser (the contract)
                break
            if kind == "gap":
                d.gap(piece, float(i), i)
            else:
                d.feed(piece, float(i), i)
        if not d.ended:
            d.finish(1e9, 10**6)


def authd(data: bytes) -> None:
    dia = authdmod.Dialogue(show_secrets=bool(data[:1] and data[0] & 2))
    bufs = (authdmod.LineBuffer(), authdmod.LineBuffer())
    for i, (kind, piece) in enumerate(_pieces(data)):
        side = i & 1 if not data[:1] or data[0] & 4 else 0
        lb = bufs[side]
        if kind == "gap":
            lb.gap(discard=bool(i & 2))
            continue
        for raw, ts, frame, truncated in lb.feed(piece, float(i), i):
            (dia.client_line if side == 0 else dia.server_line)(raw, ts, frame, truncated)
    authdmod.parse_banner(data.decode("latin-1"))
    authdmod.looks_like_line(data)
    authdmod.split_command(data.decode("latin-1"))


def nfc(data: bytes) -> None:
    nfcmod.looks_like_nfc(data)
    for role in ("client", "server"):
        d = nfcmod.NfcDirection(role)
        for i, (kind, piece) in enumerate(_pieces(data)):
            if kind == "gap":
                d.gap(piece, float(i), i)
            else:
                d.feed(piece, float(i), i)
        d.finish(1e9, 10**6)


def dns(data: bytes) -> None:
    for strict in (True, False):
        try:
            dnsmod.parse(data, strict=strict)
        except dnsmod.Malformed:
            pass
    try:
        flags, name, qtype, pos = dnsmod.scan_question(data)
    except dnsmod.Malformed:
        return
    if pos is not None and pos >= 0 and len(data) >= 8:
        try:
            dnsmod.answer_addresses(data, pos, (data[6] << 8) | data[7])
        except dnsmod.Malformed:
            pass


def heartbeat(data: bytes) -> None:
    try:
        hbmod.parse(data)
    except hbmod.Malformed:
        pass


TARGETS = {
    "capture_c": capture_c,
    "capture_python": capture_python,
    "analyze": analyze,
    "pipeline": pipeline,
    "tls": tls,
    "authd": authd,
    "nfc": nfc,
    "dns": dns,
    "heartbeat": heartbeat,
}
