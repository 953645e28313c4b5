"""Optional dependencies, by the extra that installs them (``pip install 'dissect902[EXTRA]'``).

The analysis itself needs only the core dependencies. DataFrames, charts, Parquet and the live
lab import their libraries when first used, through :func:`require`, so a missing one is a
one-line error that names the extra to install instead of a traceback deep inside a command.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtra

#: module -> the extra that installs it
EXTRAS = {
    "pandas": "frames",
    "numpy": "frames",
    "matplotlib": "plots",
    "pyarrow": "parquet",
    "vncdotool": "lab",
    "pyshark": "reference",
    "scapy": "reference",
    "dask": "scale",
    "distributed": "scale",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra` saying what needs it and what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = EXTRAS.get(top, "all")
        raise MissingExtra(f"{purpose} needs {top}, which is not installed: "
                           f"pip install 'dissect902[{extra}]'") from exc
