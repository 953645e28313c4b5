"""``feature_distributions``: the classifier's inputs per label (notebook 4).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .style import STYLE, _color, _empty, _features_in, _new_figure

# -- classifier features per label ------------------------------------------------------------------

#: feature column -> (y scale, [(threshold, what it separates)]); thresholds from classify.py
def _feature_panels() -> dict[str, tuple[str, list[tuple[float, str]]]]:
    from ...infer import classify as c

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


