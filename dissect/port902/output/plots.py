"""Charts of an analysis: traffic over time, sessions, record-size fingerprints, hosts.

Four chart kinds (``dissect902 plot --kind``), each a function that takes an
:class:`~dissect.port902.analysis.Analysis` (or a sessions DataFrame plus the frames it
needs) and returns a matplotlib Figure:

``bytes_over_time``
    TCP payload per time bin, stacked by feature, server->client above and
    client->server below, each with its own scale (a console receives ten times what it
    sends).  Where TLS is visible the bytes are placed at the time of each TLS record
    (header + length), readable authd lines at their own time.  Bytes nothing accounts
    for - cleartext NFC after TLS #1, records beyond ``max_records`` - have no per-packet
    time in a session record, so they are spread evenly from the session's last timed
    byte to its end, and the chart says how many bytes that was.  ``traffic_frame``
    returns the numbers.
``session_timeline``
    One bar per session from first to last packet, coloured by feature, with arrows for
    classic ESX's 903->902 hand-offs (``correlate``) and for reconnects (``links_frame``:
    a retry after a failure, a console reopened on the same VM or on another host), and
    markers for SYN retries, the second TLS handshake and sessions that began before the
    capture.
``fingerprints``
    TLS record length x time, one panel per session: why MKS (a long trickle of tiny
    client records - keys, pointer - and bursts of screen updates), NFC (a fraction of
    a second of 16 KiB records) and SOAP (a few large records both ways inside TLS #1)
    look different although everything is encrypted.
``host_totals``
    Bytes and sessions per server (ESXi host) and per client, stacked by feature.

``feature_distributions`` (notebook 4) draws the classifier's inputs per label against
the thresholds in ``classify.py``.

Design rules (design.md; the issue): matplotlib only and no pyplot (no global state,
safe under any backend; figures are :class:`Chart`, a Figure that also renders itself in
Jupyter); the Okabe-Ito palette, which stays distinguishable for the common
colour-vision deficiencies; titles, units and legends on every chart; times as mm:ss
since the first packet with the absolute UTC start in the axis label; big captures are
binned (traffic), packed into lanes (timeline) or aggregated per cell (fingerprints)
rather than drawn point by point; labels are capped so busy timelines stay legible; an
empty analysis gives a figure that says there is nothing to draw.
"""

from __future__ import annotations

import heapq
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, Locator, MaxNLocator

from ..model.schema import FRAME_TABLES, build

__all__ = [
    "OKABE_ITO", "FEATURE_COLORS", "FEATURE_ORDER", "KINDS", "FORMATS", "Chart",
    "bytes_over_time", "session_timeline", "fingerprints", "host_totals", "feature_distributions", "plot", "save",
    "traffic_frame", "links_frame", "human_bytes", "clock",
]

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
}

RECONNECT_WINDOW_S = 60.0  # a client back to the same server / VM within this is a reconnect
RECONNECT_OVERLAP_S = 1.0  # the new session may start this much before the old one's last packet
CONSOLE_MOVE_S = 15.0  # an MKS session on another host this soon after the last one: the console moved
RECONNECT_LOOKBACK = 16  # earlier sessions of the same client considered per session
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


def hostport(ip, port) -> str:
    """``10.0.0.1:902``; ``[fd00::1]:902`` for IPv6, as the CLI prints them."""
    ip = str(ip)
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


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


# -- inputs: an Analysis or DataFrames ----------------------------------------------------------------


@dataclass
class Inputs:
    """The frames a chart reads, restricted to one set of sessions, and time zero."""

    sessions: pd.DataFrame
    records: pd.DataFrame
    dialogue: pd.DataFrame
    handshakes: pd.DataFrame
    handoffs: pd.DataFrame
    t0: float
    name: str
    syn_times: dict[str, list[float]] = field(default_factory=dict)


def _empty_frame(name: str) -> pd.DataFrame:
    return build(FRAME_TABLES[name], [])


def inputs(data, *, uids: Iterable[str] | None = None, features: Iterable[str] | None = None,
           records: pd.DataFrame | None = None, dialogue: pd.DataFrame | None = None,
           handshakes: pd.DataFrame | None = None, handoffs: pd.DataFrame | None = None) -> Inputs:
    """Normalise what a chart was given.

    ``data`` is an ``Analysis`` (every frame is taken from it unless passed explicitly) or a
    sessions DataFrame (``analysis.sessions_frame()``, possibly filtered): then the other
    frames are optional, and each is restricted to the sessions in it.  ``uids`` (full
    uids or prefixes; an unknown one raises ``KeyError``) and ``features`` narrow the
    sessions further.
    """
    syn: dict[str, list[float]] = {}
    if isinstance(data, pd.DataFrame):
        sessions = data
        records = _empty_frame("tls_records") if records is None else records
        dialogue = _empty_frame("dialogue") if dialogue is None else dialogue
        handshakes = _empty_frame("handshakes") if handshakes is None else handshakes
        handoffs = _empty_frame("handoffs") if handoffs is None else handoffs
        starts = _secs(sessions["start"]) if "start" in sessions else np.empty(0)
        t0 = float(np.nanmin(starts)) if len(starts) and not np.all(np.isnan(starts)) else 0.0
        sources = sorted({str(s) for s in sessions.get("source", pd.Series(dtype=str)).dropna()})
    elif hasattr(data, "sessions_frame"):
        sessions = data.sessions_frame()
        records = data.tls_records_frame() if records is None else records
        dialogue = data.dialogue_frame() if dialogue is None else dialogue
        handshakes = data.handshakes_frame() if handshakes is None else handshakes
        handoffs = data.handoffs_frame() if handoffs is None else handoffs
        firsts = [c.first_ts for c in getattr(data, "captures", []) if c.first_ts is not None]
        firsts += [s.start for s in data.sessions]
        t0 = min(firsts) if firsts else 0.0
        sources = [c.path for c in getattr(data, "captures", [])] or sorted({s.source for s in data.sessions})
        syn = {s.uid: list(s.syn_times) for s in data.sessions}
    else:
        raise TypeError(f"expected an Analysis or a sessions DataFrame, not {type(data).__name__}")
    if uids is not None:
        wanted = [str(u) for u in uids]
        ids = sessions["uid"].astype(str)
        missing = [w for w in wanted if not ids.str.startswith(w).any()]
        if missing:
            raise KeyError(f"no session with uid {', '.join(missing)}")
        sessions = sessions[ids.map(lambda u: any(u.startswith(w) for w in wanted))]
    if features is not None:
        sessions = sessions[sessions["feature"].astype(str).isin([str(f) for f in features])]
    uids = set(sessions["uid"].dropna()) if "uid" in sessions else set()
    records = records[records["uid"].isin(uids)]
    dialogue = dialogue[dialogue["uid"].isin(uids)]
    handshakes = handshakes[handshakes["uid"].isin(uids)]
    handoffs = handoffs[handoffs["from_session"].isin(uids) & handoffs["to_session"].isin(uids)]
    if not sources:
        name = "no capture"
    elif len(sources) == 1:
        name = os.path.basename(sources[0])
    else:
        name = f"{len(sources)} captures"
    return Inputs(sessions.reset_index(drop=True), records, dialogue, handshakes, handoffs, t0, name, syn)


# -- traffic over time ------------------------------------------------------------------------------


@dataclass
class Traffic:
    edges: np.ndarray  # bin edges, seconds since t0
    features: list[str]
    s2c: np.ndarray  # [feature, bin] bytes
    c2s: np.ndarray
    bin_s: float
    spread: tuple[int, int]  # bytes placed by spreading (c2s, s2c): cleartext without per-packet time
    sessions: dict[str, int]  # sessions per feature
    totals: dict[str, int]  # bytes per feature, both directions


def _traffic(inp: Inputs, bin_s: float | None) -> Traffic:
    S = inp.sessions
    feats = _features_in(S["feature"]) if len(S) else []
    fidx = {f: i for i, f in enumerate(feats)}
    start = _secs(S["start"]) - inp.t0 if len(S) else np.empty(0)
    end = _secs(S["end"]) - inp.t0 if len(S) else np.empty(0)
    lo = float(np.nanmin(start)) if len(S) else 0.0
    hi = max(lo + 1e-3, float(np.nanmax(end))) if len(S) else 1.0
    if bin_s is None or bin_s <= 0:
        bin_s = nice_step(hi - lo, TRAFFIC_BINS)
    if (hi - lo) / bin_s > MAX_BINS:
        bin_s = nice_step(hi - lo, MAX_BINS)
    first = math.floor(lo / bin_s) * bin_s
    nb = max(1, int(math.ceil((hi - first) / bin_s + 1e-9)))
    edges = first + bin_s * np.arange(nb + 1)
    acc = np.zeros((2, len(feats), nb))  # [direction c2s=0 / s2c=1, feature, bin]

    def index(t: np.ndarray) -> np.ndarray:
        return np.clip(np.floor((t - first) / bin_s).astype(np.int64), 0, nb - 1)

    uid_row = {u: i for i, u in enumerate(S["uid"])}
    row_f = np.array([fidx.get(str(f), 0) for f in S["feature"]], dtype=np.int64) if len(S) else np.empty(0, np.int64)
    accounted = np.zeros((len(S), 2))
    last_t = np.full((len(S), 2), np.nan)

    events: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def collect(uids: pd.Series, ts: pd.Series, direction: pd.Series, nbytes: np.ndarray) -> None:
        if not len(uids):
            return
        rows = uids.map(uid_row).to_numpy(dtype=np.int64)
        d = (direction.astype(str) == "server_to_client").to_numpy(dtype=np.int64)
        t = _secs(ts) - inp.t0
        ok = ~np.isnan(t)
        events.append((rows[ok], d[ok], t[ok], nbytes[ok]))

    R = inp.records
    collect(R["uid"], R["ts"], R["direction"], _num(R["length"]) + 5.0)  # + the 5-byte record header
    D = inp.dialogue  # readable lines: their length is an estimate (redacted secrets), scaled below
    collect(D["uid"], D["ts"], D["direction"], D["text"].fillna("").str.len().to_numpy(dtype=float) + 2.0)
    totals = np.nan_to_num(np.stack([_num(S["orig_bytes"]), _num(S["resp_bytes"])], axis=1)) if len(S) \
        else np.zeros((0, 2))
    for rows, d, t, nbytes in events:
        np.add.at(accounted, (rows, d), nbytes)
    # never place more bytes than the session carried (a redacted PASS line is longer than the real one)
    scale = np.where(accounted > totals, totals / np.maximum(accounted, 1e-9), 1.0)
    accounted = np.minimum(accounted, totals)
    for rows, d, t, nbytes in events:
        np.add.at(acc, (d, row_f[rows], index(t)), nbytes * scale[rows, d])
        order = np.argsort(t, kind="stable")  # last write wins: the latest time per (row, direction)
        prev = last_t[rows[order], d[order]]
        last_t[rows[order], d[order]] = np.fmax(prev, t[order])

    spread = [0, 0]
    if len(S):
        residual = np.clip(totals - accounted, 0, None)
        for row, d in zip(*np.nonzero(residual > 0.5)):
            amount = residual[row, d]
            a = last_t[row, d] if not np.isnan(last_t[row, d]) else start[row]
            b = end[row]
            _spread(acc[d, row_f[row]], a, b, amount, first, bin_s)
            spread[d] += int(amount)
    sessions = {f: int((S["feature"].astype(str) == f).sum()) for f in feats}
    totals_f = {f: int(acc[:, i].sum()) for i, f in enumerate(feats)}
    return Traffic(edges, feats, acc[1], acc[0], bin_s, (spread[0], spread[1]), sessions, totals_f)


def _spread(row: np.ndarray, a: float, b: float, amount: float, first: float, bin_s: float) -> None:
    """Add ``amount`` bytes spread evenly over [a, b] to the bins of ``row``."""
    nb = len(row)
    i0 = min(nb - 1, max(0, int((a - first) // bin_s)))
    i1 = min(nb - 1, max(0, int((b - first) // bin_s)))
    if b <= a or i0 == i1:
        row[i0] += amount
        return
    rate = amount / (b - a)
    row[i0] += rate * (first + (i0 + 1) * bin_s - a)
    row[i0 + 1:i1] += rate * bin_s
    row[i1] += rate * (b - (first + i1 * bin_s))


def traffic_frame(data, bin_s: float | None = None, **frames) -> pd.DataFrame:
    """The numbers behind :func:`bytes_over_time`: one row per (time bin, feature, direction)
    with payload bytes; empty bins left out.  ``attrs['bin_s']`` holds the bin width."""
    inp = inputs(data, **frames)
    tr = _traffic(inp, bin_s)
    rows = []
    for direction, arr in (("server_to_client", tr.s2c), ("client_to_server", tr.c2s)):
        for i, f in enumerate(tr.features):
            for b in np.nonzero(arr[i] > 0)[0]:
                rows.append((float(tr.edges[b]), f, direction, float(arr[i, b])))
    df = pd.DataFrame(rows, columns=["t_s", "feature", "direction", "bytes"])
    df.insert(1, "time", pd.to_datetime(inp.t0 + df["t_s"], unit="s", utc=True))
    df["rate_Bps"] = df["bytes"] / tr.bin_s
    df.attrs["bin_s"] = tr.bin_s
    return df


def bytes_over_time(data, *, bin_s: float | None = None, title: str | None = None, **frames) -> Figure:
    """Payload bytes per time bin, stacked by feature; server->client on top, client->server below.

    ``bin_s``: bin width in seconds (default: a clock-friendly width giving ~120 bins).
    The y axes are rates (bytes per second averaged over the bin), each with its own unit.
    """
    inp = inputs(data, **frames)
    with rc_context(STYLE):
        fig = _new_figure(11, 6.2)
        tr = _traffic(inp, bin_s)
        total = float(tr.s2c.sum() + tr.c2s.sum())
        fig.suptitle(title or f"Port-902 payload over time, by feature: {inp.name}")
        if total <= 0:
            ax = fig.add_subplot()
            n = len(inp.sessions)
            states = inp.sessions["state"].astype(str).value_counts().to_dict() if n else {}
            detail = ", ".join(f"{k} {v}" for k, v in states.items())
            fig.set_size_inches(11, 2.4)
            _empty(fig, ax, "No payload bytes to draw: "
                   + (f"{n} session(s) without data ({detail})." if n else "no port-902 session in this analysis."))
            return fig
        axes = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
        panels = (
            (axes[0], tr.s2c, "server \u2192 client", "downloads, screen updates, replies"),
            (axes[1], tr.c2s, "client \u2192 server", "commands, keys and pointer, uploads"),
        )
        for ax, arr, name, what in panels:
            rate = arr / tr.bin_s
            top = float(rate.sum(axis=0).max()) if rate.size else 0.0
            unit, div = _unit_for(top)
            bottom = np.zeros(rate.shape[1])
            for i, f in enumerate(tr.features):
                layer = rate[i] / div
                if not layer.any():
                    continue
                ax.stairs(bottom + layer, tr.edges, baseline=bottom.copy(), fill=True, color=_color(f),
                          linewidth=0)
                bottom = bottom + layer
            ax.set_ylabel(f"{name}\n{unit}/s")
            ax.set_ylim(0, max(1e-9, bottom.max()) * 1.12)
            ax.yaxis.set_major_locator(MaxNLocator(5))
            ax.text(0.005, 0.97, what, transform=ax.transAxes, va="top", ha="left", fontsize=8, color="#444444")
        pad = 0.01 * (tr.edges[-1] - tr.edges[0])
        axes[0].set_xlim(tr.edges[0] - pad, tr.edges[-1] + pad)
        _clock_axis(axes[1], inp.t0)
        note = f"bin {clock(tr.bin_s, tr.bin_s) if tr.bin_s >= 60 else f'{tr.bin_s:g} s'}; bytes at the time of each TLS record"
        spread = sum(tr.spread)
        if spread:
            note += (f"; {human_bytes(spread)} have no per-packet time (cleartext after TLS #1, records past the"
                     " limit) and are spread evenly over the rest of their session")
        axes[0].set_title(note, fontsize=8, loc="left", color="#444444")
        handles = [Patch(color=_color(f), label=f"{f} ({FEATURE_MEANING.get(f, f)}): "
                         f"{tr.sessions[f]} session{'s' if tr.sessions[f] != 1 else ''}, {human_bytes(tr.totals[f])}")
                   for f in tr.features]
        axes[0].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="feature",
                       frameon=False)
    return fig


# -- links: hand-offs and reconnects -----------------------------------------------------------------


def _failure(state: str, login: str, feature: str) -> str | None:
    """Why a session counts as failed for the reconnect rule, or None."""
    if state in ("no_answer", "refused", "reset"):
        return {"no_answer": "no answer", "refused": "refused", "reset": "reset"}[state]
    if login == "rejected":
        return "login rejected"
    if feature == "NONE":
        return "NONE"
    return None


def links_frame(data, reconnect_window_s: float = RECONNECT_WINDOW_S, **frames) -> pd.DataFrame:
    """Arrows of the timeline: 903->902 hand-offs (from ``correlate``) and reconnects.

    A *reconnect* links a session to the latest earlier session of the same client that
    ended at most ``reconnect_window_s`` before it started, when

    * the earlier one failed (no answer, refused, reset, login rejected) and the new one
      goes to the same server and port: a **retry** (a console clicked again, a brute-force
      tool that reconnects per password);
    * both ask for the same VM (``connect_target``, readable on non-SSL daemons): the
      console **reopened**, on another host after a vMotion (seed article: VMRC asks vCenter
      where the VM went and reconnects there);
    * both are consoles (MKS) and the new one starts within a few seconds on **another
      host**: the encrypted form of the same vMotion reconnect (an inference: a user
      opening a second console looks the same).

    Busy services that open many sessions in a row (vCenter's NFC copies) are not
    reconnects: nothing failed and nothing moved.
    """
    inp = inputs(data, **frames)
    rows = []
    for h in inp.handoffs.itertuples(index=False):
        rows.append(("handoff", h.from_session, h.to_session, h.client, float(h.gap_s),
                     f"903 -> 902 hand-off, {h.from_server} -> {h.to_server}"))
    S = inp.sessions
    if len(S):
        start, end = _secs(S["start"]), _secs(S["end"])
        uid = S["uid"].astype(str).to_numpy()
        client = S["orig_ip"].astype(str).to_numpy()
        server = [hostport(ip, port) for ip, port in zip(S["resp_ip"], S["resp_port"])]
        host = S["resp_ip"].astype(str).to_numpy()
        target = [None if pd.isna(t) else str(t) for t in S["connect_target"]]
        feature = S["feature"].astype(str).to_numpy()
        failure = [_failure(str(st), str(lo), f) for st, lo, f in zip(S["state"], S["login_outcome"], feature)]
        handed = {(r[1], r[2]) for r in rows}
        by_client: dict[str, list[int]] = {}
        for i in np.argsort(start, kind="stable"):
            by_client.setdefault(client[i], []).append(int(i))
        for cl, idx in by_client.items():
            linked_from: set[int] = set()
            for pos, i in enumerate(idx):
                for j in reversed(idx[max(0, pos - RECONNECT_LOOKBACK):pos]):
                    gap = start[i] - end[j]
                    if gap > reconnect_window_s or gap < -RECONNECT_OVERLAP_S or j in linked_from \
                            or (uid[j], uid[i]) in handed:
                        continue
                    why = None
                    if server[j] == server[i] and failure[j]:
                        why = f"retry after {failure[j]}"
                    elif target[j] is not None and target[j] == target[i]:
                        why = "same VM reopened" + ("" if server[j] == server[i] else " on another host")
                    elif feature[j] == feature[i] == "MKS" and host[j] != host[i] and 0 <= gap <= CONSOLE_MOVE_S:
                        why = "console reopened on another host (vMotion?)"
                    if why:
                        linked_from.add(j)
                        rows.append(("reconnect", uid[j], uid[i], cl, float(gap), why))
                        break
    df = pd.DataFrame(rows, columns=["kind", "from_uid", "to_uid", "client", "gap_s", "why"])
    return df.astype({"kind": "string", "from_uid": "string", "to_uid": "string", "client": "string",
                      "gap_s": "float64", "why": "string"})


# -- session timeline --------------------------------------------------------------------------------


def _pack_lanes(start: np.ndarray, end: np.ndarray, order: np.ndarray, gap: float) -> np.ndarray:
    """Interval packing: each session on a lane that is free at its start (a heap of lane ends)."""
    free: list[tuple[float, int]] = []
    lane = np.zeros(len(start), dtype=np.int64)
    lanes = 0
    for i in order:
        if free and free[0][0] + gap <= start[i]:
            _, k = heapq.heappop(free)
        else:
            k, lanes = lanes, lanes + 1
        lane[i] = k
        heapq.heappush(free, (end[i], k))
    return lane


def _state_note(state: str, syns: int) -> str:
    if state == "no_answer":
        return f"no answer, {syns} SYN{'s' if syns != 1 else ''}"
    if state == "refused":
        return "refused (RST)"
    if state == "partial":
        return "began before the capture"
    if state == "reset":
        return "reset"
    return ""


def session_timeline(data, *, max_labels: int = MAX_LABELED_ROWS, max_rows: int = MAX_ROWS,
                     reconnect_window_s: float = RECONNECT_WINDOW_S, title: str | None = None, **frames) -> Figure:
    """One bar per session (first to last packet), coloured by feature, with hand-offs and
    reconnects as arrows.

    Up to ``max_labels`` sessions every row is labelled (uid, client -> server) and every bar
    says its feature and confidence; above that, row labels are thinned to about
    ``max_labels`` and bar texts dropped; above ``max_rows`` sessions, bars are packed into
    lanes (no two overlapping in a lane) and only colours and arrows remain.
    """
    inp = inputs(data, **frames)
    S = inp.sessions
    n = len(S)
    with rc_context(STYLE):
        packed = n > max_rows
        rows_shown = n
        start = _secs(S["start"]) - inp.t0 if n else np.empty(0)
        end = _secs(S["end"]) - inp.t0 if n else np.empty(0)
        order = np.lexsort((S["uid"].astype(str).to_numpy(), start)) if n else np.empty(0, np.int64)
        if n:
            span = max(1e-3, float(np.nanmax(end) - np.nanmin(start)))
        else:
            span = 1.0
        minw = span * 0.004
        if packed:
            y = _pack_lanes(start, np.maximum(end, start + minw), order, span * 0.002)
            rows_shown = int(y.max()) + 1
        else:
            y = np.empty(n, dtype=np.int64)
            y[order] = np.arange(n)
        height = 10.0 if packed else min(14.0, max(3.4, 1.6 + 0.3 * min(rows_shown, 42)))
        fig = _new_figure(11, height)
        ax = fig.add_subplot()
        links = links_frame(S, reconnect_window_s, records=inp.records, dialogue=inp.dialogue,
                            handshakes=inp.handshakes, handoffs=inp.handoffs) if n else None
        nh = int((links["kind"] == "handoff").sum()) if n else 0
        nr = int((links["kind"] == "reconnect").sum()) if n else 0
        parts = [f"{n} session{'s' if n != 1 else ''}"]
        if nh:
            parts.append(f"{nh} 903\u2192902 hand-off{'s' if nh != 1 else ''}")
        if nr:
            parts.append(f"{nr} reconnect{'s' if nr != 1 else ''}")
        fig.suptitle(title or f"Port-902 sessions: {inp.name} ({', '.join(parts)})")
        if not n:
            fig.set_size_inches(11, 2.4)
            _empty(fig, ax, "No port-902 session in this analysis.")
            return fig
        feats = S["feature"].astype(str).to_numpy()
        colors = [_color(f) for f in feats]
        states = S["state"].astype(str).to_numpy()
        failed = np.isin(states, ["no_answer", "refused"])
        width = np.maximum(np.nan_to_num(end - start), minw)
        handles = [Patch(color=_color(f), label=f"{f} ({FEATURE_MEANING.get(f, f)})") for f in _features_in(feats)]
        if packed:
            lw = max(0.8, min(6.0, 0.6 * 72 * (height - 1.6) / max(1, rows_shown)))
            segs = [((start[i], y[i]), (start[i] + width[i], y[i])) for i in range(n)]
            ax.add_collection(LineCollection(segs, colors=colors, linewidths=lw))
            ax.set_ylim(rows_shown - 0.5, -0.5)
            ax.set_ylabel(f"{n} sessions packed into {rows_shown} lanes")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            ok = ~failed
            ax.barh(y[ok], width[ok], left=start[ok], height=BAR_HEIGHT, color=[c for c, k in zip(colors, ok) if k],
                    linewidth=0)
            if failed.any():
                ax.barh(y[failed], width[failed], left=start[failed], height=BAR_HEIGHT, color="white",
                        edgecolor=[c for c, k in zip(colors, failed) if k], hatch="////", linewidth=0.8)
                handles.append(Patch(facecolor="white", edgecolor=GREY, hatch="////",
                                     label="never connected (no answer / refused)"))
            ax.set_ylim(n - 0.5, -0.5)
            labels = [f"{str(S['uid'][i])[:9]}  {S['orig_ip'][i]} \u2192 {hostport(S['resp_ip'][i], S['resp_port'][i])}"
                      for i in order]
            if n <= max_labels:
                ax.set_yticks(np.arange(n), labels)
            else:
                step = math.ceil(n / max_labels)
                ticks = np.arange(0, n, step)
                ax.set_yticks(ticks, [f"#{t + 1}  {labels[t]}" for t in ticks], fontsize=7)
                ax.set_ylabel(f"sessions by start time (every {step}th labelled)")
            ax.grid(axis="y", visible=False)
        # markers: SYN retries, TLS #2, sessions that began before the capture
        syn_x, syn_y = [], []
        for i in range(n):
            times = inp.syn_times.get(str(S["uid"][i]), [])
            if not packed and (len(times) > 1 or states[i] == "no_answer"):
                syn_x += [t - inp.t0 for t in times]
                syn_y += [y[i] + (0 if packed else BAR_HEIGHT * 0.22)] * len(times)  # below the bar text
        if syn_x:
            ax.plot(syn_x, syn_y, linestyle="none", marker="x", markersize=6, color=OKABE_ITO["vermillion"], mew=1.6,
                    zorder=6)
            handles.append(Line2D([], [], linestyle="none", marker="x", color=OKABE_ITO["vermillion"], mew=1.6,
                                  label="SYN sent (retries)"))
        hs = inp.handshakes[inp.handshakes["index"] >= 2]
        if len(hs) and not packed:
            row = {u: y[i] for i, u in enumerate(S["uid"])}
            hx = _secs(hs["ts"]) - inp.t0
            hy = [row[u] for u in hs["uid"]]
            ax.plot(hx, hy, linestyle="none", marker="|", markersize=11, mew=1.8, color="white")
            ax.plot(hx, hy, linestyle="none", marker="|", markersize=11, mew=0.9, color=CLIENT_MARK)
            handles.append(Line2D([], [], linestyle="none", marker="|", markersize=9, mew=1.2, color=CLIENT_MARK,
                                  label="second TLS handshake (hand-off)"))
        partial = states == "partial"
        if partial.any():
            ax.plot(start[partial], y[partial], linestyle="none", marker="<", markersize=6, color=CLIENT_MARK)
            handles.append(Line2D([], [], linestyle="none", marker="<", color=CLIENT_MARK,
                                  label="began before the capture"))
        lo = float(np.nanmin(start))
        hi = float(np.nanmax(start + width))
        pad = 0.02 * (hi - lo)
        ax.set_xlim(lo - pad, hi + pad)
        _clock_axis(ax, inp.t0)
        # arrows: from the bottom edge of the earlier bar's end to the top edge of the later bar's start
        row_of = {u: i for i, u in enumerate(S["uid"])}
        drawn = {"handoff": False, "reconnect": False}
        half = 0.0 if packed else BAR_HEIGHT / 2
        reconnects_drawn = not packed and nr <= MAX_RECONNECT_LINKS
        shown = links if reconnects_drawn else links[links["kind"] == "handoff"]
        for link in shown.head(MAX_LINKS).itertuples(index=False):
            i, j = row_of[link.from_uid], row_of[link.to_uid]
            handoff = link.kind == "handoff"
            color = HANDOFF_COLOR if handoff else RECONNECT_COLOR
            x0, x1 = start[i] + width[i], start[j]
            down = 1 if y[j] > y[i] else -1 if y[j] < y[i] else 0
            y0, y1 = y[i] + down * half, y[j] - down * half
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops=dict(arrowstyle="-|>", color=color, lw=1.6 if handoff else 1.0,
                                        linestyle="-" if handoff else (0, (3, 2)), shrinkA=0, shrinkB=0,
                                        mutation_scale=9,
                                        connectionstyle="arc3,rad=0" if not down else "angle,angleA=0,angleB=90,rad=4"))
            if len(shown) <= MAX_LINK_NAMES and down:
                xl0, xl1 = ax.get_xlim()
                right = x1 < xl0 + 0.7 * (xl1 - xl0)
                name = "hand-off" if handoff else str(link.why)
                ax.annotate(f"{name}, {link.gap_s:.2f} s", xy=(x1, (y0 + y1) / 2), xytext=(4 if right else -4, 0),
                            textcoords="offset points", fontsize=7, color=color, va="center",
                            ha="left" if right else "right")
            drawn[link.kind] = True
        if drawn["handoff"]:
            handles.append(Line2D([], [], color=HANDOFF_COLOR, lw=1.6, marker=">", markersize=4,
                                  label="903\u2192902 hand-off"))
        if drawn["reconnect"]:
            handles.append(Line2D([], [], color=RECONNECT_COLOR, lw=1.0, linestyle=(0, (3, 2)), marker=">",
                                  markersize=4, label=f"reconnect: retry or console reopened (\u2264 {reconnect_window_s:g} s)"))
        elif nr:
            handles.append(Line2D([], [], color="none", label=f"{nr} reconnects: too many to draw (links_frame)"))
        # bar texts: feature, confidence, state; inside a wide bar, else right of it, else left of it
        if not packed and n <= max_labels:
            xl0, xl1 = ax.get_xlim()
            full = xl1 - xl0
            char = full * 0.0072  # width of one 7.5-pt character in data units, roughly
            for i in range(n):
                conf = S["confidence"][i]
                text = feats[i] + ("" if pd.isna(conf) else f" {conf:.2f}")
                note = _state_note(states[i], int(S["syn_count"][i]) if not pd.isna(S["syn_count"][i]) else 0)
                if note:
                    text += f" \u00b7 {note}"
                need = (len(text) + 2) * char
                x0, w = start[i], width[i]
                style = dict(va="center", fontsize=7.5, clip_on=True)
                if w > need:
                    yt = y[i]
                    if failed[i]:
                        style["bbox"] = dict(facecolor="white", edgecolor="none", pad=0.5, alpha=0.85)
                        yt = y[i] - BAR_HEIGHT * 0.2  # above the SYN markers
                    ax.text(x0 + char, yt, text, ha="left",
                            color="white" if colors[i] in _DARK and not failed[i] else "black", **style)
                elif x0 + w + need < xl1:
                    ax.text(x0 + w + char, y[i], text, ha="left", color="#222222", **style)
                else:
                    ax.text(x0 - char * (2.5 if partial[i] else 1), y[i], text, ha="right", color="#222222", **style)
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


# -- fingerprints ------------------------------------------------------------------------------------


def _pick_sessions(S: pd.DataFrame, drawable: set[str], max_sessions: int) -> list[int]:
    """One session per feature first (the one with the most records), then the busiest others."""
    counts = {}
    for i, u in enumerate(S["uid"]):
        if u in drawable:
            counts[i] = int(S["orig_app_records"].fillna(0)[i] + S["resp_app_records"].fillna(0)[i])
    chosen: list[int] = []
    feats = S["feature"].astype(str)
    for f in FEATURE_ORDER + tuple(sorted(set(feats) - set(FEATURE_ORDER))):
        cands = [i for i in counts if feats[i] == f]
        if cands and len(chosen) < max_sessions:
            chosen.append(max(cands, key=lambda i: (counts[i], -i)))
    for i in sorted(counts, key=lambda i: (-counts[i], i)):
        if len(chosen) >= max_sessions:
            break
        if i not in chosen:
            chosen.append(i)
    rank = {f: k for k, f in enumerate(FEATURE_ORDER)}
    return sorted(chosen, key=lambda i: (rank.get(feats[i], 99), float(_secs(S["start"].iloc[[i]])[0])))


def _cells(t: np.ndarray, size: np.ndarray, tmax: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate points into (time x log-size) cells: one marker per occupied cell, with its count."""
    tb = np.floor(t / max(tmax, 1e-9) * 300).astype(np.int64)
    sb = np.floor(np.log10(np.maximum(size, 1)) * 30).astype(np.int64)
    keys, counts = np.unique(np.stack([tb, sb]), axis=1, return_counts=True)
    return (keys[0] + 0.5) / 300 * tmax, 10 ** ((keys[1] + 0.5) / 30), counts


def fingerprints(data, *, uids: Iterable[str] | None = None, max_sessions: int = 6, max_points: int = MAX_POINTS,
                 title: str | None = None, **frames) -> Figure:
    """TLS record length over time, one panel per session ("fingerprints").

    ``uids``: sessions to draw (a prefix of the uid is enough); default: the busiest
    session of each feature, then the busiest others, up to ``max_sessions``.  Circles
    are server->client records, triangles client->server; grey crosses are handshake,
    change-cipher-spec and alert records; squares are authd lines readable in clear
    (the banner, and every line on a non-SSL daemon).  The grey band is TLS #1 (authd
    lines, one record each); the vertical line the second handshake.  A panel with more
    than ``max_points`` points draws one marker per occupied cell, sized by its count.
    """
    uids = None if uids is None else [str(u) for u in uids]
    inp = inputs(data, uids=uids, **frames)
    S = inp.sessions
    R, D = inp.records, inp.dialogue
    drawable = set(R["uid"]) | set(D["uid"])
    if uids:
        chosen = []
        for want in uids:  # in the order asked for, every session asked for
            for i, u in enumerate(S["uid"]):
                if str(u).startswith(want) and i not in chosen:
                    chosen.append(i)
    else:
        chosen = _pick_sessions(S, drawable, max_sessions)
    with rc_context(STYLE):
        n = len(chosen)
        ncols = 1 if n <= 1 else 2
        nrows = max(1, math.ceil(n / ncols))
        fig = _new_figure(11, 0.9 + 2.9 * nrows)
        fig.suptitle(title or f"Record-size fingerprints: {inp.name}")
        if not n:
            fig.set_size_inches(11, 2.4)
            _empty(fig, fig.add_subplot(), "No TLS records or readable authd lines to draw.")
            return fig
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
        r_uid = R["uid"].to_numpy(dtype=object)
        d_uid = D["uid"].to_numpy(dtype=object)
        r_t, d_t = _secs(R["ts"]), _secs(D["ts"])
        r_len = _num(R["length"])
        r_s2c = (R["direction"].astype(str) == "server_to_client").to_numpy()
        r_app = (R["content_type"].astype(str) == "application_data").to_numpy()
        d_len = D["text"].fillna("").str.len().to_numpy(dtype=float) + 2
        d_s2c = (D["direction"].astype(str) == "server_to_client").to_numpy()
        d_word = np.array([str(c) if not pd.isna(c) else (str(k) if not pd.isna(k) else (str(x).split(" ")[0][:8] or "(empty)"))
                           for c, k, x in zip(D["command"], D["code"], D["text"].fillna(""))], dtype=object)
        hs2 = inp.handshakes[inp.handshakes["index"] >= 2]
        hs1 = inp.handshakes[inp.handshakes["index"] == 1]
        symlog: list[float] = []
        used = {"s2c": False, "c2s": False, "hs": False, "clear": False, "band": False, "tls2": False}
        for ax, i in zip(axes, chosen):
            s = S.iloc[i]
            uid, feat = s["uid"], str(s["feature"])
            color = _color(feat)
            t_start = float(_secs(S["start"].iloc[[i]])[0])
            dur = max(1e-3, float(s["duration_s"]) if not pd.isna(s["duration_s"]) else 0.0)
            mr, md = r_uid == uid, d_uid == uid
            t, ln, s2c, app = r_t[mr] - t_start, r_len[mr], r_s2c[mr], r_app[mr]
            dt, dl, ds2c = d_t[md] - t_start, d_len[md], d_s2c[md]
            points = len(t) + len(dt)
            binned = points > max_points
            groups = (
                ("s2c", app & s2c, dict(marker="o", color=color, alpha=0.55, edgecolors="none")),
                ("c2s", app & ~s2c, dict(marker="^", facecolors="none", edgecolors=CLIENT_MARK, alpha=0.7,
                                         linewidths=0.7)),
                ("hs", ~app, dict(marker="x", color="#777777", alpha=0.9, linewidths=0.8)),
            )
            for key, mask, style in groups:
                if not mask.any():
                    continue
                used[key] = True
                if binned:
                    x, yv, cnt = _cells(t[mask], ln[mask], dur)
                    ax.scatter(x, yv, s=6 + 10 * np.sqrt(cnt), **style)
                else:
                    ax.scatter(t[mask], ln[mask], s=14, **style)
            if len(dt):
                used["clear"] = True
                ax.scatter(dt, dl, marker="s", s=26, facecolors="none",
                           edgecolors=[color if k else CLIENT_MARK for k in ds2c], linewidths=1.0)
                if len(dt) <= MAX_LINE_NAMES:  # name each readable line: 220, USER, 331, PASS, 530 ...
                    for x_, y_, word in zip(dt, dl, d_word[md]):
                        ax.annotate(word, (x_, y_), xytext=(4, 2), textcoords="offset points", fontsize=6.5,
                                    color="#333333")
            # TLS #1 band and the second handshake
            h1 = hs1[hs1["uid"] == uid]
            h2 = hs2[hs2["uid"] == uid]
            if len(h1):
                a = float(_secs(h1["ts"])[0]) - t_start
                b = float(_secs(h2["ts"])[0]) - t_start if len(h2) else (
                    float(t[ln > 0].max()) if len(t) else dur)
                ax.axvspan(a, b, color=LIGHT, zorder=0, linewidth=0)
                used["band"] = True
            for x2 in _secs(h2["ts"]) - t_start:
                ax.axvline(x2, color=CLIENT_MARK, lw=0.9, ls="--")
                ax.text(x2, 1.0, " TLS #2", transform=ax.get_xaxis_transform(), va="top", ha="left", fontsize=7.5)
                used["tls2"] = True
            ax.set_yscale("log")
            ymax = max(2000.0, float(np.nanmax(ln)) * 1.8 if len(ln) else 0.0, float(dl.max()) * 1.8 if len(dl) else 0)
            ymin = 0.7 if (len(dl) and dl.min() < 6) or (len(ln) and np.nanmin(ln) < 6) else 5
            ax.set_ylim(ymin, ymax)
            # linear through the handshakes, logarithmic after: TLS #1 takes milliseconds, a console minutes
            hand = float(np.nanmax(_secs(h2["ts"]))) - t_start if len(h2) else (dt.max() if len(dt) else 0.0)
            linthresh = nice_step(max(hand * 1.5, LINEAR_S), 1)
            if dur > 8 * linthresh:
                ax.set_xscale("symlog", linthresh=linthresh, linscale=1.2)
                ax.set_xlim(0, dur * 1.15)
                ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _p: f"{x:g}"))
                symlog.append(linthresh)
            else:
                ax.set_xlim(-0.02 * dur, dur * 1.02)
                ax.xaxis.set_major_locator(MaxNLocator(6))
            conf = s["confidence"]
            head = f"{feat}" + ("" if pd.isna(conf) else f" ({conf:.2f})") + f" \u00b7 {str(uid)[:9]}"
            counted = f"{int(mr.sum())} records" if mr.any() else f"{int(md.sum())} lines in clear"
            sub = f"{s['orig_ip']} \u2192 {hostport(s['resp_ip'], s['resp_port'])} \u00b7 {dur:.3g} s \u00b7 {counted}"
            ax.set_title(f"{head}\n{sub}", loc="left", fontsize=8.5, color="#222222")
            ax.spines["left"].set_color(color)
            ax.spines["left"].set_linewidth(2.5)
            notes = []
            if binned:
                notes.append(f"aggregated: {points:,} points")
            if bool(s["continued_in_clear"]) if not pd.isna(s["continued_in_clear"]) else False:
                rest = int(s["orig_bytes"] + s["resp_bytes"]) - int((ln + 5).sum()) - int(dl.sum())
                if rest > 0:
                    notes.append(f"then ~{human_bytes(rest)} of cleartext NFC (no records)")
            if notes:
                ax.text(0.99, 0.03, "; ".join(notes), transform=ax.transAxes, ha="right", va="bottom", fontsize=7.5,
                        color="#444444", bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1))
        for ax in axes[n:]:
            ax.set_visible(False)
        for k, ax in enumerate(axes[:n]):
            if k % ncols == 0:
                ax.set_ylabel("record / line length (bytes)")
            if k >= n - ncols:
                ax.set_xlabel("seconds since the session's first packet")
        if symlog:
            fig.text(0.995, 0.995, f"time axes: linear up to {min(symlog):g} s (the handshakes), logarithmic after",
                     ha="right", va="top", fontsize=7.5, color="#444444")
        handles = []
        if used["s2c"]:
            handles.append(Line2D([], [], linestyle="none", marker="o", color=GREY, alpha=0.7,
                                  label="server \u2192 client record (colour = feature)"))
        if used["c2s"]:
            handles.append(Line2D([], [], linestyle="none", marker="^", markerfacecolor="none",
                                  markeredgecolor=CLIENT_MARK, label="client \u2192 server record"))
        if used["hs"]:
            handles.append(Line2D([], [], linestyle="none", marker="x", color="#777777",
                                  label="handshake / cipher change / alert"))
        if used["clear"]:
            handles.append(Line2D([], [], linestyle="none", marker="s", markerfacecolor="none",
                                  markeredgecolor=CLIENT_MARK,
                                  label="authd line in clear (banner; all on non-SSL daemons): black = client"))
        if used["band"]:
            handles.append(Patch(color=LIGHT, label="TLS #1: authd lines, one record each"))
        if used["tls2"]:
            handles.append(Line2D([], [], color=CLIENT_MARK, ls="--", lw=0.9, label="second TLS handshake"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(3, max(1, len(handles))), frameon=False)
    return fig


# -- per-host and per-client totals ----------------------------------------------------------------


def _totals(S: pd.DataFrame, key: str, feats: list[str], top: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    total_bytes = np.nan_to_num(_num(S["orig_bytes"])) + np.nan_to_num(_num(S["resp_bytes"]))
    df = pd.DataFrame({"key": S[key].astype(str).to_numpy(), "feature": S["feature"].astype(str).to_numpy(),
                       "bytes": total_bytes, "n": 1})
    by = df.groupby(["key", "feature"], observed=True).agg(bytes=("bytes", "sum"), n=("n", "sum")).reset_index()
    rank = by.groupby("key").agg(bytes=("bytes", "sum"), n=("n", "sum")).sort_values(["bytes", "n"], ascending=False)
    keys = list(rank.index[:top])
    others = list(rank.index[top:])
    labels = list(keys) + ([f"{len(others)} others"] if others else [])
    B = np.zeros((len(labels), len(feats)))
    N = np.zeros((len(labels), len(feats)))
    pos = {k: i for i, k in enumerate(keys)}
    fpos = {f: i for i, f in enumerate(feats)}
    for r in by.itertuples(index=False):
        i = pos.get(r.key, len(keys))
        B[i, fpos[r.feature]] += r.bytes
        N[i, fpos[r.feature]] += r.n
    return labels, B, N


def host_totals(data, *, top: int = 12, title: str | None = None, **frames) -> Figure:
    """Bytes and sessions per server (ESXi host) and per client, stacked by feature.

    The ``top`` busiest hosts of each kind get a bar; the rest are summed into "N others".
    Session counts matter as much as bytes: failed and probing connections carry no bytes.
    """
    inp = inputs(data, **frames)
    S = inp.sessions
    with rc_context(STYLE):
        feats = _features_in(S["feature"]) if len(S) else []
        srv = _totals(S, "resp_ip", feats, top) if len(S) else ([], None, None)
        cli = _totals(S, "orig_ip", feats, top) if len(S) else ([], None, None)
        nrow = max(1, len(srv[0])) + max(1, len(cli[0]))
        fig = _new_figure(11, min(16.0, 2.4 + 0.3 * nrow))
        fig.suptitle(title or f"Port-902 totals per host and per client: {inp.name}")
        if not len(S):
            fig.set_size_inches(11, 2.4)
            _empty(fig, fig.add_subplot(), "No port-902 session in this analysis.")
            return fig
        axes = fig.subplots(2, 2, width_ratios=[3, 2], height_ratios=[max(1, len(srv[0])) + 1.5,
                                                                       max(1, len(cli[0])) + 1.5])
        # server labels: ip, ports, product guess from the banner
        products, ports = {}, {}
        for ip, grp in S.groupby(S["resp_ip"].astype(str)):
            ports[ip] = ",".join(str(p) for p in sorted(set(grp["resp_port"].dropna().astype(int))))
            prods = grp["product"].dropna().astype(str)
            products[ip] = prods.value_counts().index[0] if len(prods) else ""
        for row, (labels, B, N), who in ((0, srv, "server (ESXi host)"), (1, cli, "client")):
            if row == 0:
                shown = [lab if lab not in ports else
                         f"{lab} :{ports[lab]}" + (f"\n{products[lab]}" if products.get(lab) else "") for lab in labels]
            else:
                shown = labels
            yy = np.arange(len(labels))
            for col, M, unit in ((0, B, "bytes"), (1, N, "sessions")):
                ax = axes[row, col]
                left = np.zeros(len(labels))
                for k, f in enumerate(feats):
                    if M[:, k].any():
                        ax.barh(yy, M[:, k], left=left, color=_color(f), height=0.66, linewidth=0)
                        left = left + M[:, k]
                ax.set_ylim(len(labels) - 0.5, -0.5)
                ax.set_yticks(yy, shown if col == 0 else [""] * len(labels))
                ax.grid(axis="y", visible=False)
                xmax = max(1.0, float(left.max()))
                ax.set_xlim(0, xmax * 1.22)
                for y_, v in zip(yy, left):
                    ax.text(v + xmax * 0.01, y_, human_bytes(v) if col == 0 else f"{int(v)}", va="center",
                            ha="left", fontsize=7.5, color="#222222")
                if col == 0 and not left.any():
                    ax.set_xticks([0], ["0"])
                    ax.text(0.5, 0.5, "no payload bytes", transform=ax.transAxes, ha="center", va="center",
                            color="#444444")
                    ax.set_title(f"payload bytes per {who}, both directions", loc="left")
                elif col == 0:
                    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _p: human_bytes(x) if x else "0"))
                    ax.set_title(f"payload bytes per {who}, both directions", loc="left")
                else:
                    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
                    ax.set_title(f"sessions per {who}", loc="left")
        handles = [Patch(color=_color(f), label=f"{f} ({FEATURE_MEANING.get(f, f)})") for f in feats]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(6, max(1, len(handles))), frameon=False)
    return fig


# -- classifier features per label ------------------------------------------------------------------

#: feature column -> (y scale, [(threshold, what it separates)]); thresholds from classify.py
def _feature_panels() -> dict[str, tuple[str, list[tuple[float, str]]]]:
    from ..infer import classify as c

    g = lambda name, default: getattr(c, name, default)  # noqa: E731 - tolerate renamed constants
    return {
        "tls1_client_last": ("log", [(g("LONG_COMMAND", 45), "\u2265 CONNECT <vmx> mks"),
                                     (g("SHORT_COMMAND", 35), "\u2264 PROXY vpxa-nfcssl")]),
        "tls1_server_first": ("log", [(g("GREETING_ECHO", 120), "\u2265 banner re-sent (VDDK)")]),
        "tls1_client_max": ("log", [(g("SOAP_SIZED", 250), "\u2265 SOAP-sized"), (g("LOGIN_SIZED", 80), "\u2264 login-sized")]),
        "later_client_first": ("log", [(g("NFC_MESSAGE_MIN", 200), "\u2265 264-byte NFC message"),
                                       (g("TOKEN_MAX", 24), "\u2264 16-byte MKS token")]),
        "later_client_median": ("log", [(40, "40 bytes")]),
        "later_client_small_share": ("linear", [(0.6, "60 % small: interactive")]),
        "later_server_bytes_share": ("linear", [(0.3, "< 30 %: upload")]),
        "later_idle_count": ("linear", [(1, "a pause > 1 s")]),
    }


def feature_distributions(data, columns: list[str] | None = None, *, by: str = "feature",
                          title: str | None = None) -> Figure:
    """The classifier's inputs, one panel per feature column, one jittered strip per label.

    ``data`` is an ``Analysis`` or a frame like ``analysis.features_frame()``; ``by`` names
    the label column (the classifier's ``feature`` by default - pass a column of ground-truth
    labels to compare).  Dashed lines are the thresholds ``classify.py`` uses, so each panel
    shows which side of a rule every session fell on.  Sessions without a value (no second
    handshake, no TLS) are counted under the strip, not drawn.
    """
    df = data.features_frame() if hasattr(data, "features_frame") else data
    panels = _feature_panels()
    columns = list(columns or panels)
    with rc_context(STYLE):
        ncols = min(4, max(1, len(columns)))
        nrows = max(1, math.ceil(len(columns) / ncols))
        fig = _new_figure(11, 0.8 + 2.7 * nrows)
        fig.suptitle(title or f"Classifier features by {by} ({len(df)} sessions)")
        if not len(df) or not columns:
            fig.set_size_inches(11, 2.4)
            _empty(fig, fig.add_subplot(), "No sessions to describe.")
            return fig
        labels = _features_in(df[by].astype(str)) if by in df else []
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
        rng = np.random.default_rng(902)  # the same jitter every run
        for ax, col in zip(axes, columns):
            scale, lines = panels.get(col, ("linear", []))
            values = pd.to_numeric(df[col], errors="coerce").astype(float) if col in df else pd.Series(dtype=float)
            ticks = []
            for k, lab in enumerate(labels):
                v = values[(df[by].astype(str) == lab).to_numpy()].to_numpy()
                have = v[~np.isnan(v)]
                if scale == "log":
                    have = np.maximum(have, 1.0)
                x = k + rng.uniform(-0.18, 0.18, size=len(have))
                ax.scatter(x, have, s=22, color=_color(lab), alpha=0.75, edgecolors="white", linewidths=0.4, zorder=3)
                missing = len(v) - len(have)
                ticks.append(f"{lab}\n{len(have)}" + (f"\n+{missing} n/a" if missing else ""))
            if scale == "log":
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _p: f"{y:g}"))
                ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _p: f"{y:g}" if str(f"{y:g}")[0] in "25" else ""))
            else:
                ax.yaxis.set_major_locator(MaxNLocator(6, integer=col.endswith("_count")))
            low = min((v for v, _ in lines), default=None) if len(lines) > 1 else None
            for value, what in lines:
                below = value == low  # two lines close together: label the lower one underneath
                ax.axhline(value, color="#444444", lw=0.8, ls=(0, (4, 3)), zorder=2)
                ax.annotate(f"{value:g}: {what}", (1.0, value), xycoords=("axes fraction", "data"),
                            xytext=(-2, -2 if below else 2), textcoords="offset points", ha="right",
                            va="top" if below else "bottom", fontsize=6.5, color="#333333")
            ax.set_xticks(range(len(labels)), ticks, fontsize=6.5)
            ax.set_xlim(-0.6, len(labels) - 0.4)
            ax.grid(axis="x", visible=False)
            ax.set_title(col, loc="left", fontsize=8.5, family="monospace")
        for ax in axes[len(columns):]:
            ax.set_visible(False)
    return fig


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
