"""What the reader hands on: ``Packet``, ``CaptureWarning``, the ``Selection`` it keeps and ``CaptureStats``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, NamedTuple, TypeAlias

from . import native
from .formats import DEFAULT_TCP_PORTS

if TYPE_CHECKING:
    import gzip
    import io
    import mmap


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


Buf: TypeAlias = "bytes | mmap.mmap"  # what the decoders read records from: a chunk buffer or the mapped file
Stream: TypeAlias = "gzip.GzipFile | io.BufferedReader"  # an open capture: the file, or a gzip stream over it

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
    malformed: int = 0  # selected packets dropped because their headers contradict themselves


def _port_flags(ports: Iterable[int]) -> bytearray:
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

    __slots__ = ("tcp_ports", "ctl_ports", "udp_ports", "side_ports", "icmp", "greet", "snap_tcp", "snap_ctl",
                 "snap_udp", "tcp", "ctl", "udp", "flags")
    snap_tcp: set[int]  # the port sets as the flag tables were last built from them
    snap_ctl: set[int]
    snap_udp: set[int]

    def __init__(self, sel: Selection) -> None:
        self.tcp_ports, self.ctl_ports, self.udp_ports = sel.tcp_ports, sel.tcp_control_ports, sel.udp_ports
        self.side_ports = sel.observer_tcp_ports
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
        native.loaded()  # only the C engine builds port maps
        from . import _fastscan as fs  # typed by its stub, _fastscan.pyi

        self.flags = (fs.F_ICMP if self.icmp else 0) | (fs.F_GREET if self.greet else 0) | (fs.F_UDP if self.udp_ports else 0)

    def greeting(self, port: int) -> None:
        """The scanner saw an authd greeting from ``port`` (and already set its flag)."""
        self.tcp_ports.add(port)
        self.snap_tcp.add(port)

    def side(self, port: int) -> None:
        """The greeting from ``port`` was a VNC server's: route the port to the side analyses."""
        self.side_ports.add(port)

    def changed(self) -> bool:
        return self.tcp_ports != self.snap_tcp or self.ctl_ports != self.snap_ctl or self.udp_ports != self.snap_udp
