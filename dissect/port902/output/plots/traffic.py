"""``bytes_over_time``: TCP payload per time bin, stacked by feature, each direction on its own scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .inputs import Inputs, inputs
from .style import (
    FEATURE_MEANING,
    MAX_BINS,
    STYLE,
    TRAFFIC_BINS,
    _clock_axis,
    _color,
    _empty,
    _features_in,
    _new_figure,
    _num,
    _secs,
    _unit_for,
    clock,
    human_bytes,
    nice_step,
)

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


