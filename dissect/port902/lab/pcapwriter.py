"""Writes pcap and pcapng files from IP packets, fast enough for multi-million-packet benchmarks.

Why: the capture front end of the dissector must read every container variant it will meet
(pcap in either byte order with µs or ns timestamps, pcapng with several interfaces and the
three packet block kinds, gzip-compressed files, snaplen-truncated records). Generating them here
keeps test captures small, reproducible and documented.

Formats (tcpdump.org / IETF draft-ietf-opsawg-pcapng):

* pcap: 24-byte global header (magic a1b2c3d4 for µs, a1b23c4d for ns, v2.4, snaplen, link
  type) followed by records {ts_sec, ts_frac, incl_len, orig_len} + frame.
* pcapng: Section Header Block, one Interface Description Block per interface (``if_tsresol`` =
  9 for ns; absent means µs), then Enhanced (default), Simple or obsolete Packet Blocks.

Records are collected in a list and written in large joined chunks; headers are prebuilt
``struct.Struct`` objects, so ``write`` costs a few microseconds per packet.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
from typing import BinaryIO, Iterable

from .links import LINKTYPES, make_framer

RESOLUTIONS = {"us": 10**6, "ns": 10**9}
PCAP_MAGIC = {"us": 0xA1B2C3D4, "ns": 0xA1B23C4D}
SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 1
OPB_TYPE = 2
SPB_TYPE = 3
EPB_TYPE = 6
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
IF_NAME = 2
IF_TSRESOL = 9
SHB_USERAPPL = 4
PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")   # indexed by len % 4
FLUSH_CHUNKS = 8192


def _option(bo: str, code: int, value: bytes) -> bytes:
    return struct.pack(bo + "HH", code, len(value)) + value + PADDING[len(value) % 4]


class _Interface:
    """One capture interface: framing, link type, timestamp scale and snaplen."""

    __slots__ = ("framer", "linktype", "scale", "snaplen")

    def __init__(self, link: str, byteorder: str, ts_resolution: str, snaplen: int, link_options: dict):
        if ts_resolution not in RESOLUTIONS:
            raise ValueError(f"ts_resolution must be 'us' or 'ns', not {ts_resolution!r}")
        self.framer = make_framer(link, byteorder, **link_options)
        self.linktype = LINKTYPES[link]
        self.scale = RESOLUTIONS[ts_resolution]
        self.snaplen = snaplen


class CaptureWriter:
    """Context manager writing IP packets into a pcap or pcapng file.

    ``target`` is a path or a binary file object. ``link`` picks the link layer wrapped around
    each IP packet (see ``links.LINKTYPES``); ``link_options`` go to ``links.make_framer``
    (MACs, VLAN ids, local addresses). ``block`` selects the pcapng packet block: ``"epb"``
    (enhanced), ``"spb"`` (simple: interface 0, no timestamp) or ``"opb"`` (obsolete).
    """

    def __init__(
        self,
        target: str | os.PathLike | BinaryIO,
        fmt: str = "pcap",
        link: str = "ethernet",
        ts_resolution: str = "us",
        byteorder: str = "<",
        snaplen: int = 262144,
        compress: bool = False,
        *,
        block: str = "epb",
        link_options: dict | None = None,
        if_name: str | None = None,
        application: str = "dissect902 traffic lab",
    ):
        if fmt not in ("pcap", "pcapng"):
            raise ValueError(f"fmt must be 'pcap' or 'pcapng', not {fmt!r}")
        if byteorder not in ("<", ">"):
            raise ValueError("byteorder must be '<' or '>'")
        if block not in ("epb", "spb", "opb"):
            raise ValueError("block must be 'epb', 'spb' or 'opb'")
        self.fmt, self.byteorder, self.block = fmt, byteorder, block
        self.packets_written = 0
        self._owned: list[BinaryIO] = []
        if hasattr(target, "write"):
            raw = target
        else:
            raw = open(target, "wb")
            self._owned.append(raw)
        if compress:
            raw = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="")
            self._owned.insert(0, raw)
        self._out = raw
        self._chunks: list[bytes] = []
        self._interfaces: list[_Interface] = []
        bo = byteorder
        self._record = struct.Struct(bo + "IIII")
        self._epb = struct.Struct(bo + "IIIIIII")
        self._opb = struct.Struct(bo + "IIHHIIII")
        self._spb = struct.Struct(bo + "III")
        self._u32 = struct.Struct(bo + "I")
        if fmt == "pcapng":
            self._write_shb(application)
        self.add_interface(link, ts_resolution, snaplen, name=if_name, **(link_options or {}))

    # -- header blocks -------------------------------------------------------------------------

    def _write_shb(self, application: str) -> None:
        bo = self.byteorder
        options = _option(bo, SHB_USERAPPL, application.encode()) + _option(bo, OPT_ENDOFOPT, b"")
        total = 28 + len(options)
        body = struct.pack(bo + "IIIHHq", SHB_TYPE, total, BYTE_ORDER_MAGIC, 1, 0, -1)
        self._chunks.append(body + options + self._u32.pack(total))

    def add_interface(
        self, link: str, ts_resolution: str = "us", snaplen: int | None = None, name: str | None = None, **link_options
    ) -> int:
        """Declare a capture interface and return its id (pcapng only, except the first)."""
        if snaplen is None:
            snaplen = self._interfaces[0].snaplen if self._interfaces else 262144
        iface = _Interface(link, self.byteorder, ts_resolution, snaplen, link_options)
        bo = self.byteorder
        if self.fmt == "pcap":
            if self._interfaces:
                raise ValueError("pcap holds a single interface; use fmt='pcapng' for several")
            magic = PCAP_MAGIC[ts_resolution]
            self._chunks.append(struct.pack(bo + "IHHiIII", magic, 2, 4, 0, 0, snaplen, iface.linktype))
        else:
            options = b""
            if name:
                options += _option(bo, IF_NAME, name.encode())
            if ts_resolution == "ns":
                options += _option(bo, IF_TSRESOL, b"\x09")
            if options:
                options += _option(bo, OPT_ENDOFOPT, b"")
            total = 20 + len(options)
            self._chunks.append(
                struct.pack(bo + "IIHHI", IDB_TYPE, total, iface.linktype, 0, snaplen) + options + self._u32.pack(total)
            )
        self._interfaces.append(iface)
        return len(self._interfaces) - 1

    # -- packets ------------------------------------------------------------------------------------

    def write(self, ts: float, ip_packet: bytes, orig_len: int | None = None, interface: int = 0) -> None:
        """Frame ``ip_packet`` for the interface's link type and append one record.

        ``orig_len`` is the original length of the IP packet when ``ip_packet`` was already cut
        short; the snaplen of the interface truncates further (incl_len < orig_len).
        """
        iface = self._interfaces[interface]
        header = iface.framer(ip_packet)
        self.write_frame(ts, header + ip_packet, None if orig_len is None else orig_len + len(header), interface)

    def write_frame(self, ts: float, frame: bytes, orig_len: int | None = None, interface: int = 0) -> None:
        """Append a record for an already framed link-layer ``frame``."""
        iface = self._interfaces[interface]
        size = len(frame)
        orig = size if orig_len is None else orig_len
        if size > iface.snaplen:
            frame = frame[: iface.snaplen]
            size = iface.snaplen
        units = round(ts * iface.scale)
        chunks = self._chunks
        if self.fmt == "pcap":
            chunks.append(self._record.pack(units // iface.scale, units % iface.scale, size, orig))
            chunks.append(frame)
        elif self.block == "epb":
            total = 32 + size + (-size & 3)
            chunks.append(self._epb.pack(EPB_TYPE, total, interface, units >> 32, units & 0xFFFFFFFF, size, orig))
            chunks.append(frame)
            chunks.append(PADDING[size & 3] + self._u32.pack(total))
        elif self.block == "spb":
            if interface:
                raise ValueError("simple packet blocks always refer to interface 0")
            total = 16 + size + (-size & 3)
            chunks.append(self._spb.pack(SPB_TYPE, total, orig))
            chunks.append(frame)
            chunks.append(PADDING[size & 3] + self._u32.pack(total))
        else:
            total = 32 + size + (-size & 3)
            chunks.append(self._opb.pack(OPB_TYPE, total, interface, 0, units >> 32, units & 0xFFFFFFFF, size, orig))
            chunks.append(frame)
            chunks.append(PADDING[size & 3] + self._u32.pack(total))
        self.packets_written += 1
        if len(chunks) >= FLUSH_CHUNKS:
            self.flush()

    def write_many(self, records: Iterable[tuple[float, bytes]], interface: int = 0) -> int:
        """Write (ts, ip_packet) pairs for one interface; returns how many were written.

        The bulk path of the benchmark: the per-record work is inlined for the common formats.
        """
        iface = self._interfaces[interface]
        if self.fmt == "pcapng" and self.block != "epb":
            count = 0
            for ts, packet in records:
                self.write(ts, packet, interface=interface)
                count += 1
            return count
        framer, scale, snaplen = iface.framer, iface.scale, iface.snaplen
        chunks = self._chunks
        append = chunks.append
        pcap = self.fmt == "pcap"
        record = self._record.pack if pcap else self._epb.pack
        u32 = self._u32.pack
        count = 0
        for ts, packet in records:
            frame = framer(packet) + packet
            orig = size = len(frame)
            if size > snaplen:
                frame = frame[:snaplen]
                size = snaplen
            units = round(ts * scale)
            if pcap:
                append(record(units // scale, units % scale, size, orig))
                append(frame)
            else:
                total = 32 + size + (-size & 3)
                append(record(EPB_TYPE, total, interface, units >> 32, units & 0xFFFFFFFF, size, orig))
                append(frame)
                append(PADDING[size & 3] + u32(total))
            count += 1
            if len(chunks) >= FLUSH_CHUNKS:
                self.flush()
        self.packets_written += count
        return count

    # -- lifecycle ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Hand buffered records to the file object."""
        if self._chunks:
            self._out.write(b"".join(self._chunks))
            self._chunks.clear()

    def close(self) -> None:
        """Flush and close what this writer opened (a passed-in file object stays open)."""
        self.flush()
        for handle in self._owned:
            handle.close()
        if not self._owned and isinstance(self._out, io.IOBase):
            self._out.flush()
        self._owned = []

    def __enter__(self) -> "CaptureWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
