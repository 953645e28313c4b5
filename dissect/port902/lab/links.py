"""Link-layer framing of IP packets for the link types a capture file may declare.

Why: a port-902 dissector has to peel whatever link layer the capture was taken on (Ethernet
from a span port, 802.1Q / QinQ trunks, Linux "any" cooked captures, raw IP from a tunnel, BSD
loopback). The lab produces each of them from the same IP packets so the capture front end can
be tested against all of them. Numbers are the tcpdump.org LINKTYPE_* values.

A framer is a callable ``ip_packet -> header bytes``; headers that depend on the packet's
addresses are cached per address pair so framing stays cheap in bulk.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Callable, Mapping

LINKTYPES = {
    "ethernet": 1,
    "vlan": 1,
    "qinq": 1,
    "sll": 113,
    "sll2": 276,
    "raw": 101,
    "null": 0,
    "loop": 108,
}

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_8021Q = 0x8100
ETHERTYPE_8021AD = 0x88A8
ARPHRD_ETHER = 1
SLL_HOST = 0          # packet addressed to the capturing host
SLL_OUTGOING = 4      # packet sent by the capturing host
AF_INET = 2
AF_INET6_BSD = 24     # NetBSD/OpenBSD value; Wireshark also accepts 28 (FreeBSD) and 30 (Darwin)

Framer = Callable[[bytes], bytes]


def _addresses(ip_packet: bytes) -> tuple[bytes, bytes, int]:
    """Source and destination address bytes and the ethertype of an IPv4/IPv6 packet."""
    if ip_packet[0] >> 4 == 6:
        return ip_packet[8:24], ip_packet[24:40], ETHERTYPE_IPV6
    return ip_packet[12:16], ip_packet[16:20], ETHERTYPE_IPV4


def default_mac(address: bytes) -> bytes:
    """A locally administered MAC derived from an IP address (stable, readable in hex dumps)."""
    return b"\x02\x00" + address[-4:]


def ethernet_header(dst_mac: bytes, src_mac: bytes, ethertype: int, vlan: int | None = None) -> bytes:
    """An Ethernet II header; with ``vlan``, an 802.1Q tag (priority 0) before the ethertype."""
    if vlan is None:
        return dst_mac + src_mac + struct.pack("!H", ethertype)
    return dst_mac + src_mac + struct.pack("!HHH", ETHERTYPE_8021Q, vlan & 0xFFF, ethertype)


def _mac_lookup(macs: Mapping[str, str] | None) -> Callable[[bytes], bytes]:
    table = {
        ipaddress.ip_address(ip).packed: bytes.fromhex(mac.replace(":", "").replace("-", ""))
        for ip, mac in (macs or {}).items()
    }
    return lambda address: table.get(address) or default_mac(address)


class _CachedFramer:
    """Framer whose header depends only on (source, destination, ethertype)."""

    __slots__ = ("_cache", "_build")

    def __init__(self, build: Callable[[bytes, bytes, int], bytes]):
        self._cache: dict[bytes, bytes] = {}
        self._build = build

    def __call__(self, ip_packet: bytes) -> bytes:
        key = ip_packet[8:40] if ip_packet[0] >> 4 == 6 else ip_packet[12:20]
        header = self._cache.get(key)
        if header is None:
            header = self._build(*_addresses(ip_packet))
            self._cache[key] = header
        return header


def make_framer(
    link: str,
    byteorder: str = "<",
    *,
    macs: Mapping[str, str] | None = None,
    vlan: int = 100,
    outer_vlan: int = 200,
    local: tuple[str, ...] = (),
    ifindex: int = 1,
) -> Framer:
    """Return the framer for ``link``.

    ``macs`` maps IP text to MAC text (default: derived from the IP); ``vlan``/``outer_vlan`` are
    the 802.1Q / 802.1ad ids; ``local`` lists the capturing host's addresses, whose packets the
    cooked link types mark as outgoing; ``byteorder`` matters for ``null`` only (host order).
    """
    if link not in LINKTYPES:
        raise ValueError(f"unknown link type {link!r}; choose from {sorted(LINKTYPES)}")
    mac = _mac_lookup(macs)
    local_set = {ipaddress.ip_address(a).packed for a in local}

    def ethernet(src: bytes, dst: bytes, ethertype: int) -> bytes:
        return ethernet_header(mac(dst), mac(src), ethertype)

    def dot1q(src: bytes, dst: bytes, ethertype: int) -> bytes:
        return ethernet_header(mac(dst), mac(src), ethertype, vlan)

    def qinq(src: bytes, dst: bytes, ethertype: int) -> bytes:
        return mac(dst) + mac(src) + struct.pack(
            "!HHHHH", ETHERTYPE_8021AD, outer_vlan & 0xFFF, ETHERTYPE_8021Q, vlan & 0xFFF, ethertype
        )

    def sll(src: bytes, dst: bytes, ethertype: int) -> bytes:
        kind = SLL_OUTGOING if src in local_set else SLL_HOST
        return struct.pack("!HHH8sH", kind, ARPHRD_ETHER, 6, mac(src), ethertype)

    def sll2(src: bytes, dst: bytes, ethertype: int) -> bytes:
        kind = SLL_OUTGOING if src in local_set else SLL_HOST
        return struct.pack("!HHIHBB8s", ethertype, 0, ifindex, ARPHRD_ETHER, kind, 6, mac(src))

    if link == "raw":
        return lambda ip_packet: b""
    if link in ("null", "loop"):
        order = byteorder if link == "null" else ">"
        v4 = struct.pack(order + "I", AF_INET)
        v6 = struct.pack(order + "I", AF_INET6_BSD)
        return lambda ip_packet: v6 if ip_packet[0] >> 4 == 6 else v4
    builders = {"ethernet": ethernet, "vlan": dot1q, "qinq": qinq, "sll": sll, "sll2": sll2}
    return _CachedFramer(builders[link])
