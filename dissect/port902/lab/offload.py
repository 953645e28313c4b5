"""Segmentation-offload super-frames, as a capture taken *on* a host shows them.

Why: tcpdump / Wireshark on the sending host sees TCP data before the NIC segments it (TSO /
GSO, Windows "large send offload"), and on the receiving host after the driver merged it (GRO /
LRO). Such captures hold single IP packets of tens of kilobytes — far above the MTU — whose
IPv4 total length is the real length, or **0** (Windows LSO hands the capture a header with the
length still unset; Linux "BIG TCP" writes 0 above 64 KiB). A dissector that trusts the IP
length, or assumes at most one MSS per packet, breaks on them; the sizes of the TLS records
inside do not change.

``coalesce`` rewrites one connection's time-ordered packets: consecutive data segments from
the same sender, contiguous in sequence space, within one write (a PSH ends the write) and
within ``window`` seconds of the first, are merged up to ``max_payload`` bytes into one packet
stamped with the first segment's time. The peer's packets seen meanwhile keep their times and
order after it. Outgoing super-frames carry the partial (pseudo-header, length 0) TCP checksum
that checksum offload leaves behind; incoming GRO frames keep the first segment's checksum. SYN,
FIN, RST and pure ACKs pass through unchanged, as do retransmissions (not contiguous).
"""

from __future__ import annotations

import struct
from typing import Iterable, Iterator

from .ip import PROTO_TCP, checksum, ones_sum, pseudo_header

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
Record = tuple[float, bytes, "str | None"]


def _parse(packet: bytes):
    """(src, dst, header bytes up to TCP payload, seq, flags, payload) or None for non-TCP."""
    if packet[0] >> 4 == 4:
        ihl = (packet[0] & 15) * 4
        if packet[9] != PROTO_TCP:
            return None
        src, dst, l4 = packet[12:16], packet[16:20], ihl
    else:
        if packet[6] != PROTO_TCP:
            return None
        src, dst, l4 = packet[8:24], packet[24:40], 40
    off = (packet[l4 + 12] >> 4) * 4
    seq = struct.unpack_from("!I", packet, l4 + 4)[0]
    return src, dst, l4, off, seq, packet[l4 + 13], packet[l4 + off:]


def _superframe(first: bytes, l4: int, off: int, payload: bytes, flags: int, outgoing: bool,
                zero_length: bool) -> bytes:
    tcp = bytearray(first[l4: l4 + off])
    tcp[13] = flags
    src, dst = (first[12:16], first[16:20]) if l4 != 40 else (first[8:24], first[24:40])
    if outgoing:            # checksum offload: the pseudo-header sum (length 0, as Linux GSO leaves it)
        partial = ones_sum(pseudo_header(src, dst, PROTO_TCP, 0)) % 0xFFFF
        tcp[16:18] = partial.to_bytes(2, "big")
    if l4 == 40:
        header = bytearray(first[:40])
        length = off + len(payload)
        header[4:6] = (length if length <= 0xFFFF else 0).to_bytes(2, "big")
        return bytes(header) + bytes(tcp) + payload
    header = bytearray(first[:l4])
    total = l4 + off + len(payload)
    header[2:4] = (0 if zero_length or total > 0xFFFF else total).to_bytes(2, "big")
    header[10:12] = b"\0\0"
    header[10:12] = struct.pack("!H", checksum(bytes(header)))
    return bytes(header) + bytes(tcp) + payload


def coalesce(records: Iterable[Record], local: set[bytes], *, tso: bool = True, gro: bool = False,
             max_payload: int = 65483, window: float = 0.002, zero_length: bool = False) -> Iterator[Record]:
    """Merge data segments into super-frames (see the module docstring).

    ``local`` holds the packed addresses of the capturing host; its outgoing data is merged
    when ``tso`` is set, incoming data when ``gro`` is set (GRO frames stay ≤ 64 KiB and keep a
    real IP length). ``zero_length`` writes IPv4 total length 0 on every outgoing super-frame
    (Windows LSO), otherwise only above 64 KiB.
    """
    group: list = []            # [t, first packet, l4, off, next seq, flags, payload parts, size, mark, outgoing]
    held: list[Record] = []

    def flush() -> Iterator[Record]:
        if group:
            t, first, l4, off, _, flags, parts, _, mark, outgoing = group
            if len(parts) == 1:
                yield t, first, mark
            else:
                yield t, _superframe(first, l4, off, b"".join(parts), flags, outgoing,
                                     zero_length and outgoing), mark
            group.clear()
        yield from held
        held.clear()

    for t, packet, mark in records:
        if group and t - group[0] > window:
            yield from flush()
        parsed = _parse(packet)
        if parsed is None:
            if group:
                held.append((t, packet, mark))
            else:
                yield t, packet, mark
            continue
        src, _dst, l4, off, seq, flags, payload = parsed
        outgoing = src in local
        mergeable = bool(payload) and not flags & (SYN | FIN | RST) and ((tso and outgoing) or (gro and not outgoing))
        if group and mergeable and group[9] == outgoing:
            limit = max_payload if outgoing else min(max_payload, 0xFFFF - l4 - off)
            if seq == group[4] and not group[5] & PSH and group[7] + len(payload) <= limit:
                group[4] = (seq + len(payload)) & 0xFFFFFFFF
                group[5] |= flags
                group[6].append(payload)
                group[7] += len(payload)
                continue
            yield from flush()          # same sender, but a new write / retransmission / full
        if group:
            held.append((t, packet, mark))
        elif mergeable:
            group[:] = [t, packet, l4, off, (seq + len(payload)) & 0xFFFFFFFF, flags, [payload], len(payload),
                        mark, outgoing]
        else:
            yield t, packet, mark
    yield from flush()
