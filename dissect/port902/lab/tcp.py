"""One TCP connection as a capture point sees it: packets with real seq/ack, options, checksums.

Why: the dissector reassembles authd streams from TCP segments, so the lab must produce TCP that
tshark accepts as clean (no analysis flags) unless a condition was injected on purpose (loss,
reordering, a capture that starts mid-connection, unanswered or refused SYNs).

Time model. All times are capture timestamps. The capture point sits ``vantage`` of the way
from client (0.0) to server (1.0); one-way delay is ``rtt / 2``. A packet from side A seen at
``t`` can be answered by side B no earlier than ``t + 2 * dist(B)``, where ``dist`` is B's delay
to the capture point. Every method returns the time at which the receiving side holds the data
(its "ready" time), so a dialogue can schedule the reply after it.

Receiver model: in-order data is acknowledged every second segment at once and otherwise after
``delack`` unless the receiver sends data first (piggy-backed ACK); out-of-order data is answered
by an immediate duplicate ACK with SACK blocks. Lost segments (dropped *after* the capture
point, so the capture shows the original and the retransmission) are resent after three
duplicate ACKs or after the retransmission timeout. The sender respects the peer's window but
has no congestion control (LAN-like bursts). Packets are built with ``struct`` for speed.
"""

from __future__ import annotations

import bisect
import random
import struct
from dataclasses import dataclass, field
from typing import Iterable

from .ip import PROTO_TCP, fold, ip_header, ones_sum, pack_address, pseudo_header

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
C2S, S2C = "c2s", "s2c"
_TCP = struct.Struct("!HHIIBBHHH")
_EPS = 1e-9
ETHERNET_OVERHEAD = 38          # preamble, header, FCS, inter-frame gap: for serialisation time


@dataclass
class _Side:
    """Per-endpoint state: what it sent, what it received, its clocks."""

    ip: bytes
    port: int
    ttl: int
    window: int
    dist: float
    isn: int
    ts_base: int
    ip_id: int
    flow_label: int
    nxt: int = 0                  # relative sequence number of the next byte to send
    payload: int = 0              # application bytes sent (no SYN/FIN, no retransmissions)
    last_tx: float = float("-inf")
    sent_t: list = field(default_factory=list)      # capture times of sent packets (TSecr lookup)
    sent_tsval: list = field(default_factory=list)
    ack_t: list = field(default_factory=list)       # emission times of ACK-carrying packets
    ack_v: list = field(default_factory=list)       # ... and their relative ack values
    rcv_t: list = field(default_factory=list)       # when peer data became available here
    rcv_v: list = field(default_factory=list)       # ... cumulative relative ack at that time
    rcv_nxt: int = 0
    ooo: dict = field(default_factory=dict)         # out-of-order segments held: seq -> end
    last_ack: int = -1
    unacked: int = 0
    pending: float | None = None                    # delayed-ACK deadline
    data_segments: int = 0                          # ordinal of the next original data segment


class TcpConversation:
    """Packets of one TCP connection between a client and a server.

    Build it with ``open`` (or ``syn_unanswered`` / ``refuse``), then ``client_send`` /
    ``server_send`` and ``close`` / ``reset``; read the result with ``packets()`` (time-ordered
    ``(ts, ip_packet)`` pairs) or ``records()`` (with the marks given to sends).

    Conditions: ``loss`` and ``reorder`` are iterables of ``(direction, ordinal)`` naming the
    n-th original data segment (0-based) of ``"c2s"`` or ``"s2c"``; ``loss_rate`` drops data
    segments at random from ``rng``; ``capture_from`` drops everything seen before that time.
    ``mss`` defaults to 1460 (IPv4) / 1440 (IPv6); with timestamps each segment carries 12 bytes
    less data, as on Linux.
    """

    def __init__(
        self,
        client_ip: str,
        client_port: int,
        server_ip: str,
        server_port: int,
        start_ts: float,
        rtt: float = 0.001,
        mss: int | None = None,
        *,
        vantage: float = 0.5,
        bandwidth: float = 125e6,
        client_ttl: int = 64,
        server_ttl: int = 64,
        client_window: int = 262144,
        server_window: int = 262144,
        wscale: int = 7,
        timestamps: bool = True,
        sack: bool = True,
        delack: float = 0.04,
        loss: Iterable[tuple[str, int]] = (),
        loss_rate: float = 0.0,
        reorder: Iterable[tuple[str, int]] = (),
        capture_from: float | None = None,
        rng: random.Random | None = None,
    ):
        self.rng = rng or random.Random(f"{client_ip}:{client_port}>{server_ip}:{server_port}")
        cip, sip = pack_address(client_ip), pack_address(server_ip)
        if len(cip) != len(sip):
            raise ValueError("client and server must use the same IP version")
        self.ipv6 = len(cip) == 16
        self.client_ip, self.server_ip = client_ip, server_ip
        self.client_port, self.server_port = client_port, server_port
        self.start_ts, self.rtt, self.vantage = start_ts, rtt, vantage
        self.mss = mss or (1440 if self.ipv6 else 1460)
        self.seg_size = self.mss - (12 if timestamps else 0)
        self.bandwidth, self.wscale, self.delack = bandwidth, wscale, delack
        self.timestamps, self.sack = timestamps, sack
        self.loss = set(loss)
        self.loss_rate = loss_rate
        self.reorder = set(reorder)
        self.capture_from = capture_from
        self.rto = max(0.2, rtt + 0.2)
        self.events: list[dict] = []        # injected conditions that actually happened
        self.state = "new"
        one_way = rtt / 2
        r = self.rng
        self.client = _Side(cip, client_port, client_ttl, client_window, vantage * one_way,
                            r.getrandbits(32), r.getrandbits(32), r.getrandbits(16), r.getrandbits(20))
        self.server = _Side(sip, server_port, server_ttl, server_window, (1 - vantage) * one_way,
                            r.getrandbits(32), r.getrandbits(32), r.getrandbits(16), r.getrandbits(20))
        self._packets: list[tuple[float, int, bytes, str | None]] = []

    # -- helpers ---------------------------------------------------------------------------------

    def _peer(self, side: _Side) -> _Side:
        return self.server if side is self.client else self.client

    def _side(self, name: str) -> _Side:
        if name not in ("client", "server"):
            raise ValueError("side must be 'client' or 'server'")
        return self.client if name == "client" else self.server

    def ready(self, name: str) -> float:
        """Earliest capture time at which ``name`` could send, given all it has received."""
        side = self._side(name)
        t = max(self.start_ts, side.last_tx)
        return max(t, side.rcv_t[-1]) if side.rcv_t else t

    def _ack_at(self, side: _Side, t: float) -> int:
        i = bisect.bisect_right(side.rcv_t, t + _EPS) - 1
        return side.rcv_v[i] if i >= 0 else 0

    def _tsecr(self, side: _Side, t: float) -> int:
        peer = self._peer(side)
        i = bisect.bisect_right(peer.sent_t, t - 2 * side.dist + _EPS) - 1
        return peer.sent_tsval[i] if i >= 0 else 0

    def _tsval(self, side: _Side, t: float) -> int:
        return (side.ts_base + int((t - self.start_ts) * 1000)) & 0xFFFFFFFF

    def _syn_options(self, side: _Side, t: float) -> bytes:
        mss = struct.pack("!BBH", 2, 4, self.mss)
        if self.timestamps:        # Linux order: MSS, SACK_PERM, TS, NOP, WS
            ts = struct.pack("!BBII", 8, 10, self._tsval(side, t), self._tsecr(side, t) if side is self.server else 0)
            sack = b"\x04\x02" if self.sack else b"\x01\x01"
            return mss + sack + ts + b"\x01" + struct.pack("!BBB", 3, 3, self.wscale)
        return mss + b"\x01" + struct.pack("!BBB", 3, 3, self.wscale) + (b"\x01\x01\x04\x02" if self.sack else b"")

    def _options(self, side: _Side, t: float, sack_blocks: list[tuple[int, int]]) -> bytes:
        opts = b""
        if self.timestamps:
            opts += b"\x01\x01" + struct.pack("!BBII", 8, 10, self._tsval(side, t), self._tsecr(side, t))
        if sack_blocks and self.sack:
            blocks = sack_blocks[: 3 if self.timestamps else 4]
            opts += b"\x01\x01" + struct.pack("!BB", 5, 2 + 8 * len(blocks))
            base = self._peer(side).isn
            for left, right in blocks:
                opts += struct.pack("!II", (base + left) & 0xFFFFFFFF, (base + right) & 0xFFFFFFFF)
        return opts

    def _emit(self, side: _Side, t: float, flags: int, payload: bytes = b"", seq: int | None = None,
              options: bytes | None = None, mark: str | None = None, sack_blocks=(), ack: int | None = None) -> float:
        """Build one packet from ``side`` seen at ``t`` (clamped so each side's times never go back)."""
        t = max(t, side.last_tx)
        peer = self._peer(side)
        if seq is None:
            seq = side.nxt
        if flags & ACK:
            if ack is None:
                ack = self._ack_at(side, t)
            ack_abs = (peer.isn + ack) & 0xFFFFFFFF
        else:
            ack_abs = 0
        if options is None:
            options = b"" if flags & RST else self._options(side, t, list(sack_blocks))
        options += b"\x00" * (-len(options) & 3)
        if flags & SYN:
            window = min(side.window, 65535)
        elif flags & RST:
            window = 0
        else:
            window = min(side.window >> self.wscale, 65535)
        src, dst = side.ip, peer.ip
        header = _TCP.pack(side.port, peer.port, (side.isn + seq) & 0xFFFFFFFF, ack_abs,
                           (20 + len(options)) << 2, flags, window, 0, 0) + options
        length = len(header) + len(payload)
        value = fold(ones_sum(pseudo_header(src, dst, PROTO_TCP, length), header, payload))
        header = header[:16] + value.to_bytes(2, "big") + header[18:]
        packet = ip_header(src, dst, PROTO_TCP, length, side.ip_id, side.ttl, side.flow_label) + header + payload
        side.ip_id = (side.ip_id + 1) & 0xFFFF
        self._packets.append((t, len(self._packets), packet, mark))
        side.last_tx = t
        side.sent_t.append(t)
        side.sent_tsval.append(self._tsval(side, t))
        if flags & ACK:
            side.ack_t.append(t)
            side.ack_v.append(ack)
            side.last_ack = max(side.last_ack, ack)
        return t

    def _ack_now(self, side: _Side, t: float, dup: bool = False) -> None:
        side.unacked, side.pending = 0, None
        if dup or self._ack_at(side, t) > side.last_ack:
            blocks = sorted(side.ooo.items(), reverse=True)
            self._emit(side, t, ACK, sack_blocks=blocks)

    def _flush_pending(self, side: _Side, now: float) -> None:
        if side.pending is not None and side.pending <= now + _EPS:
            self._ack_now(side, side.pending)

    def _before_send(self, side: _Side, t: float) -> float:
        """Settle delayed ACKs before ``side`` transmits at ``t``; later ones ride on the data."""
        t = max(t, side.last_tx)
        self._flush_pending(side, t)
        side.unacked, side.pending = 0, None
        return t

    def _arrive(self, receiver: _Side, seq: int, length: int, seen: float) -> float:
        """Deliver a segment seen at ``seen`` to ``receiver``; returns when it holds the data."""
        at = seen + 2 * receiver.dist
        self._flush_pending(receiver, at)
        if seq == receiver.rcv_nxt:
            receiver.rcv_nxt += length
            filled = False
            while receiver.rcv_nxt in receiver.ooo:
                receiver.rcv_nxt = receiver.ooo.pop(receiver.rcv_nxt)
                filled = True
            receiver.rcv_t.append(at)
            receiver.rcv_v.append(receiver.rcv_nxt)
            receiver.unacked += 1
            if filled or receiver.unacked >= 2:
                self._ack_now(receiver, at)
            elif receiver.pending is None:
                receiver.pending = at + self.delack
        elif seq > receiver.rcv_nxt:
            receiver.ooo[seq] = seq + length
            self._ack_now(receiver, at, dup=True)
        else:
            self._ack_now(receiver, at, dup=True)
        return at

    def _known_ack(self, sender: _Side, t: float) -> int:
        peer = self._peer(sender)
        i = bisect.bisect_right(peer.ack_t, t - 2 * sender.dist + _EPS) - 1
        return peer.ack_v[i] if i >= 0 else 0

    def _window_wait(self, sender: _Side, end: int, t: float) -> float:
        """Delay a segment ending at ``end`` until the peer's window admits it (if ever)."""
        peer = self._peer(sender)
        if end - self._known_ack(sender, t) <= peer.window:
            return t
        i = bisect.bisect_left(peer.ack_v, end - peer.window)     # ACK values never decrease
        return max(t, peer.ack_t[i] + 2 * sender.dist) if i < len(peer.ack_v) else t

    # -- connection set-up -------------------------------------------------------------------

    def open(self, at: float | None = None, mark: str | None = None, accept_delay: float = 0.00002) -> float:
        """Three-way handshake starting at ``at``; returns when the client may send."""
        t = self.start_ts if at is None else at
        c, s = self.client, self.server
        t = self._emit(c, t, SYN, options=self._syn_options(c, t), mark=mark)
        c.nxt = 1
        at_server = t + 2 * s.dist
        s.rcv_nxt = 1
        s.rcv_t.append(at_server)
        s.rcv_v.append(1)
        t_sa = at_server + accept_delay
        t_sa = self._emit(s, t_sa, SYN | ACK, options=self._syn_options(s, t_sa))
        s.nxt = 1
        at_client = t_sa + 2 * c.dist
        c.rcv_nxt = 1
        c.rcv_t.append(at_client)
        c.rcv_v.append(1)
        self._emit(c, at_client, ACK)
        self.state = "established"
        return at_client

    def syn_unanswered(self, at: float | None = None, retries: Iterable[float] = (1.0, 2.0, 4.0),
                       mark: str | None = None) -> float:
        """A SYN nobody answers, retransmitted after each interval in ``retries`` (1 s, 2 s, 4 s …)."""
        t = self.start_ts if at is None else at
        c = self.client
        self._emit(c, t, SYN, options=self._syn_options(c, t), mark=mark)
        for gap in retries:
            t += gap
            self._emit(c, t, SYN, seq=0, options=self._syn_options(c, t))
        c.nxt = 1
        self.state = "no_answer"
        return t

    def refuse(self, at: float | None = None, retries: Iterable[float] = (), mark: str | None = None) -> float:
        """SYN answered by RST/ACK (closed port); optional client retries after each gap."""
        t = self.start_ts if at is None else at
        c, s = self.client, self.server
        s.isn = 0
        for gap in (0.0, *retries):
            t = self._emit(c, t + gap, SYN, seq=0, options=self._syn_options(c, t + gap), mark=mark)
            mark = None
            t_rst = t + 2 * s.dist + 0.00002
            self._emit(s, t_rst, RST | ACK, seq=0, ack=1, options=b"")
            t = t_rst + 2 * c.dist
        self.state = "refused"
        return t

    # -- data ------------------------------------------------------------------------------------

    def client_send(self, data: bytes, at: float | None = None, mark: str | None = None) -> float:
        """Client sends ``data`` (segmented by MSS); returns when the server holds all of it."""
        return self._send(self.client, data, at, mark)

    def server_send(self, data: bytes, at: float | None = None, mark: str | None = None) -> float:
        """Server sends ``data`` (segmented by MSS); returns when the client holds all of it."""
        return self._send(self.server, data, at, mark)

    def _send(self, sender: _Side, data: bytes, at: float | None, mark: str | None) -> float:
        if self.state != "established":
            raise RuntimeError(f"cannot send on a connection in state {self.state!r}")
        if not data:
            return self.ready("server" if sender is self.client else "client")
        receiver = self._peer(sender)
        direction = C2S if sender is self.client else S2C
        name = "client" if sender is self.client else "server"
        t = self._before_send(sender, self.ready(name) if at is None else at)
        size = self.seg_size
        segments = []                 # [seq, payload, ordinal]
        seq = sender.nxt
        for offset in range(0, len(data), size):
            chunk = data[offset: offset + size]
            segments.append([seq, chunk, sender.data_segments])
            sender.data_segments += 1
            seq += len(chunk)
        i = 0
        while i < len(segments) - 1:          # a reordered segment is overtaken by its successor
            if (direction, segments[i][2]) in self.reorder:
                self.events.append({"kind": "reorder", "direction": direction, "segment": segments[i][2]})
                segments[i], segments[i + 1] = segments[i + 1], segments[i]
                i += 1
            i += 1
        end_seq = seq
        lost = []
        done = t
        for seq, chunk, ordinal in segments:
            t = self._window_wait(sender, seq + len(chunk), t)
            flags = ACK | (PSH if seq + len(chunk) == end_seq else 0)
            t = self._emit(sender, t, flags, chunk, seq=seq, mark=mark)
            mark = None
            dropped = (direction, ordinal) in self.loss or (self.loss_rate and self.rng.random() < self.loss_rate)
            if dropped:
                lost.append((seq, chunk, t, flags))
                self.events.append({"kind": "loss", "direction": direction, "segment": ordinal, "ts": t})
            else:
                done = max(done, self._arrive(receiver, seq, len(chunk), t))
            t += (len(chunk) + 40 + ETHERNET_OVERHEAD) / self.bandwidth
        sender.nxt = end_seq
        sender.payload += len(data)
        for seq, chunk, sent_at, flags in lost:
            dups = [emit for emit, value in zip(receiver.ack_t, receiver.ack_v) if value == seq and emit >= sent_at]
            when = dups[2] + 2 * sender.dist if len(dups) >= 3 else sent_at + self.rto
            t = self._emit(sender, max(when, sender.last_tx), flags, chunk, seq=seq)
            done = max(done, self._arrive(receiver, seq, len(chunk), t))
        return done

    # -- teardown --------------------------------------------------------------------------------

    def close(self, at: float | None = None, by: str = "client", linger: float = 0.0002,
              mark: str | None = None) -> float:
        """Orderly close: FIN from ``by``, FIN/ACK from the peer after ``linger``, final ACK.

        A ``linger`` longer than the delayed-ACK timer yields a separate ACK before the peer's FIN.
        """
        a = self._side(by)
        b = self._peer(a)
        t = self._before_send(a, self.ready(by) if at is None else at)
        t = self._emit(a, t, FIN | ACK, mark=mark)
        a.nxt += 1
        at_b = t + 2 * b.dist
        self._flush_pending(b, at_b)
        b.rcv_nxt += 1
        b.rcv_t.append(at_b)
        b.rcv_v.append(b.rcv_nxt)
        if linger > self.delack:
            self._ack_now(b, at_b)
        b.unacked, b.pending = 0, None
        t_b = self._emit(b, at_b + linger, FIN | ACK)
        b.nxt += 1
        at_a = t_b + 2 * a.dist
        self._flush_pending(a, at_a)
        a.rcv_nxt += 1
        a.rcv_t.append(at_a)
        a.rcv_v.append(a.rcv_nxt)
        self._emit(a, at_a, ACK)
        a.pending = b.pending = None
        self.state = "closed"
        return at_a

    def reset(self, at: float | None = None, by: str = "client", mark: str | None = None) -> float:
        """Abort with RST/ACK from ``by``."""
        side = self._side(by)
        t = self._before_send(side, self.ready(by) if at is None else at)
        t = self._emit(side, t, RST | ACK, mark=mark)
        self.client.pending = self.server.pending = None
        self.state = "reset"
        return t

    # -- output ------------------------------------------------------------------------------------

    def records(self) -> list[tuple[float, bytes, str | None]]:
        """Time-ordered ``(ts, ip_packet, mark)`` for every packet the capture holds."""
        for side in (self.client, self.server):
            if side.pending is not None:
                self._flush_pending(side, float("inf"))
        ordered = sorted(self._packets, key=lambda p: (p[0], p[1]))
        start = float("-inf") if self.capture_from is None else self.capture_from
        return [(t, packet, mark) for t, _, packet, mark in ordered if t >= start]

    def packets(self) -> list[tuple[float, bytes]]:
        """Time-ordered ``(ts, ip_packet)`` pairs, ready for ``CaptureWriter.write_many``."""
        return [(t, packet) for t, packet, _ in self.records()]

    def payload_bytes(self) -> tuple[int, int]:
        """Application bytes sent (client→server, server→client), retransmissions not counted."""
        return self.client.payload, self.server.payload

    def conditions(self) -> dict:
        """The network conditions of this connection, for labels."""
        return {
            "rtt_s": self.rtt,
            "mss": self.mss,
            "vantage": self.vantage,
            "loss_rate": self.loss_rate,
            "capture_from": self.capture_from,
            "injected": list(self.events),
        }
