"""What a chart reads: an ``Analysis`` or the DataFrames it would give, filtered by uid and feature.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

from ...model.schema import FRAME_TABLES, build
from .style import _secs

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


