"""Captures that begin inside a connection: finding TLS record boundaries in the first bytes seen.

A capture started after the handshake shows a stream from an arbitrary byte. TLS records are
self-delimiting (RFC 8446 §5.1: type, version, length), so a chain of several plausible headers,
each exactly where the previous length ends, marks a boundary with high confidence; holes from
snapshot length or loss are kept as holes, never guessed over.
"""

from __future__ import annotations

import bisect

from ..proto import tls as tlsmod

MIDSTREAM_SYNC_WINDOW = 64 * 1024  # how far into a mid-stream capture we look for record boundaries


class MidstreamSync:
    """The first bytes of a stream seen mid-way, holes included (snapshot length, loss), kept
    until TLS record boundaries can be found in them: a header whose length points at the next
    header, three times over, where all three headers lie in bytes that were captured."""

    MAX_PIECES = 4096

    def __init__(self) -> None:
        self.pieces: list[tuple[int, bytearray, float, int]] = []  # (stream offset, bytes, ts, frame)
        self.starts: list[int] = []
        self.end = 0
        self.known = 0
        self.scanned = 0  # stream offset up to which start positions were judged
        self.retry: list[int] = []  # starts whose chain ran past the data: judged again later

    def data(self, data: bytes, ts: float, frame: int) -> None:
        if self.pieces and self.starts[-1] + len(self.pieces[-1][1]) == self.end:
            self.pieces[-1][1].extend(data)
        else:
            self.pieces.append((self.end, bytearray(data), ts, frame))
            self.starts.append(self.end)
        self.end += len(data)
        self.known += len(data)

    def gap(self, nbytes: int) -> None:
        self.end += nbytes

    @property
    def full(self) -> bool:
        return self.known >= MIDSTREAM_SYNC_WINDOW or len(self.pieces) >= self.MAX_PIECES

    def _header(self, pos: int):
        i = bisect.bisect_right(self.starts, pos) - 1
        if i < 0:
            return None
        off, buf, _, _ = self.pieces[i]
        j = pos - off
        return (buf, j) if j + 5 <= len(buf) else None

    def _chain(self, pos: int, links: int) -> bool | None:
        """True: ``links`` chained headers start at ``pos``; False: never (a header is implausible
        or falls in a hole); None: not yet (the chain runs past what has arrived)."""
        plausible = tlsmod.plausible_record_header
        for _ in range(links):
            if pos + 5 > self.end:
                return None
            hit = self._header(pos)
            if hit is None or not plausible(hit[0], hit[1]):
                return False
            b, j = hit
            pos += 5 + ((b[j + 3] << 8) | b[j + 4])
        return True

    def find(self, links: int = 3) -> int | None:
        """Stream offset of the first header that starts a chain of ``links`` headers.  Each
        position is judged once; only chains that ran past the data so far are tried again, so
        collecting a window costs time linear in its size."""
        retry, self.retry = self.retry, []
        fresh = [off + i for off, buf, _, _ in self.pieces if off + len(buf) > self.scanned
                 for i in range(max(0, self.scanned - off), len(buf))]
        self.scanned = self.end
        found = None
        for pos in sorted(retry) + fresh:
            state = self._chain(pos, links)
            if state and found is None:
                found = pos
            elif state is None:
                self.retry.append(pos)
        return found


def find_record_chain(data: bytes, links: int = 3) -> int | None:
    """Offset of the first position where ``links`` TLS record headers follow each other:
    where the record boundaries are in a stream picked up mid-way.  Three chained headers
    by chance in encrypted bytes are about as likely as 1 in 10**14.  None if not found yet."""
    n = len(data)
    plausible = tlsmod.plausible_record_header
    for start in range(min(n, MIDSTREAM_SYNC_WINDOW)):
        pos, seen = start, 0
        while pos + 5 <= n and plausible(data, pos):
            pos += 5 + ((data[pos + 3] << 8) | data[pos + 4])
            seen += 1
            if seen >= links:
                return start
    return None
