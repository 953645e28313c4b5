"""pcapng sections, interfaces and blocks (draft-ietf-opsawg-pcapng §3–§4): both engines use this.
"""

from __future__ import annotations

import struct
from array import array
from typing import TYPE_CHECKING, Iterator, TypeAlias

from . import native
from .formats import (
    _LINK_LAYOUT,
    LINKTYPES,
    MAX_RECORD,
    PCAPNG_BYTE_ORDER_MAGIC,
    PCAPNG_SHB,
)
from .packet import Buf, CaptureStats, Packet
from .source import extend

if TYPE_CHECKING:
    from .decode import Decode

Iface: TypeAlias = "tuple[tuple[int, int], int, int]"  # (link layout, ticks per second, ts offset)

_BLOCK_OK, _BLOCK_MORE, _BLOCK_STOP = range(3)


def block_need(buf: Buf, off: int, sec: "_Section") -> int:
    """Bytes the block at ``off`` spans, from its length field once its header is there (0 when
    not yet known, or for a section header, whose byte order is read from the block itself)."""
    if len(buf) - off < 8:
        return 0
    btype, blen = sec.blk.unpack_from(buf, off)
    return 0 if btype == PCAPNG_SHB else min(blen, MAX_RECORD + 64)


class _Section:
    """State of the current pcapng section: byte order, block structs and the interfaces, kept
    both as Python tuples and in the C scanner's flat form."""

    def __init__(self) -> None:
        self.reset("<")

    def reset(self, endian: str) -> None:
        self.endian = endian
        self.blk = struct.Struct(endian + "II")
        self.epb = struct.Struct(endian + "IIIII")
        self.ifaces: list[Iface | None] = []  # per interface: (layout, ticks per second, ts offset)
        self.iftab = array("i")  # for the scanner: (EtherType offset, network offset) pairs
        self.tsinfo: list[tuple[int, int] | None] = []  # and (ticks per second, ts offset)

    def add_interface(self, iface: Iface | None) -> None:
        self.ifaces.append(iface)
        fs = native._fastscan
        if fs is not None:
            self.iftab.extend(iface[0] if iface is not None else (fs.IFACE_NONE, 0))
        self.tsinfo.append(iface[1:] if iface is not None else None)




class _PcapngReader:
    """``CaptureReader``'s pcapng methods: blocks, interface descriptions, the pure-Python loop."""

    if TYPE_CHECKING:  # provided by CaptureReader and its other parts
        stats: CaptureStats
        _head: bytes

        def _warn(self, offset: int, frame: int | None, kind: str, detail: str) -> None: ...
        def _decoder(self) -> Decode: ...
        def _chunks(self, initial: bytes) -> Iterator[bytes]: ...

    def _pcapng_block(self, buf: Buf, off: int, end: int, base: int, frame: int, sec: _Section,
                      decode: Decode) -> tuple[int, int, int, Packet | None]:
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
        chunks = self._chunks(self._head)
        for chunk in chunks:
            buf = extend(buf[off:], chunk, chunks, block_need(buf, off, sec)) if off < len(buf) else chunk
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

    def _parse_idb(self, buf: Buf, off: int, blen: int, endian: str, base: int) -> Iface | None:
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
