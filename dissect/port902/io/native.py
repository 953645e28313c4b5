"""The optional C extension ``_fastscan``: loaded when built and current, chosen unless told otherwise.

``setup.py`` builds it when a compiler is there; without it the pure-Python engine runs
(``DISSECT902_PURE_PYTHON=1`` forces that). A stale build from another version is ignored, and so
is one whose selection constants (the greetings, what is kept of a control port) are not
``formats``' own: the rules are defined once, in Python, and the C copies must match them.
"""

from __future__ import annotations

import os
from types import ModuleType

from .formats import AUTHD_GREETING, CONTROL_FIRST_BYTES, CONTROL_TCP_FLAGS, RFB_GREETING

API_VERSION = 5  # the extension's API_VERSION this package speaks

# The extension's API (constants, both scanners' argument lists, what they return) is declared
# once, in its stub ``_fastscan.pyi``; the engine imports the module itself for typed access
# (``from . import _fastscan``) after ``loaded()`` said the build is there and current.
_fastscan: ModuleType | None
try:  # the C engine; optional (setup.py builds it when a compiler is available)
    from . import _fastscan as _built
except ImportError:  # pragma: no cover - depends on the build
    _fastscan = None
else:
    if (getattr(_built, "API_VERSION", None) != API_VERSION or getattr(_built, "GREETING", None) != AUTHD_GREETING
            or getattr(_built, "RFB_GREETING", None) != RFB_GREETING
            or getattr(_built, "CONTROL_TCP_FLAGS", None) != CONTROL_TCP_FLAGS
            or getattr(_built, "CONTROL_FIRST_BYTES", None) != CONTROL_FIRST_BYTES):
        _fastscan = None  # a stale build from another version: do not trust it
    else:
        _fastscan = _built
    del _built


def loaded() -> ModuleType:
    """The extension, for the C engine's driver (which ``CaptureReader`` picks only when it is loaded);
    raises when it is not built or stale.  Its typed API: ``from . import _fastscan`` (the stub)."""
    if _fastscan is None:
        raise RuntimeError("the C engine (dissect.port902.io._fastscan) is not built (no compiler when it was installed?)")
    return _fastscan

ENGINES = ("c", "python")


def default_engine() -> str:
    """'c' when the extension is built and DISSECT902_PURE_PYTHON is not set, else 'python'."""
    if _fastscan is None or os.environ.get("DISSECT902_PURE_PYTHON", "").strip() not in ("", "0"):
        return "python"
    return "c"
