"""``session_timeline``: one bar per session, hand-off and reconnect arrows, SYN and TLS #2 markers.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ...infer.reconnects import RECONNECT_WINDOW_S
from ...net.flows import hostport
from .inputs import inputs
from .links import links_frame
from .style import (
    _DARK,
    BAR_HEIGHT,
    CLIENT_MARK,
    FEATURE_MEANING,
    GREY,
    HANDOFF_COLOR,
    MAX_LABELED_ROWS,
    MAX_LINK_NAMES,
    MAX_LINKS,
    MAX_RECONNECT_LINKS,
    MAX_ROWS,
    OKABE_ITO,
    RECONNECT_COLOR,
    STYLE,
    _clock_axis,
    _color,
    _empty,
    _features_in,
    _new_figure,
    _secs,
)

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


