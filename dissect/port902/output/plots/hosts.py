"""``host_totals``: bytes and sessions per server and per client, stacked by feature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .inputs import inputs
from .style import (
    FEATURE_MEANING,
    STYLE,
    _color,
    _empty,
    _features_in,
    _new_figure,
    _num,
    human_bytes,
)

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


