"""Template-built TCP and UDP frames for multi-million-packet benchmark captures.

Job: ``tcp.TcpConversation`` models every connection in full (timing, ACK policy, loss,
checksums) at tens of microseconds per packet; the benchmark captures of
``scripts/gen_bulk_capture.py`` (1-5 million packets) need about one. ``tcp_path`` precomputes
what never changes in one connection's frames, per direction: the link header
(``links.ethernet_header``, optionally 802.1Q-tagged), the IPv4 header (``ip.ip_header``: DF,
TTL 64) or IPv6 header, the ports and the window. ``tcp_frame`` is then one ``struct.pack``
and two concatenations; the caller keeps the sequence numbers. TCP and IPv4 header checksums
stay zero, as a capture taken on a host with checksum offload shows them (RFC 793 fields
otherwise exact: seq/ack, data offset, flags). ``udp_frame`` builds complete datagrams with
checksums (``ip.udp_packet``; over IPv6 the UDP checksum is mandatory, RFC 8200 §8.1). Frames go
to a file through ``pcapwriter.CaptureWriter.write_frame``.
"""

from __future__ import annotations

import struct

from .ip import PROTO_TCP, ip_header, udp_packet
from .links import ETHERTYPE_IPV4, ETHERTYPE_IPV6, ethernet_header

# MSS 1460, NOP + window scale 7, NOP NOP + SACK permitted: 12 bytes -> a 32-byte TCP header
SYN_OPTS = bytes.fromhex("020405b4" "01030307" "01010402")
M32 = 0xFFFFFFFF
_P4 = struct.Struct("!H20sIIH")  # IPv4 total length | id..dst + ports | seq ack | data offset + flags
_P6 = struct.Struct("!H38sIIH")  # IPv6 payload length | next header..dst + ports | seq ack | offset + flags


def tcp_path(cip: bytes, sip: bytes, cport: int, sport: int, cmac: bytes, smac: bytes, vlan: int = 0,
             cwin: int = 502, swin: int = 509) -> tuple:
    """The fixed parts of one TCP connection's frames: ``(length base, client side, server side)``.

    Addresses are packed (4 or 16 bytes); ``vlan`` 0 means untagged; windows are the raw
    16-bit field values (scaled by the SYN's window-scale option).
    """
    v6 = len(cip) == 16
    ethertype = ETHERTYPE_IPV6 if v6 else ETHERTYPE_IPV4
    sides = []
    for src, dst, sp, dp, src_mac, dst_mac, win in ((cip, sip, cport, sport, cmac, smac, cwin),
                                                    (sip, cip, sport, cport, smac, cmac, swin)):
        eth = ethernet_header(dst_mac, src_mac, ethertype, vlan or None)
        header = ip_header(src, dst, PROTO_TCP, 0)
        ports = struct.pack("!HH", sp, dp)
        if v6:      # version/flow label | payload length | next header, hop limit, addresses
            pre, mid, pack = eth + header[:4], header[6:] + ports, _P6.pack
        else:       # version/IHL, TOS | total length | id, DF, TTL, protocol, checksum 0, addresses
            pre, mid, pack = eth + header[:2], header[4:10] + b"\0\0" + header[12:] + ports, _P4.pack
        sides.append((pre, pack, mid, struct.pack("!HHH", win, 0, 0)))
    return (20 if v6 else 40, sides[0], sides[1])


def tcp_frame(path: tuple, d: int, seq: int, ack: int, offflags: int, payload: bytes) -> bytes:
    """One frame of ``path`` from side ``d`` (0 client, 1 server); ``offflags`` is the 16-bit
    data-offset-and-flags word (``0x5018`` = 20-byte header, PSH+ACK); TCP options, if any,
    lead ``payload``."""
    pre, pack, mid, tail = path[1 + d]
    return pre + pack(path[0] + len(payload), mid, seq & M32, ack & M32, offflags) + tail + payload


def udp_frame(src: bytes, dst: bytes, sport: int, dport: int, smac: bytes, dmac: bytes, payload: bytes,
              vlan: int = 0) -> bytes:
    """A complete Ethernet frame carrying one UDP datagram (IPv4 or IPv6, checksums computed)."""
    ethertype = ETHERTYPE_IPV6 if len(src) == 16 else ETHERTYPE_IPV4
    return ethernet_header(dmac, smac, ethertype, vlan or None) + udp_packet(src, dst, sport, dport, payload)
