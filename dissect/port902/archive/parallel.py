"""Archives on several processes or a Dask cluster, with the serial run's exact result (stage: archive).

Design (map / reduce, equivalent to the serial pipeline by construction):

* **map** -- share ``i`` of ``n`` reads every file of every sensor (each sensor still one
  stream, in the same order) but gives its connection table only the connections whose
  unordered 4-tuple hashes (crc32) to ``i``.  A connection's packets therefore all reach one
  share, in capture order, so its record is the one the serial run builds; a 4-tuple reused
  later (the only way two connections get the same uid seed) lands in the same share in the
  same order, so uid de-duplication matches too.  Share 0 also feeds the side analyses
  (DNS, ICMP, UDP 902, console paths, VNC) and keeps the capture-level rows (stats, damage,
  unusual-port greetings), exactly once.
* **reduce** -- in the caller: the shares' sessions are merged per sensor in the serial
  order (start, first frame), then ``analysis.conclude`` runs once: hand-offs, verdicts,
  inherited features and the diagnosis over all sessions, as in a serial run.

Shares 1..n-1 run in worker processes (``jobs``: ``concurrent.futures``) or on a Dask
cluster (``client``: ``distributed.Client``); share 0 and the reduce run where the caller is,
because the side analyses' state need not travel.  What differs from serial: nothing in the
result; under a flood beyond the connection table's limit (``flow_table_overflow``), each
share evicts from its own table, so which connections finish early can differ.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

from ..analysis import _analyze, conclude, default_observers
from ..analyzers.session import MAX_RECORDS
from ..io.chain import CaptureChain
from .stitch import ArchiveResult, discover, note_cross_sensor


def _share(chains: list[CaptureChain], index: int, count: int, options: dict):
    """One share's sessions (no side analyses, no cross-session steps); runs on a worker."""
    result = _analyze(chains, result_observers=[], share=(index, count), concluding=False, progress=None,
                      **options)
    return result.sessions


def _options(options: dict) -> dict:
    out = {"show_secrets": False, "selection": None, "max_records": MAX_RECORDS, "keylog": None,
           "keep_plaintext": False, "skip_unreadable": True}
    out.update(options)
    return out


def analyze_parallel(paths, *, jobs: int = 2, client=None, sensor_by: str = "dir", observers=None,
                     progress=None, **options) -> ArchiveResult:
    """``analyze_archive`` on ``jobs`` shares (local processes, or the Dask ``client``'s workers)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    chains = discover(paths, sensor_by)
    result = run_chains(chains, jobs=jobs, client=client, observers=observers, progress=progress, **options)
    note_cross_sensor(result)
    return ArchiveResult(result, chains)


def run_chains(chains: list[CaptureChain], *, jobs: int = 2, client=None, observers=None, progress=None,
               **options):
    """The map / reduce over ready chains; returns the concluded ``Analysis``."""
    opts = _options(options)
    show = opts["show_secrets"]
    observers = list(default_observers(show) if observers is None else observers)
    count = max(1, int(jobs))
    pool = None
    if count > 1 and client is not None:
        futures = [client.submit(_share, chains, i, count, opts, pure=False) for i in range(1, count)]
        collect = lambda: client.gather(futures)  # noqa: E731
    elif count > 1:
        pool = ProcessPoolExecutor(max_workers=count - 1)
        futures = [pool.submit(_share, chains, i, count, opts) for i in range(1, count)]
        collect = lambda: [f.result() for f in futures]  # noqa: E731
    else:
        collect = lambda: []  # noqa: E731
    try:
        local = _analyze(chains, result_observers=observers, share=(0, count), concluding=False,
                         progress=progress, **opts)
        others = collect()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    order = {c.name: i for i, c in enumerate(chains)}
    merged = list(local.sessions)
    for part in others:
        merged.extend(part)
    merged.sort(key=lambda s: (order.get(s.source, len(order)), s.start, s.first_frame))
    local.sessions = merged
    conclude(local, observers, True)
    return local
