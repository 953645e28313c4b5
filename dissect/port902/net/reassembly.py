"""One direction of a TCP connection -> an in-order byte stream (stage 2b).

Segments arrive retransmitted, out of order, overlapping, or cut short by the
snapshot length.  The parsers downstream want bytes in order, so this module
delivers exactly that to a *sink* (``data(bytes, ts, frame)`` and
``gap(nbytes, ts, frame)``) and counts every irregularity instead of hiding it:
a hole is delivered as an explicit gap, never glued over.

Memory is bounded: out-of-order data waiting for a hole to fill is capped in bytes
(``max_pending``) and in segments (``max_segments``); past either cap the hole is declared
a gap (counted in ``gaps``/``gap_bytes``) and delivery goes on.  Pending segments sit in a
heap by (stream offset, arrival), so finding the next one to deliver is O(log n), not a
sort per step (issue 13: 40k out-of-order segments took 79 s).

Overlapping copies: bytes delivered stay delivered; of the pending ones, the segment that
starts lowest wins, and of two starting at the same offset the first to arrive, the later
one adding only what lies past it (a later one no longer than it is a retransmission).
That is what tshark's TCP reassembly delivers (``follow,tcp`` with out-of-order reassembly;
``tests/test_reassembly.py`` compares the two on overlapping captures).
Sequence numbers are unwrapped to 64-bit stream offsets, so a multi-GB transfer
that wraps the 32-bit space keeps its place.
"""

from __future__ import annotations

import heapq
from typing import Protocol

MAX_PENDING_BYTES = 4 << 20
# a byte cap's worth of segments of RFC 1122's default MSS (536 bytes): a sender that never
# negotiated a larger one fills the byte cap in that many; tinier segments hit this cap first
MAX_PENDING_SEGMENTS = MAX_PENDING_BYTES // 536
_HALF = 1 << 31
_MOD = 1 << 32


class StreamSink(Protocol):
    def data(self, data: bytes, ts: float, frame: int) -> None: ...

    def gap(self, nbytes: int, ts: float, frame: int) -> None: ...


class Reassembler:
    """Per-direction reassembly with counters for Zeek-style history and weird reports."""

    __slots__ = (
        "sink", "max_pending", "max_segments", "base", "next_off", "pending", "pending_bytes", "_heap", "_arrivals",
        "delivered", "wire_bytes", "retransmissions", "out_of_order", "overlaps",
        "gaps", "gap_bytes", "truncated_bytes", "started",
    )

    def __init__(self, sink: StreamSink, max_pending: int = MAX_PENDING_BYTES,
                 max_segments: int = MAX_PENDING_SEGMENTS) -> None:
        self.sink = sink
        self.max_pending = max_pending
        self.max_segments = max_segments
        self.base: int | None = None  # sequence number of stream offset 0
        self.next_off = 0  # next stream offset we expect to deliver
        self.pending: dict[int, int] = {}  # off -> longest declared length pending there
        self.pending_bytes = 0
        self._heap: list[tuple[int, int, bytes, int, float, int]] = []  # (off, arrival, data, declared, ts, frame)
        self._arrivals = 0
        self.delivered = 0
        self.wire_bytes = 0  # every payload byte seen on the wire, retransmissions included
        self.retransmissions = 0
        self.out_of_order = 0
        self.overlaps = 0
        self.gaps = 0
        self.gap_bytes = 0
        self.truncated_bytes = 0
        self.started = False

    def syn(self, seq: int) -> None:
        """The SYN fixes offset 0 at seq + 1 (the SYN itself takes one sequence number)."""
        if not self.started:
            self.base = (seq + 1) % _MOD

    def _offset(self, seq: int) -> int:
        """Unwrap a 32-bit sequence number to the stream offset nearest the delivery point."""
        if self.base is None:
            raise ValueError("no stream offset 0 yet: neither a SYN nor a segment with payload was seen")
        rel = (seq - self.base) % _MOD
        cur = self.next_off % _MOD
        delta = (rel - cur + _HALF) % _MOD - _HALF
        return self.next_off + delta

    def segment(self, seq: int, payload: bytes, declared: int, ts: float, frame: int) -> str:
        """Take one segment; returns '' or a history hint: 'T' retransmission, 'O' out of order."""
        if declared <= 0:
            return ""
        self.wire_bytes += declared
        if self.base is None:
            self.base = seq  # capture started mid-connection: this segment is offset 0
        self.started = True
        next_off = self.next_off
        # self._offset(seq), inlined (this runs for every segment with payload)
        off = next_off + ((seq - self.base) % _MOD - next_off % _MOD + _HALF) % _MOD - _HALF
        if off == next_off and not self.pending:  # the common case: in order, nothing waiting
            self._deliver(payload, declared, ts, frame)
            return ""
        end = off + declared
        if end <= next_off:
            self.retransmissions += 1
            return "T"
        hint = ""
        if off < self.next_off:  # partial overlap with what was already delivered
            self.overlaps += 1
            cut = self.next_off - off
            payload, declared, off = payload[cut:], declared - cut, self.next_off
            hint = "T"
        if off > self.next_off:
            self.out_of_order += 1
            old = self.pending.get(off)
            if old is None or old < declared:
                self.pending[off] = declared
                self._arrivals += 1
                heapq.heappush(self._heap, (off, self._arrivals, payload, declared, ts, frame))
                self.pending_bytes += declared
            else:
                self.retransmissions += 1
                hint = "T"
            if self.pending_bytes > self.max_pending or len(self._heap) > self.max_segments:
                self._skip_to_pending(ts, frame)
            return hint or "O"
        self._deliver(payload, declared, ts, frame)
        self._drain()
        return hint

    def _deliver(self, payload: bytes, declared: int, ts: float, frame: int) -> None:
        if payload:
            self.sink.data(payload, ts, frame)
        missing = declared - len(payload)
        if missing > 0:  # snapshot length cut this segment short
            self.truncated_bytes += missing
            self._gap(missing, ts, frame)
        self.next_off += declared
        self.delivered += len(payload)

    def _gap(self, nbytes: int, ts: float, frame: int) -> None:
        self.gaps += 1
        self.gap_bytes += nbytes
        self.sink.gap(nbytes, ts, frame)

    def _pop(self) -> tuple[int, int, bytes, int, float, int]:
        entry = heapq.heappop(self._heap)
        off = entry[0]
        if not (self._heap and self._heap[0][0] == off):  # the last one pending at this offset
            del self.pending[off]
        self.pending_bytes -= entry[3]
        return entry

    def _drain(self) -> None:
        """Deliver every pending segment that now starts at or before next_off, lowest first."""
        heap = self._heap
        while heap and heap[0][0] <= self.next_off:
            off, _, payload, declared, ts, frame = self._pop()
            end = off + declared
            if end <= self.next_off:
                continue  # wholly delivered already
            if off < self.next_off:
                self.overlaps += 1
                cut = self.next_off - off
                payload, declared = payload[cut:], declared - cut
            self._deliver(payload, declared, ts, frame)

    def _skip_to_pending(self, ts: float, frame: int) -> None:
        """The hole is not going to fill: declare it lost and continue at the first pending byte."""
        if not self._heap:
            return
        first, _, _, _, pts, pframe = self._heap[0]
        if first > self.next_off:
            self._gap(first - self.next_off, pts, pframe)
            self.next_off = first
        self._drain()

    def flush(self) -> None:
        """End of connection or capture: deliver whatever is pending, declaring the holes."""
        while self._heap:
            self._skip_to_pending(0.0, 0)
