"""``fingerprints``: TLS record length × time per session — why MKS, NFC and SOAP look different.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ...net.flows import hostport
from .inputs import inputs
from .style import (
    CLIENT_MARK,
    FEATURE_ORDER,
    GREY,
    LIGHT,
    LINEAR_S,
    MAX_LINE_NAMES,
    MAX_POINTS,
    STYLE,
    _color,
    _empty,
    _new_figure,
    _num,
    _secs,
    human_bytes,
    nice_step,
)

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


