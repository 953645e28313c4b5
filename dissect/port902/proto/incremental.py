"""The skeleton every incremental per-direction parser shares (stage: proto).

A TCP direction arrives as chunks split anywhere, with holes (``gap``) and an end
(``finish``).  :class:`IncrementalParser` drives a subclass's state machine over each chunk
by *offsets*: a step gets ``(buf, pos)`` and returns the offset where it stopped, so no step
copies the rest of a chunk.  The few bytes a step already consumed but has to look at again
(a rejected header's tail, a sync point that started in the carry-over of the previous
chunk) are handed back with :meth:`_reparse` and parsed before the chunk goes on; they are
bounded by the parser's sync window, so a chunk costs O(len) however many false sync
candidates it holds (issue 13).

Resynchronisation after a loss is shared too: :meth:`_resync_step` searches the carry-over
``tail`` plus the chunk for the subclass's first sync point (:meth:`_sync_find`) without
joining them, keeps at most ``_SYNC_WINDOW - 1`` bytes across chunks and counts what it
skipped.  Used by ``proto.tls.stream`` (record layer, RFC 5246 §6.2) and ``proto.nfc.stream``
(NFC framing, protocol.md §6).
"""

from __future__ import annotations

from collections.abc import Callable

Finder = Callable[[bytes, int], int]


def find_in_stream(tail: bytes, buf: bytes, pos: int, window: int, find: Finder) -> int:
    """First sync point in ``tail + buf[pos:]`` (offset into that virtual buffer), or -1.

    *find(b, start)* returns the first offset >= *start* in *b* where a sync point can be
    confirmed with the bytes of *b* (it needs at most *window* bytes from its start), or -1.
    Only a junction of ``len(tail) + window`` bytes is ever built; the chunk is searched
    in place.
    """
    if tail:
        junction = tail + buf[pos:pos + window]
        at = find(junction, 0)
        if 0 <= at < len(tail):
            return at
    at = find(buf, pos)
    return -1 if at < 0 else len(tail) + at - pos


def last_bytes(tail: bytes, buf: bytes, pos: int, keep: int) -> bytes:
    """The last *keep* bytes of ``tail + buf[pos:]``, built without joining the two."""
    if keep <= 0:
        return b""
    if len(buf) - pos >= keep:
        return buf[len(buf) - keep:]
    return (tail + buf[pos:])[-keep:]


class IncrementalParser:
    """feed/gap/finish over a subclass's ``_step``; shared resync and re-parse plumbing.

    A subclass sets ``_RESYNC`` (its mode number for "looking for a sync point"),
    ``_SYNC_WINDOW`` and implements ``_step``, ``_sync_find``, ``_synced``, ``_gap``,
    ``_finish`` and ``_weird``.  It may end parsing from a step with :meth:`_halt`; the
    bytes not consumed then go to ``_halted``.
    """

    _RESYNC = -1
    _SYNC_WINDOW = 1

    def __init__(self) -> None:
        self.bytes_lost = 0
        self._mode = 0
        self._tail = b""  # resync carry-over: at most _SYNC_WINDOW - 1 bytes
        self._skipped = 0
        self._again = b""  # bytes to parse before the rest of the current chunk
        self._halting = False
        self._hits: dict | None = None  # pattern -> (buf, searched from, first hit) in this feed

    # -- public API ----------------------------------------------------------------------------

    def feed(self, data: bytes, ts: float, frame: int) -> list:
        """Parse the next chunk of this direction's bytes; return the events it completed."""
        self._check_open()
        events: list = []
        data = bytes(data)
        step = self._step
        head, hpos, pos, end = b"", 0, 0, len(data)
        while True:
            if self._again:
                head, hpos = self._again + head[hpos:], 0
                self._again = b""
            if hpos < len(head):
                hpos = step(head, hpos, ts, frame, events)
            elif pos < end:
                pos = step(data, pos, ts, frame, events)
            else:
                break
            if self._halting:
                self._halting = False
                self._halted(head[hpos:] + data[pos:] if hpos < len(head) else data[pos:], events)
                break
        self._hits = None  # holds the chunk: not kept past this call
        return events

    def gap(self, nbytes: int, ts: float, frame: int) -> list:
        """The capture lost *nbytes* of this direction; stay in step if the loss allows it."""
        self._check_open()
        if nbytes < 0:
            raise ValueError("gap size must not be negative")
        events: list = []
        if nbytes == 0:
            return events
        self.bytes_lost += nbytes
        if self._mode == self._RESYNC:
            self._tail = b""
            return events
        self._gap(nbytes, ts, frame, events)
        return events

    def finish(self, ts: float, frame: int) -> list:
        """The stream ended; report what was cut short.  Call once, at the end."""
        events: list = []
        if self._mode == self._RESYNC:
            events.append(self._weird(ts, frame, "truncated", "stream ended while resynchronising"))
            return events
        self._finish(ts, frame, events)
        return events

    # -- for subclasses ------------------------------------------------------------------------

    def _reparse(self, data: bytes) -> None:
        """Parse *data* (a few bytes already consumed) again before the rest of the chunk."""
        self._again = data + self._again

    def _halt(self) -> None:
        """Stop parsing after this step; ``_halted`` gets the bytes not consumed."""
        self._halting = True

    def _first_hit(self, buf: bytes, pattern: bytes, start: int, need: int,
                   ok: Callable[[bytes, int], bool], shift: int = 0) -> int:
        """First candidate c >= *start* (``pattern`` at ``c + shift``) that ``ok(buf, c)`` accepts.

        -1 if there is none, or if the first candidate before it lacks its *need* bytes (it
        is looked at again with the next chunk).  Remembered per chunk, so sync points
        searched from successive starts scan each byte once, not once per false candidate
        (buffers shorter than two sync windows, the junctions, are not worth remembering).
        """
        hits = self._hits
        if hits is None:
            hits = self._hits = {}
        cached = hits.get(pattern)
        if cached is not None and cached[0] is buf and cached[1] <= start and (
                cached[2] == -1 or start <= cached[2]):
            return cached[2]
        size = len(buf)
        at = buf.find(pattern, start + shift)
        hit = -1
        while at != -1:
            cand = at - shift
            if cand + need > size:
                break
            if ok(buf, cand):
                hit = cand
                break
            at = buf.find(pattern, at + 1)
        if size >= 2 * self._SYNC_WINDOW:  # a junction (shorter) is cheap to search again
            hits[pattern] = (buf, start, hit)
        return hit

    def _enter_resync(self, tail: bytes = b"", skipped: int = 0) -> None:
        """Look for the next sync point, starting with *tail* (bytes before the chunk's rest)."""
        self._mode = self._RESYNC
        self._tail = tail
        self._skipped = skipped

    def _resync_step(self, buf: bytes, pos: int, ts: float, frame: int, events: list) -> int:
        tail = self._tail
        at = find_in_stream(tail, buf, pos, self._SYNC_WINDOW, self._sync_find)
        if at < 0:
            keep = last_bytes(tail, buf, pos, self._SYNC_WINDOW - 1)
            self._skipped += len(tail) + len(buf) - pos - len(keep)
            self._tail = keep
            return len(buf)
        self._skipped += at
        self._tail = b""
        self._synced(ts, frame, events)
        self._skipped = 0
        if at < len(tail):
            self._reparse(tail[at:])
            return pos
        return pos + at - len(tail)

    # -- hooks ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        """Raise if this parser takes no more bytes."""

    def _halted(self, rest: bytes, events: list) -> None:
        raise NotImplementedError

    def _step(self, buf: bytes, pos: int, ts: float, frame: int, events: list) -> int:
        raise NotImplementedError

    def _sync_find(self, buf: bytes, start: int) -> int:
        raise NotImplementedError

    def _synced(self, ts: float, frame: int, events: list) -> None:
        """A sync point was found after ``self._skipped`` bytes: report it, set the mode."""
        raise NotImplementedError

    def _gap(self, nbytes: int, ts: float, frame: int, events: list) -> None:
        raise NotImplementedError

    def _finish(self, ts: float, frame: int, events: list) -> None:
        raise NotImplementedError

    def _weird(self, ts: float, frame: int, kind: str, detail: str) -> object:
        raise NotImplementedError
