"""Chart kinds by name (``dissect902 plot --kind``) and saving as PNG, SVG or PDF.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from matplotlib.figure import Figure

from .fingerprints import fingerprints
from .hosts import host_totals
from .style import FORMATS, STYLE
from .timeline import session_timeline
from .traffic import bytes_over_time

# -- dispatch and saving ---------------------------------------------------------------------------

KINDS: dict[str, Callable[..., Figure]] = {
    "bytes": bytes_over_time,
    "timeline": session_timeline,
    "fingerprints": fingerprints,
    "hosts": host_totals,
}


def plot(data, kind: str, **options) -> Figure:
    """The chart ``kind`` (one of :data:`KINDS`) of ``data``."""
    try:
        fn = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown chart kind {kind!r}; choose from {', '.join(KINDS)}") from None
    return fn(data, **options)


def save(fig: Figure, path: str | os.PathLike, dpi: float | None = None) -> Path:
    """Write ``fig`` as PNG, SVG or PDF, chosen by the file suffix; returns the path.
    ``dpi`` sets the PNG resolution (default ``STYLE['savefig.dpi']``, 150)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"{path}: unsupported format {fmt or '(no suffix)'!r}; use .png, .svg or .pdf")
    metadata = {"Creator": "dissect902"} if fmt != "png" else {"Software": "dissect902 (matplotlib)"}
    if fmt == "svg":
        metadata["Date"] = None  # reproducible files
    if fmt == "pdf":
        metadata["CreationDate"] = None
    fig.savefig(path, format=fmt, metadata=metadata, dpi=dpi or STYLE["savefig.dpi"])
    return path
