"""The optional C extension ``_fastscan``: loaded when built and current, chosen unless told otherwise.

``setup.py`` builds it when a compiler is there; without it the pure-Python engine runs
(``DISSECT902_PURE_PYTHON=1`` forces that). A stale build from another version is ignored.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

from .formats import AUTHD_GREETING, RFB_GREETING

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from ._fastscan import ScanResult
    from .packet import Packet


class FastScan(Protocol):
    """What the engine uses of the extension (typed in ``_fastscan.pyi``, which mypy checks against this)."""

    API_VERSION: int
    STOP_NEED_MORE: int
    STOP_SLOW: int
    STOP_FAULT: int
    F_ICMP: int
    F_GREET: int
    F_UDP: int
    F_DECODE: int
    IFACE_NONE: int
    GREETING: bytes
    RFB_GREETING: bytes

    def scan_pcap(self, buf: Buffer, off: int, big_endian: bool, limit: int, etoff: int, l3off: int, frame: int,
                  tcp_map: bytearray, ctl_map: Buffer, udp_map: Buffer, flags: int, max_bytes: int,
                  max_selected: int, packet_type: type[Packet], tsinfo: tuple[int, int], /) -> ScanResult: ...

    def scan_pcapng(self, buf: Buffer, off: int, big_endian: bool, ifaces: Buffer, frame: int, tcp_map: bytearray,
                    ctl_map: Buffer, udp_map: Buffer, flags: int, max_bytes: int, max_selected: int,
                    packet_type: type[Packet], tsinfo: list[tuple[int, int] | None], /) -> ScanResult: ...


_fastscan: FastScan | None
try:  # the C engine; optional (setup.py builds it when a compiler is available)
    from . import _fastscan as _built
except ImportError:  # pragma: no cover - depends on the build
    _fastscan = None
else:
    if (getattr(_built, "API_VERSION", None) != 4 or getattr(_built, "GREETING", None) != AUTHD_GREETING
            or getattr(_built, "RFB_GREETING", None) != RFB_GREETING):
        _fastscan = None  # a stale build from another version: do not trust it
    else:
        _fastscan = _built
    del _built


def loaded() -> FastScan:
    """The extension, for the C engine's driver (which ``CaptureReader`` picks only when it is loaded)."""
    if _fastscan is None:
        raise RuntimeError("the C engine (dissect.port902.io._fastscan) is not built (no compiler when it was installed?)")
    return _fastscan

ENGINES = ("c", "python")


def default_engine() -> str:
    """'c' when the extension is built and DISSECT902_PURE_PYTHON is not set, else 'python'."""
    if _fastscan is None or os.environ.get("DISSECT902_PURE_PYTHON", "").strip() not in ("", "0"):
        return "python"
    return "c"
