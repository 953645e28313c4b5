"""``CaptureReader``: open a capture (plain, gzip, memory-mapped), pick its format and engine, stream packets.
"""

from __future__ import annotations

import gzip
import mmap
import os
import struct
import zlib
from typing import BinaryIO, Callable, Iterator

from ..errors import CaptureError
from . import native
from .decode import _LinkDecoder
from .engine import _FastScanner
from .formats import (
    _LINK_LAYOUT,
    CHUNK_SIZE,
    LINKTYPES,
    MAX_RECORD,
    PCAP_MAGIC,
    PCAPNG_SHB,
)
from .native import ENGINES, default_engine
from .packet import CaptureStats, CaptureWarning, Packet, Selection
from .pcapng import _PcapngReader
from .source import extend, read_head, open_source, source_name


def _not_a_capture(path: str, head: bytes, packed: bool, size: int) -> str:
    """Say what was found instead of a capture, in words."""
    if not head:
        if packed:
            return f"{path}: gzip-compressed, but it holds nothing (0 bytes once decompressed)"
        return f"{path}: the file is empty (0 bytes), not a capture"
    what = "gzip-compressed, but what it holds is not" if packed else "not"
    text = head[:16]
    if text and all(32 <= b < 127 or b in (9, 10, 13) for b in text):
        shown = "text " + repr(text.decode("ascii"))
    else:
        shown = "bytes " + head[:4].hex()
    return f"{path}: {what} a pcap or pcapng capture (it starts with {shown})"


class CaptureReader(_LinkDecoder, _PcapngReader, _FastScanner):
    """Stream a capture file and yield the :class:`Packet` s a :class:`Selection` keeps.

    ``progress`` (optional) is called with the number of raw file bytes consumed so far,
    once per chunk, so a caller can drive a progress bar without touching the hot loop.

    ``engine`` picks the per-record filter: ``"c"`` (the ``_fastscan`` extension),
    ``"python"``, or None for :func:`default_engine`.  ``use_mmap`` (C engine, plain files
    only; default on) maps the file instead of reading it in ``chunk_size`` pieces.
    """

    _damage: str | None  # why a gzip stream ended early (set by _chunks)

    def __init__(
        self,
        path: str | os.PathLike[str] | BinaryIO,
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
        elif engine == "c" and native._fastscan is None:
            raise RuntimeError("the C engine (dissect.port902.io._fastscan) is not built (no compiler when it was installed?)")
        self.engine = engine
        self.use_mmap = engine == "c" and use_mmap is not False
        self._mm: mmap.mmap | None = None
        self._map_shrank: int | None = None
        self.path = source_name(path)  # "-" is standard input; an open stream is read as a pipe
        self.selection = selection or Selection()
        self.progress = progress
        self.chunk_size = chunk_size
        self.stats = CaptureStats(path=self.path)
        self._stream, self._raw, size = open_source(path)
        self.seekable = size is not None  # False: a pipe or FIFO (no mmap; its size is known at its end)
        self.stats.size_bytes = size or 0
        packed = self._stream is not self._raw
        try:
            head = read_head(self._stream, 24)
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            self.close()
            if packed:
                raise CaptureError(f"{self.path}: gzip-compressed, but the compressed data is damaged before "
                                   f"any capture data could be read ({exc})") from exc
            raise CaptureError(f"{self.path}: unreadable ({exc})") from exc
        self._head = head
        self._decoded = len(head)  # bytes of the (decompressed) capture stream read so far
        magic_le = struct.unpack_from("<I", head)[0] if len(head) >= 4 else None
        if magic_le in PCAP_MAGIC:
            self.stats.format = "pcap"
        elif magic_le == PCAPNG_SHB:
            self.stats.format = "pcapng"
        else:
            self.close()
            raise CaptureError(_not_a_capture(self.path, head, packed, self.stats.size_bytes))

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
            except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
                self._damage = str(exc)
                break
            if not part:
                break
            parts.append(part)
            got += len(part)
        self._decoded += got
        return b"".join(parts)

    def _chunks(self, initial: bytes) -> Iterator[bytes]:
        """Yield raw chunks; the first one starts with the bytes already read."""
        self._damage = None
        self._unzipped = len(initial)
        chunk = initial + self._read_chunk()
        while chunk:
            yield chunk
            if self.progress is not None:
                self.progress(self._raw.tell())
            chunk = self._read_chunk()
        if self._damage is not None:
            self._warn(self._decoded, None, "truncated_file",
                       f"the gzip stream is damaged or cut short after {self._decoded} decompressed bytes "
                       f"(byte {self._raw.tell()} of {self._size_text()} in the compressed file): "
                       f"{self._damage}")

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
            if not self.seekable:  # a stream's size is what it delivered
                self.stats.size_bytes = self._raw.tell()
            if self.progress is not None:
                self.progress(self.stats.size_bytes)

    def _size_text(self) -> str:
        return str(self.stats.size_bytes) if self.seekable else "a stream of unknown size"

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
        chunks = self._chunks(b"")
        for chunk in chunks:
            if off < len(buf):  # a record cut by the chunk's end: join what it still needs at once
                need = 16 + rec_unpack(buf, off)[2] if len(buf) - off >= 16 else 0
                buf = extend(buf[off:], chunk, chunks, min(need, limit + 16))
            else:
                buf = chunk
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


    def _release_map(self) -> None:
        mm, self._mm = self._mm, None
        if mm is not None:
            mm.close()



def read_packets(path: str | os.PathLike[str], selection: Selection | None = None) -> Iterator[Packet]:
    """Convenience generator over a capture's packets of interest."""
    with CaptureReader(path, selection) as reader:
        yield from reader


