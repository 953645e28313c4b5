"""What the NFC parser emits: messages, AIO frames and weird events.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NfcMessage:
    """A classic message; ts/frame of its first byte; extra_len = bytes after the 264."""

    ts: float
    frame: int
    msg_type: int
    name: str
    fields: dict
    extra_len: int


@dataclass(frozen=True, slots=True)
class NfcAio:
    """An AIO frame; size = payload bytes, extra_len = bytes after the payload."""

    ts: float
    frame: int
    aio_type: int
    name: str
    size: int
    op_id: int
    extra_len: int
    fields: dict


@dataclass(frozen=True, slots=True)
class NfcWeird:
    """Something malformed or unexpected, reported instead of raised."""

    ts: float
    frame: int
    kind: str
    detail: str


class _Bad(Exception):
    """A message whose fields cannot be right: report it and resynchronise."""


