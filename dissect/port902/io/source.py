"""Where a capture's bytes come from (stage 1, io): a file, ``-`` (standard input), a FIFO or an open stream.

``tcpdump -w - | dissect902 analyze -`` and ``mkfifo`` pipes cannot seek, cannot be memory-mapped
and have no size.  :func:`open_source` gives the reader the same three things for all of them:
the stream to decode (un-gzipped when it starts with the gzip magic), the raw byte source under
it (whose ``tell()`` counts the bytes taken so far, for the progress callback) and the size in
bytes (None when unknown).  The first bytes are looked at without seeking: they are read once and
handed out again before the rest.  An open binary stream (``subprocess.Popen(...).stdout`` of a
live ``tcpdump -w -``) is accepted as well; the reader reads it with ``read1`` so that a live pipe
is consumed as its data arrives, not in 8 MiB steps.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
from typing import Any, BinaryIO, Iterator

from ..errors import CaptureError
from .formats import GZIP_MAGIC

STDIN = "-"


class PipeSource:
    """A non-seekable byte stream with its first bytes put back, counting what it hands out."""

    def __init__(self, fh: BinaryIO, head: bytes, name: str, close: bool = True) -> None:
        self._fh = fh
        self._head = head
        self._taken = 0
        self._close = close
        self.name = name
        self.mode = "rb"  # gzip.GzipFile asks

    def read(self, n: int = -1) -> bytes:
        head = self._head
        if head:
            if n is None or n < 0:
                self._head = b""
                data = head + self._fh.read()
            elif n <= len(head):
                self._head = head[n:]
                data = head[:n]
            else:
                self._head = b""
                data = head + self._read_more(n - len(head))
        else:
            data = self._fh.read() if n is None or n < 0 else self._read_more(n)
        self._taken += len(data)
        return data

    def _read_more(self, n: int) -> bytes:
        read1 = getattr(self._fh, "read1", None)
        return read1(n) if read1 is not None else self._fh.read(n)

    read1 = read  # what a stream has now, up to n bytes (at least one unless it ended)

    def tell(self) -> int:
        return self._taken

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return bool(getattr(self._fh, "closed", False))

    def close(self) -> None:
        if self._close:
            self._fh.close()


def source_name(path: object) -> str:
    """How a source is named in results and messages."""
    if isinstance(path, (str, os.PathLike)):
        return str(os.fspath(path))
    return str(getattr(path, "name", "<stream>"))


def read_head(fh: Any, want: int) -> bytes:
    """Up to ``want`` bytes, fewer only at the end of the stream (a pipe may deliver fewer per read)."""
    parts, got = [], 0
    while got < want:
        part = fh.read(want - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def extend(tail: bytes, chunk: bytes, chunks: Iterator[bytes], need: int) -> bytes:
    """``tail + chunk``, and the following chunks while fewer than ``need`` bytes are there.

    The unread tail of a buffer is a record cut by the end of a chunk.  Joining it to each next
    chunk in turn copies it again and again while it grows: quadratic in the size of a record
    that spans many chunks (a large record read from a pipe in 64 KB pieces).  Collecting the
    chunks the record needs and joining once is linear; nothing past ``need`` is waited for, so
    a live pipe is never read further ahead than the record that is already on its way."""
    if need <= len(tail) + len(chunk):
        return tail + chunk
    parts, have = [tail, chunk], len(tail) + len(chunk)
    while have < need:
        more = next(chunks, None)
        if more is None:
            break
        parts.append(more)
        have += len(more)
    return b"".join(parts)


def open_source(path: object) -> tuple[Any, Any, int | None]:
    """(stream to decode, raw source, size in bytes or None): see the module docstring."""
    name = source_name(path)
    if isinstance(path, (str, os.PathLike)):
        if os.fspath(path) == STDIN:
            fh: BinaryIO = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
        else:
            try:
                fh = open(path, "rb")  # noqa: SIM115 - closed by CaptureReader.close
            except OSError as exc:
                raise CaptureError(f"cannot open {name}: {exc.strerror or exc}") from exc
        owned = True
    else:
        fh, owned = path, False  # type: ignore[assignment]
    try:
        st = os.fstat(fh.fileno())
        regular = stat.S_ISREG(st.st_mode)
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        st, regular = None, False
    if regular and owned:
        head = fh.read(2)
        fh.seek(0)
        raw: Any = fh
        size: int | None = st.st_size if st is not None else None
    else:  # a pipe, a FIFO, a socket, a terminal, a caller's stream: no seeking, no size
        head = read_head(fh, 2)
        raw = PipeSource(fh, head, name, close=owned)
        size = None
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw, size
    return raw, raw, size
