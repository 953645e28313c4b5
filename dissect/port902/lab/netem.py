"""Network conditions the base TCP model lacks: jitter, and transfers too large to hold in memory.

Why: a dataset for the classifier must cover what field captures show — WAN paths whose delay
varies from packet to packet, and NFC copies of hundreds of megabytes — without changing what
``tcp.TcpConversation`` produces for the bundled samples. ``EmuTcp`` is a subclass that adds:

* **jitter** — every segment reaches its receiver after the one-way delay plus a random
  extra delay (exponential, mean ``jitter`` seconds, capped at five times that). Queues stay
  FIFO (a segment never overtakes an earlier one), so jitter shows as varying response times
  and ACK spacing, never as spurious reordering; reordering stays an explicit condition.
* **bounded memory** — once more than ``spill_packets`` packets (or ``spill_bytes``) are held, every packet older
  than the *watermark* (the earlier of the two sides' last transmission; no later packet can
  be stamped before it, because each side's clock only moves forward) is sorted and appended to
  a temporary spill file, and the bookkeeping lists the TCP model searches are trimmed to a
  window of a few round trips. ``records()`` then streams the spill file followed by the
  packets still in memory, so a multi-gigabyte transfer costs a bounded amount of RAM.
* **accept after the handshake** — the server side may send (authd's greeting) only after the
  client's final handshake ACK reached it; the base model lets it answer right after SYN-ACK.
* **first-mark times** (``mark_times``), which the dataset uses to place a capture start
  inside a chosen phase of a connection, and a compact ``conditions()`` for labels (the
  injected loss events are summarised after the first ``max_events``).

``NetConditions`` extends ``scenario.Conditions`` with ``jitter`` so the existing builders
accept it unchanged.
"""

from __future__ import annotations

import bisect
import os
import random
import struct
import tempfile
from dataclasses import dataclass
from typing import Iterator

from .scenario import Conditions
from .tcp import TcpConversation

_SPILL = struct.Struct("<dIB")          # timestamp, packet length, mark length


@dataclass(frozen=True)
class NetConditions(Conditions):
    """``Conditions`` plus per-packet delay variation (seconds, mean of the extra delay)."""

    jitter: float = 0.0


class EmuTcp(TcpConversation):
    """A ``TcpConversation`` with jitter, spill-to-disk output and first-mark times."""

    def __init__(self, *args, jitter: float = 0.0, spill_dir: str | None = None, spill_packets: int = 40000,
                 spill_bytes: int = 24 << 20, max_events: int = 32, **kwargs):
        super().__init__(*args, **kwargs)
        self.jitter = jitter
        self._jrng = random.Random(self.rng.getrandbits(64)) if jitter else None
        self._arrival_floor: dict[int, float] = {}
        self._spill_dir = spill_dir
        self._spill_packets = spill_packets
        self._spill_bytes = spill_bytes
        self._held_bytes = 0
        self._spill_path: str | None = None
        self._spill_handle = None
        self._spilled = 0
        self._counter = 0
        self.max_events = max_events
        self.mark_times: dict[str, float] = {}

    # -- jitter ------------------------------------------------------------------------------

    def _arrive(self, receiver, seq: int, length: int, seen: float) -> float:
        if self.jitter:
            extra = min(self._jrng.expovariate(1.0), 5.0) * self.jitter
            key = id(receiver)
            at = max(seen + 2 * receiver.dist + extra, self._arrival_floor.get(key, float("-inf")))
            self._arrival_floor[key] = at
            seen = at - 2 * receiver.dist
        return super()._arrive(receiver, seq, length, seen)

    def close(self, at: float | None = None, by: str = "client", linger: float = 0.0002,
              mark: str | None = None) -> float:
        """Orderly close; with jitter the FIN never reaches the peer before the last data did."""
        if self.jitter:
            peer = self._peer(self._side(by))
            floor = self._arrival_floor.get(id(peer))
            start = self.ready(by) if at is None else at
            if floor is not None:
                start = max(start, floor - 2 * peer.dist + 1e-6)
            at = start
        return super().close(at, by, linger, mark)

    # -- connection set-up ------------------------------------------------------------------------

    def open(self, at: float | None = None, mark: str | None = None, accept_delay: float = 0.00002) -> float:
        """Three-way handshake; the server application (``accept``) is ready only once the
        client's final ACK has reached it, so a greeting can never precede that ACK."""
        at_client = super().open(at, mark, accept_delay)
        server = self.server
        server.rcv_t.append(self.client.last_tx + 2 * server.dist)
        server.rcv_v.append(server.rcv_nxt)
        return at_client

    # -- bookkeeping ---------------------------------------------------------------------------

    def _emit(self, side, t, flags, payload=b"", seq=None, options=None, mark=None, sack_blocks=(), ack=None):
        t = super()._emit(side, t, flags, payload, seq, options, mark, sack_blocks, ack)
        last = self._packets[-1]
        self._packets[-1] = (last[0], self._counter, last[2], last[3])
        self._counter += 1
        self._held_bytes += len(last[2])
        if mark and mark not in self.mark_times:
            self.mark_times[mark] = t
        return t

    def _send(self, sender, data: bytes, at, mark):
        done = super()._send(sender, data, at, mark)
        if len(self._packets) >= self._spill_packets or self._held_bytes >= self._spill_bytes:
            self._spill()
        return done

    @property
    def end_ts(self) -> float:
        """Time of the last packet emitted so far."""
        return max(self.client.last_tx, self.server.last_tx)

    # -- spilling ------------------------------------------------------------------------------

    def _spill(self) -> None:
        watermark = min(self.client.last_tx, self.server.last_tx)
        old = [p for p in self._packets if p[0] < watermark]
        if not old:
            return
        self._packets = [p for p in self._packets if p[0] >= watermark]
        self._held_bytes = sum(len(p[2]) for p in self._packets)
        old.sort(key=lambda p: (p[0], p[1]))
        if self._spill_handle is None:
            fd, self._spill_path = tempfile.mkstemp(prefix="dissect902-spill-", suffix=".bin", dir=self._spill_dir)
            self._spill_handle = os.fdopen(fd, "wb", buffering=1 << 20)
        write = self._spill_handle.write
        for t, _, packet, mark in old:
            name = mark.encode() if mark else b""
            write(_SPILL.pack(t, len(packet), len(name)))
            write(packet)
            write(name)
        self._spilled += len(old)
        cutoff = watermark - 2 * self.rtt - 6 * self.jitter - 0.05
        for side in (self.client, self.server):
            for times, values in ((side.sent_t, side.sent_tsval), (side.ack_t, side.ack_v), (side.rcv_t, side.rcv_v)):
                i = bisect.bisect_left(times, cutoff) - 1
                if i > 0:
                    del times[:i]
                    del values[:i]

    def _read_spill(self) -> Iterator[tuple[float, bytes, str | None]]:
        if self._spill_path is None:
            return
        self._spill_handle.flush()
        with open(self._spill_path, "rb", buffering=1 << 20) as handle:
            read = handle.read
            size = _SPILL.size
            while True:
                head = read(size)
                if len(head) < size:
                    return
                t, n, m = _SPILL.unpack(head)
                packet = read(n)
                name = read(m).decode() if m else None
                yield t, packet, name

    def records(self) -> Iterator[tuple[float, bytes, str | None]]:
        """Time-ordered ``(ts, ip_packet, mark)``: the spill file, then what is still in memory.

        An iterator (re-iterable by calling again), not a list: large transfers never sit in
        memory as a whole.
        """
        for side in (self.client, self.server):
            if side.pending is not None:
                self._flush_pending(side, float("inf"))
        start = float("-inf") if self.capture_from is None else self.capture_from
        held = sorted(self._packets, key=lambda p: (p[0], p[1]))

        def generate():
            for t, packet, mark in self._read_spill():
                if t >= start:
                    yield t, packet, mark
            for t, _, packet, mark in held:
                if t >= start:
                    yield t, packet, mark

        return generate()

    def packet_count(self) -> int:
        """Packets emitted so far (spilled and held), before the capture-start filter."""
        return self._spilled + len(self._packets)

    def discard(self) -> None:
        """Remove the spill file (call after the capture has been written)."""
        if self._spill_handle is not None:
            self._spill_handle.close()
            self._spill_handle = None
        if self._spill_path and os.path.exists(self._spill_path):
            os.remove(self._spill_path)
        self._spill_path = None

    def __del__(self):
        try:
            self.discard()
        except Exception:       # interpreter shutdown: nothing useful left to do
            pass

    # -- labels ------------------------------------------------------------------------------------

    def conditions(self) -> dict:
        """Base conditions plus jitter; long loss lists are cut to ``max_events`` and counted."""
        out = super().conditions()
        injected = out["injected"]
        out["injected_total"] = len(injected)
        if len(injected) > self.max_events:
            out["injected"] = injected[: self.max_events]
        out["jitter_s"] = self.jitter
        out["bandwidth_bps"] = self.bandwidth * 8
        return out
