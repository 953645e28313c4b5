"""Several capture files of one sensor read as ONE packet stream (stage 1, io; issue 11).

A ring buffer (``tcpdump -G``, ``dumpcap -b``, ``editcap -c/-i``) cuts one sensor's traffic
into files.  :class:`CaptureChain` orders them by the timestamp of their first packet (never
by name: ``a.pcap.10`` sorts before ``a.pcap.9``) and :class:`ChainReader` hands their packets
on as one stream whose frame numbers continue from file to file, so everything above (the
connection table, idle expiry on capture time, hand-offs, the diagnosis) sees exactly what it
would see in the merged file.  Per-file provenance is kept: ``ChainReader.files`` holds each
file's own :class:`CaptureStats` and frame offset, and :meth:`ChainReader.sources` maps a
session's global frame span back to (file, first local frame, last local frame).

A file that cannot be read is recorded in ``ChainReader.errors`` and skipped; the stream goes
on with the next file (the analysis makes it an ``unreadable_capture`` weird row).  Packets
that are yielded unchanged for the first file cost nothing extra; later files renumber only
the packets the selection kept (one tuple each), never the uninteresting ones.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from ..errors import CaptureError
from .formats import GZIP_MAGIC, PCAP_MAGIC, PCAPNG_BYTE_ORDER_MAGIC, PCAPNG_SHB
from .packet import CaptureStats, Packet, Selection, _tuple_new
from .reader import CaptureReader

PEEK_BYTES = 1 << 20  # how far into a file the first packet's timestamp is looked for


def first_timestamp(path: str | os.PathLike[str]) -> float | None:
    """Timestamp of the first packet record of a pcap / pcapng (plain or gzip), or None when
    the file is no capture, holds no packet in its first ``PEEK_BYTES`` or cannot be opened."""
    try:
        with open(path, "rb") as raw:
            if raw.read(2) == GZIP_MAGIC:
                raw.seek(0)
                try:
                    head = gzip.GzipFile(fileobj=raw).read(PEEK_BYTES)
                except (OSError, EOFError, zlib.error):
                    return None
            else:
                raw.seek(0)
                head = raw.read(PEEK_BYTES)
    except OSError:
        return None
    if len(head) < 24:
        return None
    magic = struct.unpack_from("<I", head)[0]
    if magic in PCAP_MAGIC:
        endian, ticks = PCAP_MAGIC[magic]
        if len(head) < 40:
            return None
        ts_s, ts_f = struct.unpack_from(endian + "II", head, 24)
        return ts_s + ts_f / ticks
    if magic != PCAPNG_SHB:
        return None
    return _pcapng_first(head)


def _pcapng_first(buf: bytes) -> float | None:
    """First EPB/SPB-less timestamp of a pcapng: walk SHB, IDBs (if_tsresol, if_tsoffset), EPB/OPB."""
    off, endian = 0, "<"
    ifaces: list[tuple[int, int]] = []
    while off + 12 <= len(buf):
        btype = struct.unpack_from(endian + "I", buf, off)[0]
        if btype == PCAPNG_SHB:
            bom = struct.unpack_from("<I", buf, off + 8)[0]
            endian = "<" if bom == PCAPNG_BYTE_ORDER_MAGIC else ">"
            ifaces = []
        blen = struct.unpack_from(endian + "I", buf, off + 4)[0]
        if blen < 12 or off + blen > len(buf):
            return None
        if btype == 1:  # IDB
            divisor, tsoff = 1_000_000, 0
            p, stop = off + 16, off + blen - 4
            while p + 4 <= stop:
                code, olen = struct.unpack_from(endian + "HH", buf, p)
                if code == 0:
                    break
                val = buf[p + 4:p + 4 + olen]
                if code == 9 and olen >= 1:
                    r = val[0]
                    divisor = 2 ** (r & 0x7F) if r & 0x80 else 10**r
                elif code == 14 and len(val) >= 8:
                    tsoff = struct.unpack_from(endian + "q", val)[0]
                p += 4 + olen + (-olen % 4)
            ifaces.append((divisor, tsoff))
        elif btype in (6, 2) and blen >= 28:  # EPB, obsolete packet block
            if btype == 6:
                iface, hi, lo = struct.unpack_from(endian + "III", buf, off + 8)
            else:
                iface, _drops, hi, lo = struct.unpack_from(endian + "HHII", buf, off + 8)
            divisor, tsoff = ifaces[iface] if iface < len(ifaces) else (1_000_000, 0)
            return ((hi << 32) | lo) / divisor + tsoff
        off += blen
    return None


@dataclass
class FileSpan:
    """One file of a chain as it was read: its stats and where its frames start in the stream."""

    path: str
    offset: int  # global frame number = offset + the file's own frame number
    stats: CaptureStats


@dataclass
class ArchiveStats(CaptureStats):
    """CaptureStats of a whole chain (sums, earliest / latest timestamp) with each file's own."""

    files: list[FileSpan] = field(default_factory=list)


@dataclass
class CaptureChain:
    """The files of one sensor, in first-timestamp order (unreadable ones last, by name)."""

    name: str
    paths: list[str]
    first_ts: list[float | None] = field(default_factory=list)
    frame_base: int = 0  # packets of the sensor's earlier files not read again (an incremental run)

    @classmethod
    def of(cls, name: str, paths: Iterable[str | os.PathLike[str]]) -> "CaptureChain":
        keyed = [(first_timestamp(p), os.fspath(p)) for p in paths]
        keyed.sort(key=lambda x: (x[0] is None, x[0] if x[0] is not None else 0.0, x[1]))
        return cls(name, [p for _ts, p in keyed], [ts for ts, _p in keyed])

    def __fspath__(self) -> str:  # what a caller that wants "a path" sees: the sensor's name
        return self.name

    def open_reader(self, selection: Selection | None = None,
                    progress: Callable[[int], None] | None = None) -> "ChainReader":
        return ChainReader(self, selection, progress)

    @property
    def size_bytes(self) -> int:
        total = 0
        for p in self.paths:
            try:
                total += os.path.getsize(p)
            except OSError:
                pass
        return total


class ChainReader:
    """Iterate the packets of every file of a chain as one capture (frame numbers continue)."""

    def __init__(self, chain: CaptureChain, selection: Selection | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
        self.chain = chain
        self.path = chain.name
        self.selection = selection or Selection()  # shared by all files: widened once, kept
        self.progress = progress
        self.stats = ArchiveStats(path=chain.name)
        self.files = self.stats.files
        self.errors: list[tuple[str, str]] = []  # (path, one-line reason) for files skipped
        self.overlaps: list[tuple[str, str]] = []  # (earlier file, later file) whose times overlap

    def __enter__(self) -> "ChainReader":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __iter__(self) -> Iterator[Packet]:
        offset = self.chain.frame_base
        done = 0  # bytes of the files finished before the current one
        total = self.stats
        formats: list[str] = []
        prev_last: float | None = None
        prev_path = ""
        progress = self.progress
        for path in self.chain.paths:
            report = None
            if progress is not None:
                def report(n: int, _base=done, _progress=progress) -> None:
                    _progress(_base + n)

            try:
                reader = CaptureReader(path, self.selection, progress=report)
            except CaptureError as exc:
                self.errors.append((path, str(exc)))
                done += _size(path)
                continue
            try:
                with reader:
                    if offset == 0:
                        yield from reader
                    else:
                        for pkt in reader:
                            yield _tuple_new(Packet, (pkt[0] + offset,) + pkt[1:])
            except CaptureError as exc:  # a header found broken once reading began
                self.errors.append((path, str(exc)))
            st = reader.stats
            self.files.append(FileSpan(path, offset, st))
            offset += st.packets
            done += st.size_bytes
            total.size_bytes += st.size_bytes
            total.packets += st.packets
            total.selected += st.selected
            total.malformed += st.malformed
            total.warnings.extend(st.warnings)
            if st.format and st.format not in formats:
                formats.append(st.format)
            for lt in st.link_types:
                if lt not in total.link_types:
                    total.link_types.append(lt)
            first = self.chain.first_ts[self.chain.paths.index(path)] if len(self.chain.first_ts) == len(self.chain.paths) else st.first_ts
            if prev_last is not None and first is not None and first < prev_last:
                self.overlaps.append((prev_path, path))
            if st.first_ts is not None and (total.first_ts is None or st.first_ts < total.first_ts):
                total.first_ts = st.first_ts
            if st.last_ts is not None and (total.last_ts is None or st.last_ts > total.last_ts):
                total.last_ts = st.last_ts
            last = st.last_ts if st.last_ts is not None else first
            if last is not None:
                prev_last, prev_path = last, path
        total.format = "+".join(formats)

    def sources(self, first_frame: int, last_frame: int) -> list[dict]:
        """The files a global frame span crosses, each with the span's frames in its own numbering."""
        out = []
        for f in self.files:
            lo, hi = f.offset + 1, f.offset + f.stats.packets
            if hi < first_frame or lo > last_frame or hi < lo:
                continue
            out.append({"file": f.path, "first_frame": max(first_frame, lo) - f.offset,
                        "last_frame": min(last_frame, hi) - f.offset})
        return out


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
