"""Capture files -> the packets that matter for port 902 (stage 1 of the pipeline).

Reads classic pcap (both byte orders, µs and ns timestamps), pcapng (several
interfaces, per-interface ``if_tsresol``/``if_tsoffset``, EPB/SPB/OPB) and either
of them gzip-compressed, for the link types an ESXi/vCenter/client capture comes
in: Ethernet (802.1Q / QinQ), Linux cooked SLL and SLL2, raw IPv4/IPv6 and BSD
loopback.

Why it looks the way it does: multi-GB captures are normal and port-902 traffic is
usually a few percent of them.  The loop below walks record headers in a large
``bytes`` buffer with precompiled ``struct`` objects and decides from a handful of
integers whether a packet is interesting.  Only packets that are (TCP on a watched
port, or TCP whose payload starts with the authd greeting, or UDP/ICMP a caller
asked for) become a :class:`Packet`; everything else costs a few integer
operations and no Python object.  The file is streamed in chunks, so memory stays
flat however large the capture.

Damage is reported, not raised: a file cut off mid-record, a corrupt block or a
snaplen-truncated packet yields a :class:`CaptureWarning` naming the byte offset,
and everything before it is still analysed.  Only a file that is not a capture at
all raises :class:`~dissect.port902.errors.CaptureError`.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator, NamedTuple

from .errors import CaptureError

# --- file formats ------------------------------------------------------------------

PCAP_MAGIC = {  # magic as read little-endian -> (byte order, ticks per second)
    0xA1B2C3D4: ("<", 1_000_000),
    0xD4C3B2A1: (">", 1_000_000),
    0xA1B23C4D: ("<", 1_000_000_000),
    0x4D3CB2A1: (">", 1_000_000_000),
}
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
PCAPNG_BLOCKS = {1: "IDB", 2: "OPB", 3: "SPB", 5: "ISB", 6: "EPB", 0x0A0D0D0A: "SHB"}
GZIP_MAGIC = b"\x1f\x8b"

# --- link types (LINKTYPE_* numbers from tcpdump.org) -----------------------------

LINKTYPES = {
    0: "NULL",
    1: "ETHERNET",
    12: "RAW",  # OpenBSD's DLT_RAW value, seen in old files
    14: "RAW",
    101: "RAW",
    108: "LOOP",
    113: "LINUX_SLL",
    228: "IPV4",
    229: "IPV6",
    276: "LINUX_SLL2",
}
# link type -> (offset of the EtherType or -1 when the IP version nibble decides,
#               offset of the network header)
_LINK_LAYOUT = {
    1: (12, 14),
    113: (14, 16),
    276: (0, 20),
    0: (-1, 4),
    108: (-1, 4),
    12: (-1, 0),
    14: (-1, 0),
    101: (-1, 0),
    228: (-1, 0),
    229: (-1, 0),
}
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58
IPV6_EXTENSION_HEADERS = (0, 43, 60, 51)  # hop-by-hop, routing, dest-opts, AH (44 fragment: stop)

AUTHD_GREETING = b"220 VMware Authentication Daemon"
DEFAULT_TCP_PORTS = frozenset({902, 903, 912})
CHUNK_SIZE = 8 << 20
MAX_RECORD = 256 << 20  # larger than any sane packet; beyond it the file is corrupt

_U16 = struct.Struct("!H")
_PORTS = struct.Struct("!HH")
_TCP = struct.Struct("!HHIIBBH")  # sport dport seq ack offset/reserved flags window
_UDP = struct.Struct("!HHH")
_IPV4_LEN = struct.Struct("!H")


class Packet(NamedTuple):
    """One packet of interest, decoded down to the transport header."""

    frame: int  # 1-based position in the capture, as Wireshark numbers frames
    ts: float  # epoch seconds
    proto: int  # IPPROTO_TCP / IPPROTO_UDP / IPPROTO_ICMP / IPPROTO_ICMPV6
    src: bytes  # 4 or 16 bytes
    dst: bytes
    sport: int  # TCP/UDP source port; ICMP: type
    dport: int  # TCP/UDP destination port; ICMP: code
    seq: int
    ack: int
    flags: int  # TCP flags byte (0 for UDP/ICMP)
    window: int
    payload: bytes  # captured transport payload (may be shorter than payload_len)
    payload_len: int  # payload length the IP header declares
    wire_len: int  # original frame length


class CaptureWarning(NamedTuple):
    """Damage found while reading; the analysis of what came before stands."""

    path: str
    offset: int  # byte offset in the (uncompressed) capture stream
    frame: int | None
    kind: str  # truncated_file | corrupt_record | snaplen_truncated | unsupported_link | malformed_packet
    detail: str


@dataclass
class Selection:
    """What the fast path keeps: TCP on these ports (either side), authd greetings on
    any TCP port, and optionally UDP ports and ICMP errors."""

    tcp_ports: set[int] = field(default_factory=lambda: set(DEFAULT_TCP_PORTS))
    # ports where only connection control is kept: SYN/FIN/RST, a TLS handshake record or an
    # HTTP request line (enough to see console paths and vCenter traffic, cheap on busy 443)
    tcp_control_ports: set[int] = field(default_factory=set)
    udp_ports: set[int] = field(default_factory=set)
    icmp_errors: bool = False
    detect_greeting: bool = True


@dataclass
class CaptureStats:
    path: str = ""
    format: str = ""
    link_types: list[str] = field(default_factory=list)
    size_bytes: int = 0
    packets: int = 0
    selected: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    warnings: list[CaptureWarning] = field(default_factory=list)


def _open(path: str | os.PathLike) -> tuple[BinaryIO, BinaryIO, int]:
    """Open a capture, transparently un-gzipping; returns (stream, raw file, size)."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by CaptureReader.close
    except OSError as exc:
        raise CaptureError(f"cannot open {os.fspath(path)}: {exc.strerror or exc}") from exc
    size = os.fstat(raw.fileno()).st_size
    head = raw.read(2)
    raw.seek(0)
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw, size
    return raw, raw, size


class CaptureReader:
    """Stream a capture file and yield the :class:`Packet` s a :class:`Selection` keeps.

    ``progress`` (optional) is called with the number of raw file bytes consumed so far,
    once per chunk, so a caller can drive a progress bar without touching the hot loop.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        selection: Selection | None = None,
        progress: Callable[[int], None] | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.path = os.fspath(path)
        self.selection = selection or Selection()
        self.progress = progress
        self.chunk_size = chunk_size
        self.stats = CaptureStats(path=self.path)
        self._stream, self._raw, self.stats.size_bytes = _open(path)
        try:
            head = self._stream.read(24)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            self.close()
            raise CaptureError(f"{self.path}: unreadable ({exc})") from exc
        self._head = head
        magic_le = struct.unpack_from("<I", head)[0] if len(head) >= 4 else None
        if magic_le in PCAP_MAGIC:
            self.stats.format = "pcap"
        elif magic_le == PCAPNG_SHB:
            self.stats.format = "pcapng"
        else:
            self.close()
            shown = head[:4].hex() or "empty file"
            raise CaptureError(f"{self.path}: not a pcap or pcapng capture (starts with {shown})")

    def close(self) -> None:
        self._stream.close()
        self._raw.close()

    def __enter__(self) -> "CaptureReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- warnings ---------------------------------------------------------------------

    def _warn(self, offset: int, frame: int | None, kind: str, detail: str) -> None:
        self.stats.warnings.append(CaptureWarning(self.path, offset, frame, kind, detail))

    # -- chunked reading ----------------------------------------------------------------

    def _read_chunk(self) -> bytes:
        """Read up to chunk_size bytes.  From gzip, read in small steps so that a stream that
        ends early loses nothing that was decompressed before the damage."""
        if self._stream is self._raw:
            return self._raw.read(self.chunk_size)
        parts, got = [], 0
        while got < self.chunk_size and self._damage is None:
            try:
                part = self._stream.read1(self.chunk_size - got)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                self._damage = str(exc)
                break
            if not part:
                break
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def _chunks(self, initial: bytes) -> Iterator[bytes]:
        """Yield raw chunks; the first one starts with the bytes already read."""
        self._damage: str | None = None
        chunk = initial + self._read_chunk()
        while chunk:
            yield chunk
            if self.progress is not None:
                self.progress(self._raw.tell())
            chunk = self._read_chunk()
        if self._damage is not None:
            self._warn(-1, None, "truncated_file", f"compressed stream is damaged or cut short: {self._damage}")

    def __iter__(self) -> Iterator[Packet]:
        try:
            if self.stats.format == "pcap":
                yield from self._iter_pcap()
            else:
                yield from self._iter_pcapng()
        finally:
            if self.progress is not None:
                self.progress(self.stats.size_bytes)

    # -- classic pcap -------------------------------------------------------------------

    def _iter_pcap(self) -> Iterator[Packet]:
        head = self._head
        if len(head) < 24:
            raise CaptureError(f"{self.path}: pcap global header is cut short ({len(head)} of 24 bytes)")
        magic = struct.unpack_from("<I", head)[0]
        endian, ticks = PCAP_MAGIC[magic]
        _vmaj, _vmin, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(endian + "HHiIII", head, 4)
        linktype &= 0x0FFFFFFF  # upper bits carry FCS info
        self.stats.link_types = [LINKTYPES.get(linktype, f"LINKTYPE_{linktype}")]
        layout = _LINK_LAYOUT.get(linktype)
        if layout is None:
            self._warn(0, None, "unsupported_link", f"link type {linktype} is not supported; no packet decoded")
        rec = struct.Struct(endian + "IIII")
        rec_unpack = rec.unpack_from
        limit = max(snaplen, 262144) if 0 < snaplen < MAX_RECORD else MAX_RECORD
        frame = 0
        base = 24  # stream offset of buf[0]
        buf = b""
        off = 0
        decode = self._decoder()
        stats = self.stats
        for chunk in self._chunks(b""):
            buf = buf[off:] + chunk if off < len(buf) else chunk
            base += off
            off = 0
            end = len(buf)
            while off + 16 <= end:
                ts_s, ts_f, incl, orig = rec_unpack(buf, off)
                nxt = off + 16 + incl
                if incl > limit:
                    self._warn(base + off, frame + 1, "corrupt_record",
                               f"record claims {incl} captured bytes (snaplen {snaplen}); stopping here")
                    stats.packets = frame
                    return
                if nxt > end:
                    break
                frame += 1
                if layout is not None:
                    pkt = decode(buf, off + 16, incl, orig, layout, frame, ts_s, ts_f, ticks, base + off)
                    if pkt is not None:
                        yield pkt
                off = nxt
        stats.packets = frame
        if off < len(buf):
            self._warn(base + off, frame + 1, "truncated_file",
                       f"capture ends inside a record ({len(buf) - off} stray bytes); analysed the {frame} "
                       "complete records before it")

    # -- pcapng -------------------------------------------------------------------------

    def _iter_pcapng(self) -> Iterator[Packet]:
        frame = 0
        base = 0
        buf = b""
        off = 0
        endian = "<"
        blk = struct.Struct("<II")
        epb = struct.Struct("<IIIII")
        ifaces: list[tuple | None] = []  # per interface: (layout, ticks per second, ts offset)
        decode = self._decoder()
        stats = self.stats
        for chunk in self._chunks(self._head):
            buf = buf[off:] + chunk if off < len(buf) else chunk
            base += off
            off = 0
            end = len(buf)
            while off + 12 <= end:
                btype, blen = blk.unpack_from(buf, off)
                if btype == PCAPNG_SHB:
                    bom = struct.unpack_from("<I", buf, off + 8)[0]
                    if bom == PCAPNG_BYTE_ORDER_MAGIC:
                        endian = "<"
                    elif bom == 0x4D3C2B1A:
                        endian = ">"
                    else:
                        self._warn(base + off, None, "corrupt_record", "section header with a bad byte-order magic; stopping")
                        stats.packets = frame
                        return
                    blk = struct.Struct(endian + "II")
                    epb = struct.Struct(endian + "IIIII")
                    blen = blk.unpack_from(buf, off)[1]
                    ifaces = []
                if blen < 12 or blen % 4 or blen > MAX_RECORD:
                    self._warn(base + off, frame + 1, "corrupt_record",
                               f"block of type {btype:#x} claims length {blen}; stopping here")
                    stats.packets = frame
                    return
                nxt = off + blen
                if nxt > end:
                    break
                if btype == 6 or btype == 2:  # EPB, obsolete OPB
                    if btype == 6:
                        ifid, ts_hi, ts_lo, incl, orig = epb.unpack_from(buf, off + 8)
                    else:
                        ifid_drops, ts_hi, ts_lo, incl, orig = epb.unpack_from(buf, off + 8)
                        ifid = ifid_drops >> 16 if endian == ">" else ifid_drops & 0xFFFF
                    frame += 1
                    if incl > blen - 32:
                        self._warn(base + off, frame, "corrupt_record",
                                   f"packet block claims {incl} captured bytes in a {blen}-byte block; skipped")
                    elif ifid < len(ifaces) and ifaces[ifid] is not None:
                        layout, div, tsoff = ifaces[ifid]
                        pkt = decode(buf, off + 28, incl, orig, layout, frame, 0, (ts_hi << 32) | ts_lo, div,
                                     base + off, tsoff)
                        if pkt is not None:
                            yield pkt
                    elif ifid >= len(ifaces):
                        self._warn(base + off, frame, "corrupt_record", f"packet names interface {ifid}, which was never described")
                elif btype == 3:  # SPB: no timestamp, interface 0
                    frame += 1
                    orig = struct.unpack_from(endian + "I", buf, off + 8)[0]
                    incl = min(orig, blen - 16)
                    if ifaces and ifaces[0] is not None:
                        layout, div, tsoff = ifaces[0]
                        pkt = decode(buf, off + 12, incl, orig, layout, frame, 0, 0, div, base + off, tsoff)
                        if pkt is not None:
                            yield pkt
                elif btype == 1:  # IDB
                    ifaces.append(self._parse_idb(buf, off, blen, endian, base))
                off = nxt
        stats.packets = frame
        if off < len(buf):
            self._warn(base + off, frame + 1, "truncated_file",
                       f"capture ends inside a block ({len(buf) - off} stray bytes); analysed the {frame} "
                       "complete packets before it")

    def _parse_idb(self, buf: bytes, off: int, blen: int, endian: str, base: int) -> tuple | None:
        linktype = struct.unpack_from(endian + "H", buf, off + 8)[0]
        name = LINKTYPES.get(linktype, f"LINKTYPE_{linktype}")
        if name not in self.stats.link_types:
            self.stats.link_types.append(name)
        divisor = 1_000_000
        tsoff = 0
        p = off + 16
        stop = off + blen - 4
        while p + 4 <= stop:
            code, olen = struct.unpack_from(endian + "HH", buf, p)
            if code == 0:
                break
            val = buf[p + 4:p + 4 + olen]
            if code == 9 and olen >= 1:  # if_tsresol
                r = val[0]
                divisor = 2 ** (r & 0x7F) if r & 0x80 else 10**r
            elif code == 14 and olen >= 8:  # if_tsoffset, seconds
                tsoff = struct.unpack_from(endian + "q", val)[0]
            p += 4 + olen + (-olen % 4)
        layout = _LINK_LAYOUT.get(linktype)
        if layout is None:
            self._warn(base + off, None, "unsupported_link", f"interface with link type {linktype} is not supported")
            return None
        return (layout, divisor, tsoff)

    # -- per-packet decode (the hot path) -----------------------------------------------

    def _decoder(self):
        """Build the per-packet function with everything it needs bound as locals."""
        sel = self.selection
        tcp_ports = sel.tcp_ports
        ctl_ports = sel.tcp_control_ports
        udp_ports = sel.udp_ports
        icmp = sel.icmp_errors
        greet = sel.detect_greeting
        u16 = _U16.unpack_from
        ports = _PORTS.unpack_from
        full = self._full_decode
        stats = self.stats

        def decode(buf, p, incl, orig, layout, frame, ts_a, ts_b, div, rec_off, tsoff=0):
            etoff, l3off = layout
            end = p + incl
            try:
                if etoff >= 0:
                    et = u16(buf, p + etoff)[0]
                    l3 = p + l3off
                    while et in VLAN_TAGS:
                        et = u16(buf, l3 + 2)[0]
                        l3 += 4
                    if et == ETHERTYPE_IPV4:
                        ver = 4
                    elif et == ETHERTYPE_IPV6:
                        ver = 6
                    else:
                        return None
                else:
                    l3 = p + l3off
                    ver = buf[l3] >> 4
                if ver == 4:
                    ihl = (buf[l3] & 15) << 2
                    proto = buf[l3 + 9]
                    l4 = l3 + ihl
                    if buf[l3 + 7] | (buf[l3 + 6] & 0x1F):  # non-first fragment
                        return None
                elif ver == 6:
                    proto = buf[l3 + 6]
                    l4 = l3 + 40
                    while proto in IPV6_EXTENSION_HEADERS and l4 + 2 <= end:
                        proto, l4 = buf[l4], l4 + ((buf[l4 + 1] + 1) << 3)
                else:
                    return None
                if proto == IPPROTO_TCP:
                    if l4 + 4 > end:
                        return None
                    sp, dp = ports(buf, l4)
                    if sp in tcp_ports or dp in tcp_ports:
                        pass
                    elif l4 + 14 <= end:
                        data = l4 + ((buf[l4 + 12] >> 4) << 2)
                        first = buf[data] if data < end else -1
                        if greet and first == 0x32 and buf.startswith(AUTHD_GREETING, data):
                            tcp_ports.add(sp)  # an authd server on an unusual port: follow it from now on
                        elif not ((sp in ctl_ports or dp in ctl_ports)
                                  and (buf[l4 + 13] & 0x07 or first == 0x16 or first == 0x47)):
                            return None
                    else:
                        return None
                elif proto == IPPROTO_UDP:
                    if not udp_ports or l4 + 4 > end:
                        return None
                    sp, dp = ports(buf, l4)
                    if sp not in udp_ports and dp not in udp_ports:
                        return None
                elif proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
                    if not icmp:
                        return None
                else:
                    return None
            except (IndexError, struct.error):
                return None  # too short to be of interest; counted by nothing, costs nothing
            ts = ts_a + ts_b / div + tsoff
            pkt = full(buf, p, end, l3, l4, ver, proto, incl, orig, frame, rec_off, ts)
            if pkt is not None:
                stats.selected += 1
                if stats.first_ts is None:
                    stats.first_ts = pkt.ts
                stats.last_ts = pkt.ts
            return pkt

        return decode

    def _full_decode(self, buf, p, end, l3, l4, ver, proto, incl, orig, frame, rec_off, ts) -> Packet | None:
        """Decode an interesting packet completely (runs only for selected packets)."""
        if ver == 4:
            total = _IPV4_LEN.unpack_from(buf, l3 + 2)[0]
            src, dst = buf[l3 + 12:l3 + 16], buf[l3 + 16:l3 + 20]
            ip_end = l3 + total if total else end  # 0 = TSO super-frame: trust the capture
        else:
            plen = _IPV4_LEN.unpack_from(buf, l3 + 4)[0]
            src, dst = buf[l3 + 8:l3 + 24], buf[l3 + 24:l3 + 40]
            ip_end = l3 + 40 + plen if plen else end
        if proto == IPPROTO_TCP:
            if l4 + 20 > end:
                self._warn(rec_off, frame, "snaplen_truncated", "TCP header cut off by the snapshot length")
                return None
            sp, dp, seq, ack, doff, flags, win = _TCP.unpack_from(buf, l4)
            data = l4 + ((doff >> 4) << 2)
            declared = max(0, ip_end - data)
            payload = buf[data:min(ip_end, end)] if data < end else b""
            if len(payload) < declared and incl < orig:
                pass  # snaplen truncation: the reassembler sees the missing bytes as a gap
            return Packet(frame, ts, proto, src, dst, sp, dp, seq, ack, flags, win, payload, declared, orig)
        if proto == IPPROTO_UDP:
            if l4 + 8 > end:
                return None
            sp, dp, ulen = _UDP.unpack_from(buf, l4)
            payload = buf[l4 + 8:min(l4 + max(ulen, 8), end)]
            return Packet(frame, ts, proto, src, dst, sp, dp, 0, 0, 0, 0, payload, max(0, ulen - 8), orig)
        # ICMP / ICMPv6: keep errors only (dest unreachable, time exceeded, packet too big)
        if l4 + 8 > end:
            return None
        itype, icode = buf[l4], buf[l4 + 1]
        if ver == 4 and itype not in (3, 11) or ver == 6 and itype not in (1, 2, 3):
            return None
        payload = buf[l4 + 8:min(ip_end, end)]
        return Packet(frame, ts, proto, src, dst, itype, icode, 0, 0, 0, 0, payload, max(0, ip_end - l4 - 8), orig)


def read_packets(path: str | os.PathLike, selection: Selection | None = None) -> Iterator[Packet]:
    """Convenience generator over a capture's packets of interest."""
    with CaptureReader(path, selection) as reader:
        yield from reader


__all__ = [
    "CaptureReader",
    "CaptureStats",
    "CaptureWarning",
    "Packet",
    "Selection",
    "read_packets",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "IPPROTO_ICMP",
    "IPPROTO_ICMPV6",
]
