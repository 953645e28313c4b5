"""Driving the C capture engine (``_fastscan``, loaded by ``native``) over a buffer.

The scanner walks records in C and hands back only what a ``Selection`` keeps; everything
unusual comes back to Python, which handles it with the same code as the pure-Python engine.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
from typing import TYPE_CHECKING, Callable, Iterator, cast

from . import native
from .formats import _RFB_GREETING_LEN as _RFB_LEN
from .formats import RFB_GREETING
from .packet import Buf, CaptureStats, Packet, Selection, Stream, _PortMaps
from .source import extend
from .pcapng import _BLOCK_MORE, _BLOCK_STOP, _Section, block_need

if TYPE_CHECKING:
    import io

    from ._fastscan import Entry
    from .decode import Decode
    from .pcapng import Iface

FAST_BATCH = 4096  # selected records per call into the C scanner
MMAP_WINDOW = 32 << 20  # bytes scanned between progress reports / releases of mapped pages
MAX_SCAN = sys.maxsize  # no window: scan a chunk buffer to its end
_NEXT = struct.Struct("=q")  # the scanner's next-record offsets


class _FastScanner:
    """``CaptureReader``'s C-engine methods: record walking in ``_fastscan``, everything unusual here."""

    if TYPE_CHECKING:  # provided by CaptureReader and its other parts
        use_mmap: bool
        seekable: bool
        selection: Selection
        stats: CaptureStats
        progress: Callable[[int], None] | None
        _stream: Stream
        _raw: io.BufferedReader  # or a source.PipeSource
        _mm: mmap.mmap | None
        _map_shrank: int | None  # the mapped file's size when it was found to have shrunk
        _head: bytes

        def _warn(self, offset: int, frame: int | None, kind: str, detail: str) -> None: ...
        def _chunks(self, initial: bytes) -> Iterator[bytes]: ...
        def _release_map(self) -> None: ...
        def _pcap_header(self) -> tuple[str, int, int, tuple[int, int] | None, int]: ...
        def _decoder(self) -> Decode: ...
        def _full_decode(self, buf: Buf, p: int, end: int, l3: int, l4: int, ver: int, proto: int, incl: int,
                         orig: int, frame: int, rec_off: int, ts: float) -> Packet | None: ...
        def _pcapng_block(self, buf: Buf, off: int, end: int, base: int, frame: int, sec: _Section,
                          decode: Decode) -> tuple[int, int, int, Packet | None]: ...

    def _fast_source(self, start: int, initial: bytes) -> tuple[Buf, int, int, Iterator[bytes]]:
        """Where the C engine starts: (buffer, stream offset of its first byte, scan offset, later chunks).

        A plain file is memory-mapped whole (no copy; pages already scanned are released as the
        scan moves on, so memory stays flat); whatever the file grew by after that is read in
        chunks.  A gzip stream, or a file that cannot be mapped, is read in chunks exactly as the
        pure-Python engine reads it."""
        if self.use_mmap and self.seekable and self._stream is self._raw:
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

    def _mapped_end(self) -> int:
        """How much of the mapped file is still there: reading past a file's current end through
        its map is SIGBUS (the C scanner survives that, Python would not), so Python checks first."""
        mm = self._mm
        assert mm is not None
        try:
            return min(len(mm), os.fstat(self._raw.fileno()).st_size)
        except OSError:
            return 0

    def _shrunk(self, offset: int, frame: int, size: int | None = None) -> None:
        self.stats.packets = frame
        size = self._mapped_end() if size is None else size
        self._warn(offset, frame + 1, "truncated_file",
                   f"the file shrank to {size} bytes while it was read (rewritten or truncated by another "
                   f"program?); analysed the {frame} complete records before byte {offset}")

    def _end_warning(self, buf: Buf, base: int, off: int, frame: int, what: str, unit: str) -> None:
        """At the end of the input: the file shrank while mapped, or it ends inside a record."""
        self.stats.packets = frame
        if self._map_shrank is not None:
            self._shrunk(base + off, frame, self._map_shrank)
        elif off < len(buf):
            self._warn(base + off, frame + 1, "truncated_file",
                       f"capture ends inside a {what} ({len(buf) - off} stray bytes); analysed the {frame} "
                       f"complete {unit} before it")

    def _fast_next(self, buf: Buf, base: int, off: int, chunks: Iterator[bytes],
                   need: int = 0) -> tuple[bytes, int] | None:
        """The next buffer: the unscanned tail of this one plus the next chunk (and as many more as
        the record there needs, ``need`` bytes: see ``source.extend``); None at the end."""
        if buf is self._mm:
            end = self._mapped_end()
            if end < len(buf):  # shrank: what was mapped past its new end is gone (and SIGBUS to touch)
                self._map_shrank = end
                return None
        chunk = next(chunks, None)
        if chunk is None:
            return None
        buf = extend(buf[off:], chunk, chunks, need) if off < len(buf) else chunk
        self._release_map()
        return buf, base + off

    def _fast_pcap(self) -> Iterator[Packet]:
        endian, ticks, snaplen, layout, limit = self._pcap_header()
        rec_unpack = struct.Struct(endian + "IIII").unpack_from
        big = endian == ">"
        etoff, l3off = layout if layout is not None else (-1, 0)
        native.loaded()  # built and current, else RuntimeError
        from . import _fastscan as fs  # typed by its stub, _fastscan.pyi

        decode_flag = fs.F_DECODE if layout is not None else 0
        tsinfo = (ticks, 0)
        scan = fs.scan_pcap
        need_more, slow, fault = fs.STOP_NEED_MORE, fs.STOP_SLOW, fs.STOP_FAULT
        ports = _PortMaps(self.selection)
        tcp_ports, ctl_ports, udp_ports = ports.tcp_ports, ports.ctl_ports, ports.udp_ports
        snap_tcp, snap_ctl, snap_udp = ports.snap_tcp, ports.snap_ctl, ports.snap_udp  # updated in place
        full = self._full_decode
        stats = self.stats
        pkt: Packet | None
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
                        rec_off, nxt, frm, p, incl, orig, l3, l4, ver, proto, ts_a, ts_b, _ifid, greet = cast(
                            "Entry", item)
                        if buf is self._mm and nxt > self._mapped_end():
                            self._shrunk(base + rec_off, frm - 1)
                            return
                        if greet >= 0:
                            ports.greeting(greet)
                        ts = ts_a + ts_b / ticks + 0
                        pkt = full(buf, p, p + incl, l3, l4, ver, proto, incl, orig, frm, base + rec_off, ts)
                        if pkt is None:
                            continue
                        if greet >= 0 and pkt.payload[:_RFB_LEN] == RFB_GREETING:
                            ports.side(greet)  # a VNC server: its packets go to the VNC side analysis
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
                if reason == fault:  # the mapped file shrank under the scanner
                    self._shrunk(base + off, frame)
                    return
                if reason == slow:  # a record claiming more than the limit
                    if buf is self._mm and off + 16 > self._mapped_end():
                        self._shrunk(base + off, frame)
                        return
                    incl = rec_unpack(buf, off)[2]
                    self._warn(base + off, frame + 1, "corrupt_record",
                               f"record claims {incl} captured bytes (snaplen {snaplen}); stopping here")
                    stats.packets = frame
                    return
                if off >= window_end and buf is self._mm:
                    dropped = self._fast_window(base + off, dropped)
                    window_end = off + MMAP_WINDOW
            # (never read through the map here: past a shrunk file's end that is SIGBUS)
            need = 16 + rec_unpack(buf, off)[2] if buf is not self._mm and len(buf) - off >= 16 else 0
            nxt_buf = self._fast_next(buf, base, off, chunks, min(need, limit + 16))
            if nxt_buf is None:
                break
            (buf, base), off = nxt_buf, 0
        self._end_warning(buf, base, off, frame, "record", "records")

    def _fast_pcapng(self) -> Iterator[Packet]:
        frame = 0
        sec = _Section()  # interfaces, also in the scanner's form (iftab, tsinfo)
        decode = self._decoder()  # for the rare packet block handled here
        native.loaded()  # built and current, else RuntimeError
        from . import _fastscan as fs  # typed by its stub, _fastscan.pyi

        scan = fs.scan_pcapng
        need_more, slow, fault = fs.STOP_NEED_MORE, fs.STOP_SLOW, fs.STOP_FAULT
        ports = _PortMaps(self.selection)
        tcp_ports, ctl_ports, udp_ports = ports.tcp_ports, ports.ctl_ports, ports.udp_ports
        snap_tcp, snap_ctl, snap_udp = ports.snap_tcp, ports.snap_ctl, ports.snap_udp  # updated in place
        full = self._full_decode
        stats = self.stats
        pkt: Packet | None
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
                        rec_off, nxt, frm, p, incl, orig, l3, l4, ver, proto, ts_a, ts_b, ifid, greet = cast(
                            "Entry", item)
                        if buf is self._mm and nxt > self._mapped_end():
                            self._shrunk(base + rec_off, frm - 1)
                            return
                        if greet >= 0:
                            ports.greeting(greet)
                        _layout, div, tsoff = cast("Iface", sec.ifaces[ifid])  # the scanner skips unsupported ones
                        ts = ts_a + ts_b / div + tsoff
                        pkt = full(buf, p, p + incl, l3, l4, ver, proto, incl, orig, frm, base + rec_off, ts)
                        if pkt is None:
                            continue
                        if greet >= 0 and pkt.payload[:_RFB_LEN] == RFB_GREETING:
                            ports.side(greet)  # a VNC server: its packets go to the VNC side analysis
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
                if reason == fault:  # the mapped file shrank under the scanner
                    self._shrunk(base + off, frame)
                    return
                if reason != slow:
                    if off >= window_end and buf is self._mm:
                        dropped = self._fast_window(base + off, dropped)
                        window_end = off + MMAP_WINDOW
                    continue
                # one block the scanner leaves to Python, handled as the pure engine handles it
                if buf is self._mm:
                    end = self._mapped_end()  # a block past it: need more, then a truncated_file warning
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
            nxt_buf = self._fast_next(buf, base, off, chunks, 0 if buf is self._mm else block_need(buf, off, sec))
            if nxt_buf is None:
                break
            (buf, base), off = nxt_buf, 0
        self._end_warning(buf, base, off, frame, "block", "packets")

    # -- per-packet decode (the hot path) -----------------------------------------------



def _after(hits: list[Packet | Entry], item: object, nexts: bytes) -> int:
    """Offset of the record after ``item`` (one of the scanner's ``hits``)."""
    i = next(i for i, x in enumerate(hits) if x is item)
    return _NEXT.unpack_from(nexts, 8 * i)[0]


