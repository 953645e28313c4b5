"""The optional C extension ``_fastscan``: loaded when built and current, chosen unless told otherwise.

``setup.py`` builds it when a compiler is there; without it the pure-Python engine runs
(``DISSECT902_PURE_PYTHON=1`` forces that). A stale build from another version is ignored.
"""

from __future__ import annotations

import os

from .formats import AUTHD_GREETING

try:  # the C engine; optional (setup.py builds it when a compiler is available)
    from . import _fastscan
except ImportError:  # pragma: no cover - depends on the build
    _fastscan = None
else:
    if getattr(_fastscan, "API_VERSION", None) != 2 or getattr(_fastscan, "GREETING", None) != AUTHD_GREETING:
        _fastscan = None  # a stale build from another version: do not trust it

ENGINES = ("c", "python")


def default_engine() -> str:
    """'c' when the extension is built and DISSECT902_PURE_PYTHON is not set, else 'python'."""
    if _fastscan is None or os.environ.get("DISSECT902_PURE_PYTHON", "").strip() not in ("", "0"):
        return "python"
    return "c"
