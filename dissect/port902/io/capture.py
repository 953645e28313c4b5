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

Two engines make that decision.  The C extension ``_fastscan`` (built by ``setup.py``
when a compiler is there) walks the records of a buffer -- the memory-mapped file, or
the decompressed chunks of a gzip stream -- and hands back only the records to keep: a
plain TCP or UDP packet as its finished :class:`Packet` (the fields ``_full_decode``
would produce), anything else (an authd greeting, a TCP header cut by the snaplen, ICMP)
as offsets that Python decodes with ``_full_decode``.  Every unusual record (corrupt
lengths, pcapng section and interface blocks, packet blocks that need a warning) is
handled here in Python with the same code as the pure-Python engine, so both engines
select the same packets and report the same damage (``tests/test_fastscan.py`` checks
that on samples, damaged and fuzzed files).  The pure-Python loop below is the fallback
when the extension is not built, and can be forced with the environment variable
``DISSECT902_PURE_PYTHON=1`` or ``CaptureReader(..., engine="python")``.

Damage is reported, not raised: a file cut off mid-record, a corrupt block or a
snaplen-truncated packet yields a :class:`CaptureWarning` naming the byte offset,
and everything before it is still analysed.  Only a file that is not a capture at
all raises :class:`~dissect.port902.errors.CaptureError`.
"""

from __future__ import annotations

import gzip
import mmap
import os
import struct
import sys
from array import array
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator, NamedTuple

from ..errors import CaptureError

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
_GREETING_LEN = len(AUTHD_GREETING)
DEFAULT_TCP_PORTS = frozenset({902, 903, 912})
CHUNK_SIZE = 8 << 20
MAX_RECORD = 256 << 20  # larger than any sane packet; beyond it the file is corrupt

_U16 = struct.Struct("!H")
_PORTS = struct.Struct("!HH")
_TCP = struct.Struct("!HHIIBBH")  # sport dport seq ack offset/reserved flags window
_UDP = struct.Struct("!HHH")
_IPV4_LEN = struct.Struct("!H")

try:  # the C engine; optional (setup.py builds it when a compiler is available)
    from . import _fastscan
except ImportError:  # pragma: no cover - depends on the build
    _fastscan = None
else:
    if getattr(_fastscan, "API_VERSION", None) != 2 or getattr(_fastscan, "GREETING", None) != AUTHD_GREETING:
        _fastscan = None  # a stale build from another version: do not trust it

ENGINES = ("c", "python")
FAST_BATCH = 4096  # selected records per call into the C scanner
MMAP_WINDOW = 32 << 20  # bytes scanned between progress reports / releases of mapped pages
MAX_SCAN = sys.maxsize  # no window: scan a chunk buffer to its end
_NEXT = struct.Struct("=q")  # the scanner's next-record offsets


def default_engine() -> str:
    """'c' when the extension is built and DISSECT902_PURE_PYTHON is not set, else 'python'."""
    if _fastscan is None or os.environ.get("DISSECT902_PURE_PYTHON", "").strip() not in ("", "0"):
        return "python"
    return "c"


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


_tuple_new = tuple.__new__  # Packet(...) without the Python-level NamedTuple.__new__: same object, cheaper


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
    # ports in tcp_ports whose packets go to the side analyses (observers), not to the authd
    # sessions: plain VNC on 5900-5999 (analyzers/vnc.py)
    observer_tcp_ports: set[int] = field(default_factory=set)
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

    ``engine`` picks the per-record filter: ``"c"`` (the ``_fastscan`` extension),
    ``"python"``, or None for :func:`default_engine`.  ``use_mmap`` (C engine, plain files
    only; default on) maps the file instead of reading it in ``chunk_size`` pieces.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        selection: Selection | None = None,
        progress: Callable[[int], None] | None = None,
        chunk_size: int = CHUNK_SIZE,
        engine: str | None = None,
        use_mmap: bool | None = None,
    ) -> None:
        if engine is None:
            engine = default_engine()
        elif engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
        elif engine == "c" and _fastscan is None:
            raise RuntimeError("the C engine (dissect.port902._fastscan) is not built")
        self.engine = engine
        self.use_mmap = engine == "c" and use_mmap is not False
        self._mm: mmap.mmap | None = None
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
        self._release_map()
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
            if self.engine == "c":
                if self.stats.format == "pcap":
                    yield from self._fast_pcap()
                else:
                    yield from self._fast_pcapng()
            elif self.stats.format == "pcap":
                yield from self._iter_pcap()
            else:
                yield from self._iter_pcapng()
        finally:
            self._release_map()
            if self.progress is not None:
                self.progress(self.stats.size_bytes)

    # -- classic pcap -------------------------------------------------------------------

    def _pcap_header(self) -> tuple[str, int, int, tuple[int, int] | None, int]:
        """The global header: (byte order, ticks per second, snaplen, link layout, record size limit)."""
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
        limit = max(snaplen, 262144) if 0 < snaplen < MAX_RECORD else MAX_RECORD
        return endian, ticks, snaplen, layout, limit

    def _iter_pcap(self) -> Iterator[Packet]:
        endian, ticks, snaplen, layout, limit = self._pcap_header()
        rec = struct.Struct(endian + "IIII")
        rec_unpack = rec.unpack_from
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

    def _pcapng_block(self, buf, off: int, end: int, base: int, frame: int, sec: "_Section", decode):
        """Handle the pcapng block at ``off`` (both engines: the pure loop for every block, the C
        driver for the blocks its scanner hands back).  Returns (status, frame, next offset, packet):
        status ``_BLOCK_STOP`` (corrupt: stop here), ``_BLOCK_MORE`` (the block runs past the data)
        or ``_BLOCK_OK``."""
        btype, blen = sec.blk.unpack_from(buf, off)
        if btype == PCAPNG_SHB:
            bom = struct.unpack_from("<I", buf, off + 8)[0]
            if bom == PCAPNG_BYTE_ORDER_MAGIC:
                sec.reset("<")
            elif bom == 0x4D3C2B1A:
                sec.reset(">")
            else:
                self._warn(base + off, None, "corrupt_record", "section header with a bad byte-order magic; stopping")
                return _BLOCK_STOP, frame, off, None
            blen = sec.blk.unpack_from(buf, off)[1]
        if blen < 12 or blen % 4 or blen > MAX_RECORD:
            self._warn(base + off, frame + 1, "corrupt_record",
                       f"block of type {btype:#x} claims length {blen}; stopping here")
            return _BLOCK_STOP, frame, off, None
        nxt = off + blen
        if nxt > end:
            return _BLOCK_MORE, frame, off, None
        pkt = None
        ifaces = sec.ifaces
        if btype == 6 or btype == 2:  # EPB, obsolete OPB
            frame += 1
            if off + 28 > end:  # a block shorter than its header, at the end of the data
                self._warn(base + off, frame, "corrupt_record",
                           f"packet block of {blen} bytes is too short for its header; skipped")
                return _BLOCK_OK, frame, nxt, None
            if btype == 6:
                ifid, ts_hi, ts_lo, incl, orig = sec.epb.unpack_from(buf, off + 8)
            else:
                ifid_drops, ts_hi, ts_lo, incl, orig = sec.epb.unpack_from(buf, off + 8)
                ifid = ifid_drops >> 16 if sec.endian == ">" else ifid_drops & 0xFFFF
            if incl > blen - 32:
                self._warn(base + off, frame, "corrupt_record",
                           f"packet block claims {incl} captured bytes in a {blen}-byte block; skipped")
            elif ifid < len(ifaces) and ifaces[ifid] is not None:
                layout, div, tsoff = ifaces[ifid]
                pkt = decode(buf, off + 28, incl, orig, layout, frame, 0, (ts_hi << 32) | ts_lo, div,
                             base + off, tsoff)
            elif ifid >= len(ifaces):
                self._warn(base + off, frame, "corrupt_record", f"packet names interface {ifid}, which was never described")
        elif btype == 3:  # SPB: no timestamp, interface 0
            frame += 1
            orig = struct.unpack_from(sec.endian + "I", buf, off + 8)[0]
            incl = min(orig, blen - 16)
            if ifaces and ifaces[0] is not None:
                layout, div, tsoff = ifaces[0]
                pkt = decode(buf, off + 12, incl, orig, layout, frame, 0, 0, div, base + off, tsoff)
        elif btype == 1:  # IDB
            sec.add_interface(self._parse_idb(buf, off, blen, sec.endian, base))
        return _BLOCK_OK, frame, nxt, pkt

    def _iter_pcapng(self) -> Iterator[Packet]:
        frame = 0
        base = 0
        buf = b""
        off = 0
        sec = _Section()
        decode = self._decoder()
        stats = self.stats
        for chunk in self._chunks(self._head):
            buf = buf[off:] + chunk if off < len(buf) else chunk
            base += off
            off = 0
            end = len(buf)
            while off + 12 <= end:
                status, frame, nxt, pkt = self._pcapng_block(buf, off, end, base, frame, sec, decode)
                if status == _BLOCK_STOP:
                    stats.packets = frame
                    return
                if status == _BLOCK_MORE:
                    break
                if pkt is not None:
                    yield pkt
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
            elif code == 14 and olen >= 8 and len(val) >= 8:  # if_tsoffset, seconds (cut short: ignored)
                tsoff = struct.unpack_from(endian + "q", val)[0]
            p += 4 + olen + (-olen % 4)
        layout = _LINK_LAYOUT.get(linktype)
        if layout is None:
            self._warn(base + off, None, "unsupported_link", f"interface with link type {linktype} is not supported")
            return None
        return (layout, divisor, tsoff)

    # -- C engine: record walking in _fastscan, everything unusual here ------------------

    def _release_map(self) -> None:
        mm, self._mm = self._mm, None
        if mm is not None:
            mm.close()

    def _fast_source(self, start: int, initial: bytes) -> tuple[bytes | mmap.mmap, int, int, Iterator[bytes]]:
        """Where the C engine starts: (buffer, stream offset of its first byte, scan offset, later chunks).

        A plain file is memory-mapped whole (no copy; pages already scanned are released as the
        scan moves on, so memory stays flat); whatever the file grew by after that is read in
        chunks.  A gzip stream, or a file that cannot be mapped, is read in chunks exactly as the
        pure-Python engine reads it."""
        if self.use_mmap and self._stream is self._raw:
            try:
                mm = mmap.mmap(self._raw.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError, OverflowError):
                mm = None
            if mm is not None and len(mm) >= start:
                self._mm = mm
                if hasattr(mm, "madvise"):
                    mm.madvise(mmap.MADV_SEQUENTIAL)
                self._raw.seek(len(mm))
                return mm, 0, start, self._chunks(b"")
            if mm is not None:
                mm.close()
        if start:  # classic pcap: the global header was read already
            return b"", start, 0, self._chunks(b"")
        return b"", 0, 0, self._chunks(initial)

    def _fast_window(self, off: int, dropped: int) -> int:
        """After each window of a mapped file: report progress, release the pages scanned so far."""
        if self.progress is not None:
            self.progress(off)
        mm = self._mm
        drop = off - off % mmap.PAGESIZE
        if mm is not None and drop > dropped and hasattr(mm, "madvise"):
            mm.madvise(mmap.MADV_DONTNEED, dropped, drop - dropped)
            return drop
        return dropped

    def _fast_next(self, buf, base: int, off: int, chunks: Iterator[bytes]):
        """The next buffer: the unscanned tail of this one plus the next chunk; None at the end."""
        chunk = next(chunks, None)
        if chunk is None:
            return None
        buf = buf[off:] + chunk if off < len(buf) else chunk
        self._release_map()
        return buf, base + off

    def _fast_pcap(self) -> Iterator[Packet]:
        endian, ticks, snaplen, layout, limit = self._pcap_header()
        rec_unpack = struct.Struct(endian + "IIII").unpack_from
        big = endian == ">"
        etoff, l3off = layout if layout is not None else (-1, 0)
        decode_flag = _fastscan.F_DECODE if layout is not None else 0
        tsinfo = (ticks, 0)
        scan = _fastscan.scan_pcap
        need_more, slow = _fastscan.STOP_NEED_MORE, _fastscan.STOP_SLOW
        ports = _PortMaps(self.selection)
        tcp_ports, ctl_ports, udp_ports = ports.tcp_ports, ports.ctl_ports, ports.udp_ports
        snap_tcp, snap_ctl, snap_udp = ports.snap_tcp, ports.snap_ctl, ports.snap_udp  # updated in place
        full = self._full_decode
        stats = self.stats
        frame = 0
        buf, base, off, chunks = self._fast_source(24, b"")
        dropped = 0
        window_end = off + MMAP_WINDOW
        while True:
            budget = MMAP_WINDOW if buf is self._mm else MAX_SCAN
            while True:
                off, frame, reason, hits, nexts = scan(buf, off, big, limit, etoff, l3off, frame, ports.tcp,
                                                       ports.ctl, ports.udp, ports.flags | decode_flag, budget,
                                                       FAST_BATCH, Packet, tsinfo)
                for item in hits:
                    if item.__class__ is Packet:  # built by the scanner
                        pkt = item
                    else:  # greeting, snaplen-cut TCP header, ICMP: decoded here
                        rec_off, _nxt, frm, p, incl, orig, l3, l4, ver, proto, ts_a, ts_b, _ifid, greet = item
                        if greet >= 0:
                            ports.greeting(greet)
                        ts = ts_a + ts_b / ticks + 0
                        pkt = full(buf, p, p + incl, l3, l4, ver, proto, incl, orig, frm, base + rec_off, ts)
                        if pkt is None:
                            continue
                    stats.selected += 1
                    if stats.first_ts is None:
                        stats.first_ts = pkt.ts
                    stats.last_ts = pkt.ts
                    yield pkt
                    if tcp_ports != snap_tcp or ctl_ports != snap_ctl or udp_ports != snap_udp:
                        ports.rebuild()  # the consumer changed the selection: rescan after this packet
                        off, frame, reason = _after(hits, item, nexts), pkt.frame, -1
                        break
                if reason == need_more:
                    break
                if reason == slow:  # a record claiming more than the limit
                    incl = rec_unpack(buf, off)[2]
                    self._warn(base + off, frame + 1, "corrupt_record",
                               f"record claims {incl} captured bytes (snaplen {snaplen}); stopping here")
                    stats.packets = frame
                    return
                if off >= window_end and buf is self._mm:
                    dropped = self._fast_window(base + off, dropped)
                    window_end = off + MMAP_WINDOW
            nxt_buf = self._fast_next(buf, base, off, chunks)
            if nxt_buf is None:
                break
            (buf, base), off = nxt_buf, 0
        stats.packets = frame
        if off < len(buf):
            self._warn(base + off, frame + 1, "truncated_file",
                       f"capture ends inside a record ({len(buf) - off} stray bytes); analysed the {frame} "
                       "complete records before it")

    def _fast_pcapng(self) -> Iterator[Packet]:
        frame = 0
        sec = _Section()  # interfaces, also in the scanner's form (iftab, tsinfo)
        decode = self._decoder()  # for the rare packet block handled here
        scan = _fastscan.scan_pcapng
        need_more, slow = _fastscan.STOP_NEED_MORE, _fastscan.STOP_SLOW
        ports = _PortMaps(self.selection)
        tcp_ports, ctl_ports, udp_ports = ports.tcp_ports, ports.ctl_ports, ports.udp_ports
        snap_tcp, snap_ctl, snap_udp = ports.snap_tcp, ports.snap_ctl, ports.snap_udp  # updated in place
        full = self._full_decode
        stats = self.stats
        buf, base, off, chunks = self._fast_source(0, self._head)
        dropped = 0
        window_end = off + MMAP_WINDOW
        while True:
            budget = MMAP_WINDOW if buf is self._mm else MAX_SCAN
            end = len(buf)
            while True:
                off, frame, reason, hits, nexts = scan(buf, off, sec.endian == ">", sec.iftab, frame, ports.tcp,
                                                       ports.ctl, ports.udp, ports.flags, budget, FAST_BATCH, Packet,
                                                       sec.tsinfo)
                for item in hits:
                    if item.__class__ is Packet:  # built by the scanner
                        pkt = item
                    else:  # greeting, snaplen-cut TCP header, ICMP: decoded here
                        rec_off, _nxt, frm, p, incl, orig, l3, l4, ver, proto, ts_a, ts_b, ifid, greet = item
                        if greet >= 0:
                            ports.greeting(greet)
                        _layout, div, tsoff = sec.ifaces[ifid]
                        ts = ts_a + ts_b / div + tsoff
                        pkt = full(buf, p, p + incl, l3, l4, ver, proto, incl, orig, frm, base + rec_off, ts)
                        if pkt is None:
                            continue
                    stats.selected += 1
                    if stats.first_ts is None:
                        stats.first_ts = pkt.ts
                    stats.last_ts = pkt.ts
                    yield pkt
                    if tcp_ports != snap_tcp or ctl_ports != snap_ctl or udp_ports != snap_udp:
                        ports.rebuild()  # the consumer changed the selection: rescan after this packet
                        off, frame, reason = _after(hits, item, nexts), pkt.frame, -1
                        break
                if reason == need_more:
                    break
                if reason != slow:
                    if off >= window_end and buf is self._mm:
                        dropped = self._fast_window(base + off, dropped)
                        window_end = off + MMAP_WINDOW
                    continue
                # one block the scanner leaves to Python, handled as the pure engine handles it
                status, frame, nxt, pkt = self._pcapng_block(buf, off, end, base, frame, sec, decode)
                if status == _BLOCK_STOP:
                    stats.packets = frame
                    return
                if status == _BLOCK_MORE:
                    break
                off = nxt
                if pkt is not None:
                    yield pkt
                if ports.changed():  # a greeting seen by the Python decoder, or the consumer
                    ports.rebuild()
            nxt_buf = self._fast_next(buf, base, off, chunks)
            if nxt_buf is None:
                break
            (buf, base), off = nxt_buf, 0
        stats.packets = frame
        if off < len(buf):
            self._warn(base + off, frame + 1, "truncated_file",
                       f"capture ends inside a block ({len(buf) - off} stray bytes); analysed the {frame} "
                       "complete packets before it")

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
                        if greet and first == 0x32 and buf[data:data + _GREETING_LEN] == AUTHD_GREETING:
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
            declared = ip_end - data if ip_end > data else 0
            # a payload cut short by the snaplen (len(payload) < declared) is a gap for the reassembler
            payload = buf[data:ip_end if ip_end <= end else end] if data < end else b""
            return _tuple_new(Packet, (frame, ts, proto, src, dst, sp, dp, seq, ack, flags, win, payload, declared,
                                       orig))
        if proto == IPPROTO_UDP:
            if l4 + 8 > end:
                return None
            sp, dp, ulen = _UDP.unpack_from(buf, l4)
            payload = buf[l4 + 8:min(l4 + max(ulen, 8), end)]
            return _tuple_new(Packet, (frame, ts, proto, src, dst, sp, dp, 0, 0, 0, 0, payload, max(0, ulen - 8),
                                       orig))
        # ICMP / ICMPv6: keep errors only (dest unreachable, time exceeded, packet too big)
        if l4 + 8 > end:
            return None
        itype, icode = buf[l4], buf[l4 + 1]
        if ver == 4 and itype not in (3, 11) or ver == 6 and itype not in (1, 2, 3):
            return None
        payload = buf[l4 + 8:min(ip_end, end)]
        return Packet(frame, ts, proto, src, dst, itype, icode, 0, 0, 0, 0, payload, max(0, ip_end - l4 - 8), orig)


_BLOCK_OK, _BLOCK_MORE, _BLOCK_STOP = range(3)


class _Section:
    """State of the current pcapng section: byte order, block structs and the interfaces, kept
    both as Python tuples and in the C scanner's flat form."""

    def __init__(self) -> None:
        self.reset("<")

    def reset(self, endian: str) -> None:
        self.endian = endian
        self.blk = struct.Struct(endian + "II")
        self.epb = struct.Struct(endian + "IIIII")
        self.ifaces: list[tuple | None] = []  # per interface: (layout, ticks per second, ts offset)
        self.iftab = array("i")  # for the scanner: (EtherType offset, network offset) pairs
        self.tsinfo: list[tuple[int, int] | None] = []  # and (ticks per second, ts offset)

    def add_interface(self, iface: tuple | None) -> None:
        self.ifaces.append(iface)
        if _fastscan is not None:
            self.iftab.extend(iface[0] if iface is not None else (_fastscan.IFACE_NONE, 0))
        self.tsinfo.append(iface[1:] if iface is not None else None)


def _after(hits: list, item: object, nexts: bytes) -> int:
    """Offset of the record after ``item`` (one of the scanner's ``hits``)."""
    i = next(i for i, x in enumerate(hits) if x is item)
    return _NEXT.unpack_from(nexts, 8 * i)[0]


def _port_flags(ports) -> bytearray:
    """A 65536-byte table: 1 where ``port in ports`` holds for the integer port."""
    table = bytearray(65536)
    for x in ports:
        try:
            i = int(x)
        except Exception:  # noqa: BLE001 - not a number: matches no port
            continue
        if i == x and 0 <= i < 65536:
            table[i] = 1
    return table


class _PortMaps:
    """The Selection as the C scanner sees it: flag tables built from the live port sets.

    The sets are the same objects the pure-Python decoder binds, so the C engine notices
    when a consumer changes them between two packets (``changed``) and rebuilds the tables;
    a greeting seen by the scanner is added to ``tcp_ports`` when its packet is handed out,
    exactly when the pure-Python decoder adds it."""

    __slots__ = ("tcp_ports", "ctl_ports", "udp_ports", "icmp", "greet", "snap_tcp", "snap_ctl", "snap_udp",
                 "tcp", "ctl", "udp", "flags")

    def __init__(self, sel: Selection) -> None:
        self.tcp_ports, self.ctl_ports, self.udp_ports = sel.tcp_ports, sel.tcp_control_ports, sel.udp_ports
        self.icmp, self.greet = sel.icmp_errors, sel.detect_greeting  # bound once, like _decoder
        self.rebuild()

    def rebuild(self) -> None:
        if not hasattr(self, "snap_tcp"):
            self.snap_tcp, self.snap_ctl, self.snap_udp = set(), set(), set()
        for snap, live in ((self.snap_tcp, self.tcp_ports), (self.snap_ctl, self.ctl_ports),
                           (self.snap_udp, self.udp_ports)):
            snap.clear()
            snap.update(live)
        self.tcp, self.ctl, self.udp = (_port_flags(self.tcp_ports), _port_flags(self.ctl_ports),
                                        _port_flags(self.udp_ports))
        self.flags = ((_fastscan.F_ICMP if self.icmp else 0) | (_fastscan.F_GREET if self.greet else 0)
                      | (_fastscan.F_UDP if self.udp_ports else 0))

    def greeting(self, port: int) -> None:
        """The scanner saw an authd greeting from ``port`` (and already set its flag)."""
        self.tcp_ports.add(port)
        self.snap_tcp.add(port)

    def changed(self) -> bool:
        return self.tcp_ports != self.snap_tcp or self.ctl_ports != self.snap_ctl or self.udp_ports != self.snap_udp


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
