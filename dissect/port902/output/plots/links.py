"""``links_frame``: the timeline's arrows — 903→902 hand-offs and reconnects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .inputs import inputs
from .style import (
    CONSOLE_MOVE_S,
    RECONNECT_LOOKBACK,
    RECONNECT_OVERLAP_S,
    RECONNECT_WINDOW_S,
    _secs,
    hostport,
)

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


