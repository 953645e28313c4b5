"""Shared look of every chart: the Okabe–Ito palette, feature colours, caps, units and clock axes.

matplotlib only, no pyplot (no global state); ``Chart`` is a Figure that renders itself in Jupyter.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, Locator

# -- palette ----------------------------------------------------------------------------------

#: Okabe & Ito (2008), "Color Universal Design": eight colours that stay distinct for
#: deuteranopia, protanopia and tritanopia.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
GREY = "#999999"
LIGHT = "#EEEEEE"

FEATURE_ORDER = ("MKS", "NFC", "SOAP", "VMXARGS", "UNKNOWN", "NONE")
FEATURE_COLORS = {
    "MKS": OKABE_ITO["blue"],
    "NFC": OKABE_ITO["orange"],
    "SOAP": OKABE_ITO["bluish_green"],
    "VMXARGS": OKABE_ITO["reddish_purple"],
    "UNKNOWN": OKABE_ITO["black"],
    "NONE": GREY,
}
FEATURE_MEANING = {
    "MKS": "console",
    "NFC": "file / disk copy",
    "SOAP": "ServerDaemonProtocol",
    "VMXARGS": "CONNECT_ARGV family",
    "UNKNOWN": "not classified",
    "NONE": "no feature used",
}
#: colours with enough contrast for white text on top
_DARK = {OKABE_ITO["blue"], OKABE_ITO["bluish_green"], OKABE_ITO["black"], OKABE_ITO["vermillion"]}
HANDOFF_COLOR = OKABE_ITO["vermillion"]
RECONNECT_COLOR = "#555555"
CLIENT_MARK = OKABE_ITO["black"]

STYLE = {
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.titlesize": 11,
    "figure.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "hatch.linewidth": 0.8,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "text.parse_math": False,  # labels may carry capture text: a "$" is a dollar, never mathtext
}

TRAFFIC_BINS = 120  # target number of time bins in bytes_over_time
MAX_BINS = 20_000  # a finer --bin on a long capture is coarsened to this
MAX_LABELED_ROWS = 40  # timeline: above this, row labels are thinned and bar texts dropped
MAX_ROWS = 300  # timeline: above this, sessions are packed into lanes
MAX_LINKS = 200  # timeline: hand-off arrows drawn at most
MAX_LINK_NAMES = 8  # timeline: arrows are named (why, gap) when there are at most this many
MAX_RECONNECT_LINKS = 60  # timeline: above this many reconnects (or when packed), they are counted, not drawn
BAR_HEIGHT = 0.56
MAX_POINTS = 4_000  # fingerprints: above this per panel, records are aggregated per cell
MAX_LINE_NAMES = 24  # fingerprints: readable authd lines are named up to this many per panel
LINEAR_S = 0.1  # fingerprints: time axes stay linear at least this long
FORMATS = ("png", "svg", "pdf")

# -- small helpers: units and time ------------------------------------------------------------------

_UNITS = (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1.0))


def human_bytes(n: float) -> str:
    """``1234567`` -> ``'1.23 MB'`` (decimal units, as the CLI table prints them)."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "-"
    for unit, div in _UNITS:
        if abs(n) >= div or div == 1.0:
            return f"{n:.0f} B" if div == 1.0 else f"{n / div:.3g} {unit}"
    return f"{n:.0f} B"  # pragma: no cover


def _unit_for(max_value: float) -> tuple[str, float]:
    for unit, div in _UNITS:
        if max_value >= div:
            return unit, div
    return "B", 1.0


_NICE_STEPS = (
    1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30,
    60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800,
)


def nice_step(span: float, target: int) -> float:
    """The smallest clock-friendly step that cuts ``span`` seconds into at most ``target`` parts."""
    raw = max(span, 1e-9) / max(1, target)
    for step in _NICE_STEPS:
        if step >= raw:
            return float(step)
    return float(_NICE_STEPS[-1] * math.ceil(raw / _NICE_STEPS[-1]))


def clock(t: float, step: float = 1.0) -> str:
    """Seconds -> ``mm:ss`` (``h:mm:ss`` past an hour, ``Nd hh:mm`` past a day), with as many
    decimals as ``step`` needs: the format of the samples' README timelines."""
    decimals = 0 if step >= 1 else 1 if step >= 0.1 else 2 if step >= 0.01 else 3
    sign = "-" if t < 0 else ""
    t = round(abs(t), decimals)
    days, rem = divmod(t, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    sec = f"{seconds:0{3 + decimals}.{decimals}f}" if decimals else f"{int(seconds):02d}"
    if days:
        return f"{sign}{int(days)}d {int(hours):02d}:{int(minutes):02d}"
    if hours:
        return f"{sign}{int(hours)}:{int(minutes):02d}:{sec}"
    return f"{sign}{int(minutes):02d}:{sec}"


class ClockLocator(Locator):
    """Ticks at clock-friendly steps (1, 2, 5, 10, 15, 30 s, 1, 2, 5 min, ...)."""

    def __init__(self, target: int = 8) -> None:
        self.target = target
        self.step = 1.0

    def __call__(self):
        lo, hi = self.axis.get_view_interval()
        return self.tick_values(lo, hi)

    def tick_values(self, vmin, vmax):
        lo, hi = min(vmin, vmax), max(vmin, vmax)
        self.step = nice_step(hi - lo, self.target)
        first = math.ceil(lo / self.step) * self.step
        return np.arange(first, hi + self.step * 1e-6, self.step)


def _clock_axis(ax, t0: float, target: int = 8, label: bool = True) -> None:
    loc = ClockLocator(target)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: clock(x, loc.step)))
    if label:
        ax.set_xlabel(_time_label(ax, t0))


def _time_label(ax, t0: float) -> str:
    lo, hi = ax.get_xlim()
    fmt = "h:mm:ss" if max(abs(lo), abs(hi)) >= 3600 else "mm:ss"
    ts = pd.Timestamp(t0, unit="s", tz="UTC")
    start = ts.strftime("%Y-%m-%d %H:%M:%S") + (f".{ts.microsecond // 1000:03d}" if ts.microsecond >= 1000 else "")
    start += " UTC"
    return f"time since the first packet ({fmt}); 00:00 = {start}"


def _secs(col: pd.Series) -> np.ndarray:
    """A datetime column -> float epoch seconds (NaN for missing), whatever its resolution."""
    if len(col) == 0:
        return np.empty(0, dtype=float)
    ts = pd.to_datetime(col, utc=True)
    return ((ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(dtype=float, na_value=np.nan)


def _num(col: pd.Series) -> np.ndarray:
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan) if len(col) else \
        np.empty(0, dtype=float)


def _features_in(values) -> list[str]:
    present = {str(v) for v in values if isinstance(v, str) or not pd.isna(v)}
    return [f for f in FEATURE_ORDER if f in present] + sorted(present - set(FEATURE_ORDER))




def _color(feature: str) -> str:
    return FEATURE_COLORS.get(feature, OKABE_ITO["sky_blue"])


class Chart(Figure):
    """A matplotlib Figure that shows itself in Jupyter with no pyplot and no ``%matplotlib``
    magic (IPython calls ``_repr_png_``); everything else is plain ``Figure``."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100)
        return buf.getvalue()


def _new_figure(width: float, height: float) -> Chart:
    return Chart(figsize=(width, height), layout="constrained")


def _empty(fig: Figure, ax, message: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=10, color="#444444",
            wrap=True)


