"""Link-layer and IP decoding of one record down to the transport header (the per-packet hot path).

Ethernet with 802.1Q/QinQ, Linux SLL/SLL2, raw IPv4/IPv6, BSD loopback; IPv6 extension headers
are skipped up to a fragment header (RFC 8200 §4).

The C scanner (``_fastscan.c`` ``decide``/``make_packet``) makes the same decision; the record
walk is written twice on purpose: this one is the engine when no compiler was there at install
(and the reference the C one is a transcription of), and neither can call the other per record
without losing what the C one is for.  What the walk decides from is defined once: the port sets
(``Selection``, handed to C as flag tables), the greetings and what is kept of a control port
(``formats``; ``native`` refuses a C build whose copies differ).  The tests that keep the two
walks equal: ``tests/test_fastscan.py`` -- every sample packet by packet
(``test_samples_same_packets``), every link type and format (``test_format_link_matrix``),
truncations and corrupt words at every offset, and fuzzed bodies, headers and scanner arguments
(``test_fuzz_*``) -- and every sample's JSON with both engines (``tests/test_samples.py``).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Protocol

from .formats import (
    CONTROL_FIRST_BYTES,
    CONTROL_TCP_FLAGS,
    _GREETING_LEN,
    _IPV4_LEN,
    _RFB_GREETING_LEN,
    _PORTS,
    _TCP,
    _U16,
    _UDP,
    AUTHD_GREETING,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV6_EXTENSION_HEADERS,
    RFB_GREETING,
    VLAN_TAGS,
)
from .packet import Buf, CaptureStats, Packet, Selection, _tuple_new


class Decode(Protocol):
    """The per-packet function ``_LinkDecoder._decoder`` builds: one record in, its Packet (if kept) out."""

    def __call__(self, buf: Buf, p: int, incl: int, orig: int, layout: tuple[int, int], frame: int, ts_a: int,
                 ts_b: int, div: int, rec_off: int, tsoff: int = 0) -> Packet | None: ...

MAX_MALFORMED_WARNINGS = 100  # per capture; the rest are counted in CaptureStats.malformed


class _LinkDecoder:
    """``CaptureReader``'s decoding methods: a per-packet closure with everything bound as locals."""

    if TYPE_CHECKING:  # provided by CaptureReader
        selection: Selection
        stats: CaptureStats

        def _warn(self, offset: int, frame: int | None, kind: str, detail: str) -> None: ...

    def _decoder(self) -> Decode:
        """Build the per-packet function with everything it needs bound as locals."""
        sel = self.selection
        tcp_ports = sel.tcp_ports
        ctl_ports = sel.tcp_control_ports
        side_ports = sel.observer_tcp_ports
        udp_ports = sel.udp_ports
        icmp = sel.icmp_errors
        greet = sel.detect_greeting
        u16 = _U16.unpack_from
        ports = _PORTS.unpack_from
        full = self._full_decode
        stats = self.stats
        ctl_flags = CONTROL_TCP_FLAGS
        ctl_a, ctl_b = CONTROL_FIRST_BYTES

        def decode(buf: Buf, p: int, incl: int, orig: int, layout: tuple[int, int], frame: int, ts_a: int, ts_b: int,
                   div: int, rec_off: int, tsoff: int = 0) -> Packet | None:
            etoff, l3off = layout
            end = p + incl
            try:
                if etoff >= 0:
                    et = u16(buf, p + etoff)[0]
                    l3 = p + l3off
                    while et in VLAN_TAGS:
                        et = u16(buf, l3 + 2)[0]
                        l3 += 4
                    if et == ETHERTYPE_IPV4:
                        ver = 4
                    elif et == ETHERTYPE_IPV6:
                        ver = 6
                    else:
                        return None
                else:
                    l3 = p + l3off
                    ver = buf[l3] >> 4
                if ver == 4:
                    ihl = (buf[l3] & 15) << 2
                    proto = buf[l3 + 9]
                    l4 = l3 + ihl
                    if buf[l3 + 7] | (buf[l3 + 6] & 0x1F):  # non-first fragment
                        return None
                elif ver == 6:
                    proto = buf[l3 + 6]
                    l4 = l3 + 40
                    while proto in IPV6_EXTENSION_HEADERS and l4 + 2 <= end:
                        proto, l4 = buf[l4], l4 + ((buf[l4 + 1] + 1) << 3)
                else:
                    return None
                if proto == IPPROTO_TCP:
                    if l4 + 4 > end:
                        return None
                    sp, dp = ports(buf, l4)
                    if sp in tcp_ports or dp in tcp_ports:
                        pass
                    elif l4 + 14 <= end:
                        data = l4 + ((buf[l4 + 12] >> 4) << 2)
                        first = buf[data] if data < end else -1
                        if greet and first == 0x32 and buf[data:data + _GREETING_LEN] == AUTHD_GREETING:
                            tcp_ports.add(sp)  # an authd server on an unusual port: follow it from now on
                        elif greet and first == 0x52 and buf[data:data + _RFB_GREETING_LEN] == RFB_GREETING:
                            tcp_ports.add(sp)  # a VNC server: its packets go to the VNC side analysis
                            side_ports.add(sp)
                        elif not ((sp in ctl_ports or dp in ctl_ports)
                                  and (buf[l4 + 13] & ctl_flags or first == ctl_a or first == ctl_b)):
                            return None
                    else:
                        return None
                elif proto == IPPROTO_UDP:
                    if not udp_ports or l4 + 4 > end:
                        return None
                    sp, dp = ports(buf, l4)
                    if sp not in udp_ports and dp not in udp_ports:
                        return None
                elif proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
                    if not icmp:
                        return None
                else:
                    return None
            except (IndexError, struct.error):
                return None  # too short to be of interest; counted by nothing, costs nothing
            ts = ts_a + ts_b / div + tsoff
            pkt = full(buf, p, end, l3, l4, ver, proto, incl, orig, frame, rec_off, ts)
            if pkt is not None:
                stats.selected += 1
                if stats.first_ts is None:
                    stats.first_ts = pkt.ts
                stats.last_ts = pkt.ts
            return pkt

        return decode

    def _malformed(self, rec_off: int, frame: int, detail: str) -> Packet | None:
        """A selected packet whose headers contradict themselves: counted, the first ones kept as
        ``malformed_packet`` warnings (weird rows), the packet dropped."""
        stats = self.stats
        stats.malformed += 1
        if stats.malformed <= MAX_MALFORMED_WARNINGS:
            self._warn(rec_off, frame, "malformed_packet", detail)
        return None

    def _full_decode(self, buf: Buf, p: int, end: int, l3: int, l4: int, ver: int, proto: int, incl: int, orig: int,
                     frame: int, rec_off: int, ts: float) -> Packet | None:
        """Decode an interesting packet completely (runs only for selected packets)."""
        if ver == 4:
            total = _IPV4_LEN.unpack_from(buf, l3 + 2)[0]
            if proto == IPPROTO_TCP or proto == IPPROTO_UDP:
                ihl = (buf[l3] & 15) << 2
                if ihl < 20:
                    return self._malformed(rec_off, frame, f"IPv4 header length {ihl} bytes (under 20)")
                if total and total < ihl + (20 if proto == IPPROTO_TCP else 8):
                    return self._malformed(rec_off, frame, f"IPv4 total length {total} is shorter than its "
                                                           f"{'TCP' if proto == IPPROTO_TCP else 'UDP'} and IP headers")
            src, dst = buf[l3 + 12:l3 + 16], buf[l3 + 16:l3 + 20]
            ip_end = l3 + total if total else end  # 0 = TSO super-frame: trust the capture
        else:
            plen = _IPV4_LEN.unpack_from(buf, l3 + 4)[0]
            src, dst = buf[l3 + 8:l3 + 24], buf[l3 + 24:l3 + 40]
            ip_end = l3 + 40 + plen if plen else end
        if proto == IPPROTO_TCP:
            if l4 + 20 > end:
                self._warn(rec_off, frame, "snaplen_truncated", "TCP header cut off by the snapshot length")
                return None
            sp, dp, seq, ack, doff, flags, win = _TCP.unpack_from(buf, l4)
            if doff >> 4 < 5:
                return self._malformed(rec_off, frame, f"TCP data offset {doff >> 4} words (under 5) on port "
                                                       f"{sp} -> {dp}")
            data = l4 + ((doff >> 4) << 2)
            declared = ip_end - data if ip_end > data else 0
            # a payload cut short by the snaplen (len(payload) < declared) is a gap for the reassembler
            payload = buf[data:ip_end if ip_end <= end else end] if data < end else b""
            return _tuple_new(Packet, (frame, ts, proto, src, dst, sp, dp, seq, ack, flags, win, payload, declared,
                                       orig))
        if proto == IPPROTO_UDP:
            if l4 + 8 > end:
                return None
            sp, dp, ulen = _UDP.unpack_from(buf, l4)
            payload = buf[l4 + 8:min(l4 + max(ulen, 8), end)]
            return _tuple_new(Packet, (frame, ts, proto, src, dst, sp, dp, 0, 0, 0, 0, payload, max(0, ulen - 8),
                                       orig))
        # ICMP / ICMPv6: keep errors only (dest unreachable, time exceeded, packet too big)
        if l4 + 8 > end:
            return None
        itype, icode = buf[l4], buf[l4 + 1]
        if ver == 4 and itype not in (3, 11) or ver == 6 and itype not in (1, 2, 3):
            return None
        payload = buf[l4 + 8:min(ip_end, end)]
        return Packet(frame, ts, proto, src, dst, itype, icode, 0, 0, 0, 0, payload, max(0, ip_end - l4 - 8), orig)


