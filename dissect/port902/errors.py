"""Exceptions shared by every dissect.port902 stage.

An incremental parser has to tell two kinds of failure apart (dpkt's split):
*need more data* means "call again once more bytes have arrived", *malformed*
means "these bytes will never parse, report them and move on".  Both derive from
:class:`Port902Error`, so a caller can catch everything this package raises
with one clause; :class:`Malformed` is also a ``ValueError`` because that is
what it is to code that knows nothing about us.
"""

from __future__ import annotations

__all__ = ["Port902Error", "Malformed", "NeedMoreData", "CaptureError", "MissingExtra"]


class Port902Error(Exception):
    """Base class of every error raised on purpose by dissect.port902."""


class Malformed(Port902Error, ValueError):
    """The bytes contradict the wire format; more bytes will not help."""


class NeedMoreData(Port902Error):
    """The buffer ends before the structure does; retry with more bytes."""


class CaptureError(Port902Error):
    """A capture file cannot be read (raised by the capture stage)."""


class MissingExtra(Port902Error, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""
