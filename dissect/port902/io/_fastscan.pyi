"""Type stub of the C extension ``_fastscan`` (source: ``_fastscan.c``; its header comment is the reference).

The one declaration of the extension's Python API: ``io/native.py`` only decides whether the build
is there and current (``API_VERSION``, the greetings), and the engine (``engine.py``, ``packet.py``)
imports the module itself, typed by this stub.

Both scanners return ``(offset, frame, reason, hits, next_offsets)``: ``hits`` holds a finished
``Packet`` for a plain TCP/UDP packet and an ``Entry`` for every other kept record; ``next_offsets``
holds one native int64 per hit, the offset of the record after it.
"""

from typing_extensions import Buffer

from .packet import Packet

API_VERSION: int
STOP_NEED_MORE: int
STOP_BUDGET: int
STOP_FULL: int
STOP_SLOW: int
STOP_FAULT: int
F_ICMP: int
F_GREET: int
F_UDP: int
F_DECODE: int
IFACE_NONE: int
CONTROL_TCP_FLAGS: int
CONTROL_FIRST_BYTES: bytes
GREETING: bytes
RFB_GREETING: bytes

# (rec_off, next_off, frame, p, incl, orig, l3, l4, ver, proto, ts_a, ts_b, ifid, greeting port or -1)
Entry = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int, int]
ScanResult = tuple[int, int, int, list[Packet | Entry], bytes]

def scan_pcap(
    buf: Buffer,
    off: int,
    big_endian: bool,
    limit: int,
    etoff: int,
    l3off: int,
    frame: int,
    tcp_map: bytearray,
    ctl_map: Buffer,
    udp_map: Buffer,
    flags: int,
    max_bytes: int,
    max_selected: int,
    packet_type: type[Packet],
    tsinfo: tuple[int, int],
    /,
) -> ScanResult: ...
def scan_pcapng(
    buf: Buffer,
    off: int,
    big_endian: bool,
    ifaces: Buffer,
    frame: int,
    tcp_map: bytearray,
    ctl_map: Buffer,
    udp_map: Buffer,
    flags: int,
    max_bytes: int,
    max_selected: int,
    packet_type: type[Packet],
    tsinfo: list[tuple[int, int] | None],
    /,
) -> ScanResult: ...
