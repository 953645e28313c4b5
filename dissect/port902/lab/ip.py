"""IPv4 / IPv6 / UDP headers and the Internet checksum, built with ``struct``.

Why: the lab emits millions of packets for benchmarks and must put *valid* checksums on all of
them (tshark and scapy are used to verify), so packet building is plain ``struct`` packing with
a checksum that stays in C: the one's-complement sum of 16-bit words equals the packed integer
modulo 0xFFFF, because 2**16 ≡ 1 (mod 0xFFFF) (RFC 1071).
"""

from __future__ import annotations

import ipaddress
import struct

PROTO_TCP = 6
PROTO_UDP = 17
_V4 = struct.Struct("!BBHHHBBH4s4s")
_V6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")


def ones_sum(*parts: bytes) -> int:
    """Sum of the parts' 16-bit words modulo 0xFFFF (all parts but the last must be even-sized)."""
    total = 0
    for part in parts:
        if len(part) & 1:
            part += b"\0"
        total += int.from_bytes(part, "big")
    return total


def fold(total: int) -> int:
    """Finish a ``ones_sum``: the checksum field value (never 0xFFFF for non-zero input)."""
    if total == 0:
        return 0xFFFF
    rest = total % 0xFFFF
    return 0xFFFF - rest if rest else 0


def checksum(data: bytes) -> int:
    """Internet checksum of ``data``."""
    return fold(ones_sum(data))


def pack_address(text: str) -> bytes:
    """Address text to its 4- or 16-byte network form."""
    return ipaddress.ip_address(text).packed


def pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    """The TCP/UDP checksum pseudo-header for IPv4 (12 bytes) or IPv6 (40 bytes)."""
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


def ip_header(src: bytes, dst: bytes, proto: int, payload_len: int, ident: int = 0, ttl: int = 64,
              flow_label: int = 0) -> bytes:
    """IPv4 header (DF set, no options) or IPv6 header, chosen by the address size."""
    if len(src) == 4:
        header = _V4.pack(0x45, 0, 20 + payload_len, ident & 0xFFFF, 0x4000, ttl, proto, 0, src, dst)
        return header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return _V6.pack(0x60000000 | (flow_label & 0xFFFFF), payload_len, proto, ttl, src, dst)


def udp_packet(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes, ident: int = 0, ttl: int = 64) -> bytes:
    """A complete IPv4/IPv6 UDP datagram with a valid checksum."""
    length = 8 + len(payload)
    header = _UDP.pack(sport, dport, length, 0)
    value = fold(ones_sum(pseudo_header(src, dst, PROTO_UDP, length), header, payload))
    header = _UDP.pack(sport, dport, length, value)
    return ip_header(src, dst, PROTO_UDP, length, ident, ttl) + header + payload
