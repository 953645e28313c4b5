"""``links_frame``: the timeline's arrows — 903→902 hand-offs and reconnects.
"""

from __future__ import annotations

import pandas as pd

from ...infer.reconnects import RECONNECT_WINDOW_S, Row, find_reconnects
from .inputs import inputs
from .style import (
    _secs,
)

# -- links: hand-offs and reconnects -----------------------------------------------------------------


def links_frame(data, reconnect_window_s: float | None = None, **frames) -> pd.DataFrame:
    """Arrows of the timeline: 903->902 hand-offs (``infer.links``) and reconnects
    (``infer.reconnects``: the same definition the diagnosis uses; ``reconnect_window_s`` is
    accepted for compatibility and must equal its window)."""
    if reconnect_window_s is not None and reconnect_window_s != RECONNECT_WINDOW_S:
        raise ValueError(f"the reconnect window is {RECONNECT_WINDOW_S:g} s (infer.reconnects)")
    inp = inputs(data, **frames)
    rows = []
    for h in inp.handoffs.itertuples(index=False):
        rows.append(("handoff", h.from_session, h.to_session, h.client, float(h.gap_s),
                     f"903 -> 902 hand-off, {h.from_server} -> {h.to_server}"))
    S = inp.sessions
    if len(S):
        start, end = _secs(S["start"]), _secs(S["end"])
        sessions = [
            Row(uid=str(u), client_ip=str(c), server_ip=str(ip), server_port=int(port), start=float(t0),
                end=float(t1), duration_s=float(d), state=str(st), login_outcome=str(lo), feature=str(f),
                transport=str(tr), connect_kind=None if pd.isna(k) else str(k),
                connect_target=None if pd.isna(t) else str(t), connect_ok=None)  # connect_ok: not in the frame
            for u, c, ip, port, t0, t1, d, st, lo, f, tr, k, t in zip(
                S["uid"], S["orig_ip"], S["resp_ip"], S["resp_port"], start, end, S["duration_s"], S["state"],
                S["login_outcome"], S["feature"], S["transport"], S["connect_kind"], S["connect_target"])]
        handed = {(r[1], r[2]) for r in rows}
        for r in find_reconnects(sessions, exclude=handed):
            rows.append(("reconnect", r.earlier.uid, r.later.uid, r.earlier.client_ip, float(r.gap_s), r.why))
    df = pd.DataFrame(rows, columns=["kind", "from_uid", "to_uid", "client", "gap_s", "why"])
    return df.astype({"kind": "string", "from_uid": "string", "to_uid": "string", "client": "string",
                      "gap_s": "float64", "why": "string"})
