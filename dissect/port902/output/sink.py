"""Where every command's output goes, and how a command fails: one line on stderr, exit code 2.

Every command (``analyze``, ``doctor``, ``plot``, ``lab``, the Parquet writer) opens its output
through :func:`open_output`, :func:`output_file` or :func:`output_dir`.  They refuse what cannot
work *before* the analysis runs (a directory where a file is wanted, a file where a folder is
wanted, an unwritable place), create missing parent directories (``-o charts/site.png``), and
turn every ``OSError`` into an :class:`OutputError` with a sentence a user can act on.
:func:`cli.main.main` prints any :class:`~dissect.port902.errors.Port902Error` that reaches it
as ``dissect902 COMMAND: error: ...`` and returns 2, so no command shows a traceback for a
file-system problem.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path
from typing import IO, Iterator

from ..errors import Port902Error

EXIT_USAGE = 2


class OutputError(Port902Error):
    """An output path cannot be written (the message is the whole sentence)."""


def _safe(text: object) -> str:
    from .render import safe

    return safe(text)


def error(prog: str, message: object) -> int:
    """Print ``PROG: error: MESSAGE`` (one line, control characters escaped); returns 2."""
    print(f"{prog}: error: {_safe(message)}", file=sys.stderr)
    return EXIT_USAGE


def describe_os_error(exc: OSError, path: object, doing: str = "write") -> str:
    """``cannot write PATH: Permission denied`` — the file the OS named, else ``path``."""
    where = exc.filename if exc.filename is not None else path
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EISDIR:
        return f"{os.fspath(where)}: is a directory (give a file name)"
    return f"cannot {doing} {os.fspath(where)}: {reason}"


def _make_parent(path: Path) -> None:
    parent = path.parent
    if parent.is_dir():
        return
    if parent.exists():
        raise OutputError(f"{parent}: exists and is not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(describe_os_error(exc, parent, "create")) from None


def output_file(path: str | os.PathLike, *, overwrite: bool = True, make_parents: bool = True) -> Path:
    """Check that ``path`` can become a file and create its parent directories; returns it.

    Raises :class:`OutputError` for a directory, an existing file when ``overwrite`` is false,
    a parent that is a file, or a place where nothing can be created."""
    p = Path(path)
    if p.is_dir() or os.fspath(path).endswith(("/", os.sep)):  # Path() drops a trailing slash
        raise OutputError(f"{os.fspath(path)}: is a directory (give a file name)")
    if p.exists() and not overwrite:
        raise OutputError(f"{p}: already exists (remove it or choose another name)")
    if make_parents:
        _make_parent(p)
    elif not p.parent.is_dir():
        raise OutputError(f"{p.parent}: no such directory")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputError(f"cannot write {p}: Permission denied")
    if not p.exists() and not os.access(p.parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {p}: Permission denied (in {p.parent})")
    return p


def output_dir(path: str | os.PathLike) -> Path:
    """Check that ``path`` is (or can become) a writable folder, creating it; returns it."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{p}: exists and is not a directory (the lab writes a folder of captures)")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(describe_os_error(exc, p, "create")) from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into {p}: Permission denied")
    return p


def escape_unencodable(*streams: IO) -> None:
    """On a terminal or pipe whose encoding cannot show every character (``LC_ALL=C``,
    ``PYTHONIOENCODING=ascii``), write what it cannot encode as ``\\xNN`` escapes instead of
    failing with ``UnicodeEncodeError``: a DNS name or banner byte from a capture is data."""
    for stream in streams:
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
        if encoding not in ("utf8", "utf8sig") and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a closed or detached stream: nothing will be written
                pass


@contextlib.contextmanager
def open_output(path: str | os.PathLike | None, *, binary: bool = False,
                make_parents: bool = True) -> Iterator[IO]:
    """Standard output for None or ``-``, else the file opened for writing (parents created).

    An ``OSError`` while opening, writing or closing the file becomes an :class:`OutputError`
    (``BrokenPipeError`` on standard output passes through: ``main`` handles pipes)."""
    if path is None or os.fspath(path) == "-":
        if sys.stdout is None:  # started with standard output closed (``cmd >&-``)
            raise OutputError("cannot write output: standard output is closed (give -o FILE)")
        yield sys.stdout.buffer if binary else sys.stdout
        return
    p = output_file(path, make_parents=make_parents)
    try:
        handle = open(p, "wb") if binary else open(p, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise OutputError(describe_os_error(exc, p)) from None
    try:
        with handle:
            yield handle
    except OutputError:
        raise
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise OutputError(describe_os_error(exc, p)) from None


__all__ = ["EXIT_USAGE", "OutputError", "describe_os_error", "error", "escape_unencodable", "open_output",
           "output_dir", "output_file"]
