"""An archive's tables as a Parquet dataset, grown incrementally (stage: archive; issue 11).

Layout of ``OUT/``: one directory per table, hive-partitioned by the UTC date of each row
(``OUT/sessions/date=2024-05-14/part-....parquet``; rows without a time: ``date=unknown``),
every file with the table's declared schema (``model.schema``: the column docs and declared
dtypes are field metadata, the table name and schema version schema metadata, and pandas'
own metadata so that ``pd.read_parquet(OUT/'sessions')`` gives the declared dtypes back).
``OUT/manifest.json`` records, per sensor, the files analysed (path, size, mtime, first
timestamp, packets) and the *resume point*.

Incremental runs.  A session is *settled* once nothing later in its sensor's stream can change
it: its last packet lies more than the connection table's idle timeout (plus one sweep) before
the end of what was read, so it was finished and every correlation window (hand-off, reconnect)
has closed.  The resume point is the first file in which an unsettled session starts.  Rows of
sessions starting before it are written to ``part-S-RUN.parquet`` files kept for good; the rest
to ``part-S-tail.parquet`` files that the next run replaces.  When files were added after the
known ones, the next run re-reads from the resume point (frame numbers continue from where they
were), so a connection running across the old end and the new files is stitched as in one run.
A known file that changed, or a new file older than the resume point, re-analyses the sensor.
Findings of the diagnosis are split by their first timestamp in the same way: an aggregate
finding whose evidence straddles the resume point is reported per segment (a full re-run
gives the whole-stream finding).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import replace
from typing import Iterable

from .. import __version__
from ..analysis import analyze
from ..extras import require
from ..io.chain import CaptureChain
from ..output.parquet import arrow_schema
from ..net.flows import IDLE_TIMEOUT_S, SWEEP_EVERY_S
from .stitch import discover, note_cross_sensor

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
SETTLE_S = IDLE_TIMEOUT_S + SWEEP_EVERY_S  # after this much capture time a connection is certainly finished
#: the tables of a dataset and the column that dates a row (None: the date of the row's session)
TABLES = {"sessions": "start", "tls_records": "ts", "handshakes": "ts", "dialogue": "ts", "logins": "ts",
          "weird": "ts", "handoffs": None, "features": None, "findings": "first_ts"}


def _file_entry(path: str, first_ts) -> dict:
    st = os.stat(path)
    return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "first_ts": first_ts}


def _sensor_id(name: str) -> str:
    return hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _dates(pd, frame, table: str, session_dates: dict):
    col = TABLES[table]
    if col is not None:
        return frame[col].dt.strftime("%Y-%m-%d").fillna("unknown").astype(str)
    key = "from_session" if table == "handoffs" else "uid"
    return frame[key].astype(object).map(lambda u: session_dates.get(u, "unknown")).astype(str)


def _split_rows(frame, table: str, settled_uids: set, resume_ts, chain_files: dict):
    """Boolean mask: which rows of ``frame`` are settled (kept for good)."""
    if table == "findings":
        if resume_ts is None:  # nothing left unsettled: every finding is kept
            return frame["first_ts"].isna() | frame["first_ts"].notna()
        return (frame["first_ts"].isna()) | (frame["first_ts"] < _ts(resume_ts))
    key = "from_session" if table == "handoffs" else "uid"
    uids = frame[key].astype(object)
    if table == "weird":  # file damage has no uid: settled when its file lies before the resume point
        return uids.map(lambda u: u in settled_uids) | (
            (uids.isna() | (uids == "")) & frame["source"].astype(object).map(lambda p: chain_files.get(p, True)))
    return uids.map(lambda u: u in settled_uids)


def _ts(epoch: float):
    import pandas as pd

    return pd.Timestamp(epoch, unit="s", tz="UTC")


def _write(pa, pq, out: str, table: str, frame, name: str, session_dates: dict) -> list[str]:
    """Write ``frame`` into ``OUT/table/date=D/NAME.parquet`` files; returns the files written."""
    import pandas as pd

    schema = arrow_schema(pa, table, frame)
    written = []
    if frame.empty:  # an empty file keeps the table's schema readable even with no rows at all
        os.makedirs(os.path.join(out, table, "date=unknown"), exist_ok=True)
        path = os.path.join(out, table, "date=unknown", name + ".parquet")
        pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)
        return [path]
    dates = _dates(pd, frame, table, session_dates)
    for date in sorted(set(dates)):
        part = frame[(dates == date).to_numpy()].reset_index(drop=True)
        d = os.path.join(out, table, f"date={date}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, name + ".parquet")
        pq.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False), path)
        written.append(path)
    return written


def _plan(chain: CaptureChain, prev: dict | None) -> tuple[int, int, str]:
    """(index of the first file to read, frames before it, why) for one sensor."""
    entries = [_file_entry(p, ts) for p, ts in zip(chain.paths, chain.first_ts)]
    if prev is None:
        return 0, 0, "new sensor"
    known = prev["files"]
    same = len(entries) >= len(known) and all(
        (a["path"], a["size"], a["mtime_ns"]) == (b["path"], b["size"], b["mtime_ns"]) for a, b in zip(entries, known))
    if not same:
        return 0, 0, "files changed or an older file was added: the sensor is analysed again"
    if len(entries) == len(known):
        return len(entries), 0, "nothing new"
    k = prev["resume_index"]
    return k, prev["resume_frame_base"], f"{len(entries) - len(known)} new file(s); re-reading from file {k}"


def write_dataset(paths: Iterable[str | os.PathLike[str]], out: str, *, sensor_by: str = "dir",
                  jobs: int | None = None, client=None, **options) -> dict:
    """Analyse ``paths`` into the Parquet dataset ``out`` (see the module docstring); only what
    is new since the manifest is read.  Returns the new manifest (with this run's ``plan``)."""
    pa = require("pyarrow", "a Parquet dataset")
    pq = require("pyarrow.parquet", "a Parquet dataset")
    os.makedirs(out, exist_ok=True)
    mpath = os.path.join(out, MANIFEST)
    manifest = {"version": MANIFEST_VERSION, "sensors": {}, "runs": 0}
    if os.path.exists(mpath):
        with open(mpath, encoding="utf-8") as fh:
            manifest = json.load(fh)
    run = manifest.get("runs", 0) + 1
    options.setdefault("skip_unreadable", True)
    plan = {}
    unreadable: list[tuple[str, str]] = []
    for chain in discover(paths, sensor_by):
        prev = manifest["sensors"].get(chain.name)
        start, base, why = _plan(chain, prev)
        plan[chain.name] = {"first_file": start, "why": why, "read": chain.paths[start:]}
        if start >= len(chain.paths):
            continue
        sid = _sensor_id(chain.name)
        if start == 0 and prev is not None:  # start over: drop every file of this sensor
            for table in TABLES:
                _remove(out, table, f"part-{sid}-")
        else:
            for table in TABLES:
                _remove(out, table, f"part-{sid}-tail")
        part = replace(chain, paths=chain.paths[start:], first_ts=chain.first_ts[start:], frame_base=base)
        if client is not None or (jobs or 1) > 1:
            from .parallel import run_chains

            result = run_chains([part], jobs=jobs or 2, client=client, **options)
        else:
            result = analyze([part], **options)
        note_cross_sensor(result)
        unreadable.extend(result.unreadable)
        manifest["sensors"][chain.name] = _write_sensor(pa, pq, out, result, chain, start, base, sid, run)
    manifest["runs"] = run
    manifest["tool"] = f"dissect902 {__version__}"
    with open(mpath + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1)
    os.replace(mpath + ".tmp", mpath)
    manifest["plan"] = plan
    manifest["unreadable"] = unreadable  # this run's (path, why): also weird rows in the dataset
    return manifest


def _write_sensor(pa, pq, out, result, chain: CaptureChain, start: int, base: int, sid: str, run: int) -> dict:
    cap = result.captures[0]
    files = getattr(cap, "files", [])
    index = {p: i for i, p in enumerate(chain.paths)}
    end_ts = cap.last_ts
    unsettled = [s for s in result.sessions if end_ts is None or s.end > end_ts - SETTLE_S]
    start_file = {s.uid: index.get(s.sources[0]["file"], start) if s.sources else start for s in result.sessions}
    resume = min((start_file[s.uid] for s in unsettled), default=len(chain.paths))
    # frames before the resume file: those of the files read before it in this run, and before this run
    resume_base = base + sum(f.stats.packets for f in files if index.get(f.path, 0) < resume)
    resume_ts = chain.first_ts[resume] if resume < len(chain.paths) else None
    settled = {s.uid for s in result.sessions if start_file[s.uid] < resume}
    chain_files = {p: i < resume for p, i in index.items()}
    session_dates = {s.uid: _ts(s.start).strftime("%Y-%m-%d") for s in result.sessions}
    for table in TABLES:
        frame = getattr(result, f"{table}_frame")()
        keep = _split_rows(frame, table, settled, resume_ts, chain_files).to_numpy(dtype=bool)
        _write(pa, pq, out, table, frame[keep].reset_index(drop=True), f"part-{sid}-{run:05d}", session_dates)
        _write(pa, pq, out, table, frame[~keep].reset_index(drop=True), f"part-{sid}-tail", session_dates)
    return {"files": [_file_entry(p, ts) for p, ts in zip(chain.paths, chain.first_ts)],
            "packets": {f.path: f.stats.packets for f in files},
            "resume_index": resume, "resume_frame_base": resume_base, "resume_ts": resume_ts,
            "last_run": run, "last_read_from": start}


def _remove(out: str, table: str, prefix: str) -> None:
    root = os.path.join(out, table)
    if not os.path.isdir(root):
        return
    for d in os.listdir(root):
        sub = os.path.join(root, d)
        for f in os.listdir(sub):
            if f.startswith(prefix):
                os.remove(os.path.join(sub, f))
        if not os.listdir(sub):
            shutil.rmtree(sub)


def read_table(out: str, table: str):
    """A dataset table as one pandas frame with the declared dtypes (``date`` as a string)."""
    pd = require("pandas", "reading a Parquet dataset")
    frame = pd.read_parquet(os.path.join(out, table))
    if "date" in frame.columns:
        frame["date"] = frame["date"].astype(str)
    return frame
