"""Archives on several processes or a Dask cluster, with the serial run's exact result (stage: archive).

Design (map / reduce, equivalent to the serial pipeline by construction):

* **map** -- share ``i`` of ``n`` reads every file of every sensor (each sensor still one
  stream, in the same order) but gives its connection table only the connections whose
  unordered 4-tuple hashes (crc32) to one of its slots (``shares``).  A connection's packets therefore all reach one
  share, in capture order, so its record is the one the serial run builds; a 4-tuple reused
  later (the only way two connections get the same uid seed) lands in the same share in the
  same order, so uid de-duplication matches too.  Share 0 also feeds the side analyses
  (DNS, ICMP, UDP 902, console paths, VNC) and keeps the capture-level rows (stats, damage,
  unusual-port greetings), exactly once; so it follows fewer connections, as many fewer as
  the head of the capture says the side analyses will cost (``caller_fraction``).
* **reduce** -- in the caller: the shares' sessions are merged per sensor in the serial
  order (start, first frame), then ``analysis.conclude`` runs once: hand-offs, inherited
  features and the diagnosis over all sessions, as in a serial run.  Each share gives its
  sessions their verdicts itself (``analysis.judge``: one record's own, and the costliest
  step after the scan -- the dialogue decoder), so that work is split too; a verdict reads
  nothing the hand-off links set, so ``conclude(judged=True)`` attaches the links after it.

The same map / reduce serves one big capture (``analyze_shared``, ``dissect902 analyze
--jobs``): the inputs are plain files read as ``analysis.analyze`` reads them, so the result is
the serial ``analyze`` result, not an archive's.  Why shares of connections and not chunks of
the file: the C scanner walks a whole file at about ten times the speed at which Python
handles what it keeps, so scanning it once per share costs little, while a chunk split would
have to cut connections, TCP reassembly and the side analyses' state at chunk borders and
stitch them back (the idle sweep and the flow-table cap run on capture time and order).  A
share of connections needs no stitching: each connection is whole in one share.

Shares 1..n-1 run in worker processes (``jobs``: ``concurrent.futures``) or on a Dask
cluster (``client``: ``distributed.Client``); share 0 and the reduce run where the caller is,
because the side analyses' state need not travel.  What differs from serial: nothing in the
result; under a flood beyond the connection table's limit (``flow_table_overflow``), each
share evicts from its own table, so which connections finish early can differ.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ..analysis import _analyze, conclude, default_observers, judge
from ..analyzers.session import MAX_RECORDS
from ..io.chain import CaptureChain
from .stitch import ArchiveResult, discover, note_cross_sensor


_CALLER_DONE = None  # in a worker of run_chains' pool: set when the caller has read its share


def _set_caller_done(event) -> None:
    global _CALLER_DONE
    _CALLER_DONE = event


def _share(chains: list, share: tuple[int, int, int], options: dict):
    """One share's sessions (no side analyses, no cross-session steps); runs on a worker.
    ``share``: its slots (lo, hi, slots), see :func:`shares`.  Returns (records with their
    verdicts, records still to judge): the worker judges its own until the caller has read its
    share too, then hands the rest back to be judged by all (``run_chains``)."""
    result = _analyze(chains, result_observers=[], share=share, concluding=False, progress=None,
                      **options)
    judged = []
    for i, rec in enumerate(result.sessions):
        if _CALLER_DONE is not None and _CALLER_DONE.is_set():
            return judged, result.sessions[i:]
        judged.append(judge(rec))
    return judged, []


def _judge_all(records: list) -> list:
    """Verdicts for records another process built (``run_chains``: judging shared out)."""
    return [judge(s) for s in records]


STEAL_CHUNKS = 16  # the caller's records are offered to the workers in this many pieces


def _judge_shared(records: list, pool: ProcessPoolExecutor | None) -> list:
    """``judge`` on the caller's records, shared with the pool's workers as they become free.

    The caller's share also carries the side analyses, so it usually finishes its scan last:
    its records are cut into pieces offered to the pool last piece first, queued behind the
    workers' own shares, while the caller judges them first piece first, taking back each piece
    no worker has started (``Future.cancel``).  Which process judges a record changes nothing in
    it (a verdict is the record's own)."""
    if pool is None or len(records) < 2 * STEAL_CHUNKS:
        return [judge(s) for s in records]
    size = -(-len(records) // STEAL_CHUNKS)
    pieces = [records[i:i + size] for i in range(0, len(records), size)]
    offered = [pool.submit(_judge_all, piece) for piece in reversed(pieces)][::-1]
    out: list = []
    taken = []
    for piece, fut in zip(pieces, offered):
        if fut.cancel():
            out.extend(judge(s) for s in piece)
        else:
            taken.append(fut)
    for fut in taken:
        out.extend(fut.result())
    return out


SLOTS = 1024  # a connection's 4-tuple hashes to one of these; each share follows a range of them
# Python's cost per kept packet, in microseconds: an authd packet (connection, reassembly, TLS,
# its share of the verdict) and a side-analysis packet (DNS, 443/7331/7343 control, ICMP),
# measured on the benchmark capture (README "Speed and memory").  Only their ratio is used, and
# only to balance the shares: which process follows a connection changes nothing in the result.
AUTHD_COST, SIDE_COST = 14.0, 8.0
SAMPLE_BYTES = 32 << 20  # the head of the first capture read to weigh the two
SAMPLE_PACKETS = 50_000


def shares(count: int, caller: float) -> list[tuple[int, int, int]]:
    """Slot ranges (lo, hi, SLOTS) of ``count`` shares: the caller's (share 0) ``caller`` of the
    connections, the workers the rest in equal parts (one share alone takes them all)."""
    cut = round(SLOTS * caller) if count > 1 else SLOTS
    out = [(0, cut, SLOTS)]
    for i in range(1, count):
        out.append((cut + (SLOTS - cut) * (i - 1) // (count - 1), cut + (SLOTS - cut) * i // (count - 1), SLOTS))
    return out


def caller_fraction(chains: list, count: int, observers: list) -> float:
    """How many of the connections the caller should follow: share 0 also runs the side
    analyses, so where those have much to do (a busy resolver, HTTPS beside the consoles) it
    takes fewer connections, down to none, and the workers more.  Weighed from the head of the
    first capture (``SAMPLE_BYTES``) read with the C scanner: packets for the side analyses
    against authd packets, at their measured costs.  Without observers, or when the head says
    nothing, the shares are equal."""
    even = 1 / count
    if count < 2 or not observers:
        return even
    first = chains[0] if chains else None
    path = (getattr(first, "paths", None) or [first])[0]
    try:
        if path is None or not os.path.isfile(path):
            return even
        side, authd = _sample(path)
    except Exception:  # noqa: BLE001 - only a hint for the split: a capture that cannot be read fails later, clearly
        return even
    if not authd:
        return 0.0 if side else even
    work, extra = authd * AUTHD_COST, side * SIDE_COST
    # caller: extra + f * work; each worker: (1 - f) * work / (count - 1); equal when
    return min(even, max(0.0, (work - (count - 1) * extra) / (count * work)))


def _sample(path) -> tuple[int, int]:
    """(side-analysis packets, authd packets) among the first SAMPLE_BYTES of ``path``."""
    from ..io.capture import CaptureReader, Selection
    from ..io.packet import DEFAULT_TCP_PORTS

    sel = Selection()
    for obs in default_observers():  # fresh ones: select() counts the files an observer saw
        obs.select(sel)
    done: list[int] = []
    side = authd = 0
    with CaptureReader(path, sel, progress=done.append) as reader:
        for pkt in reader:
            if pkt.proto == 6 and (pkt.sport in DEFAULT_TCP_PORTS or pkt.dport in DEFAULT_TCP_PORTS):
                authd += 1
            else:
                side += 1
            if (done and done[-1] >= SAMPLE_BYTES) or side + authd >= SAMPLE_PACKETS:
                break
    return side, authd


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


def analyze_shared(paths, *, jobs: int = 2, observers=None, progress=None, **options):
    """``analysis.analyze(paths)`` on ``jobs`` local processes: the same ``Analysis`` (the JSON
    byte for byte), each process scanning every file and following its share of the connections.
    ``paths``: distinct capture files (a pipe cannot be read twice).  A file that changes while
    the shares read it (a capture still being written) is read again in one process when the
    observers are the default ones (``observers`` None or empty), so the shares never disagree.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    names = [os.fspath(p) for p in paths]
    if len(set(names)) != len(names):
        raise ValueError("analyze_shared: the same file twice (its sessions could not be told apart)")
    before = _stamps(names)
    try:
        result = run_chains(names, jobs=jobs, observers=observers, progress=progress, **options)
    except (BrokenProcessPool, OSError):
        if observers:  # the caller's own observers have seen part of the capture: cannot start over
            raise
        # no worker processes here (no semaphores, a worker killed): the same analysis in one
        result = run_chains(names, jobs=1, observers=observers, progress=progress, **options)
        return result
    if _stamps(names) != before and not observers:
        # a file grew (a capture still being written) or changed while the shares read it: they
        # may have read to different ends, so read it once more in one process, as analyze does
        result = run_chains(names, jobs=1, observers=observers, progress=progress, **options)
    return result


def _stamps(names: list[str]) -> list[tuple[int, int] | None]:
    out: list[tuple[int, int] | None] = []
    for n in names:
        try:
            st = os.stat(n)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_size, st.st_mtime_ns))
    return out


def run_chains(chains: list, *, jobs: int = 2, client=None, observers=None, progress=None,
               **options):
    """The map / reduce over ready chains (``CaptureChain``) or plain capture files; returns the
    concluded ``Analysis``."""
    opts = _options(options)
    show = opts["show_secrets"]
    observers = list(default_observers(show) if observers is None else observers)
    count = max(1, int(jobs))
    parts = shares(count, caller_fraction(chains, count, observers))
    pool = None
    if count > 1 and client is not None:
        futures = [client.submit(_share, chains, parts[i], opts, pure=False) for i in range(1, count)]
        collect = lambda: client.gather(futures)  # noqa: E731
    elif count > 1:
        done = multiprocessing.get_context().Event()
        pool = ProcessPoolExecutor(max_workers=count - 1, initializer=_set_caller_done, initargs=(done,))
        futures = [pool.submit(_share, chains, parts[i], opts) for i in range(1, count)]
        collect = lambda: [f.result() for f in futures]  # noqa: E731
    else:
        collect = lambda: []  # noqa: E731
    try:
        local = _analyze(chains, result_observers=observers, share=parts[0], concluding=False,
                         progress=progress, **opts)
        if pool is not None:
            done.set()  # the workers hand back what they have not judged yet
        merged = _judge_shared(local.sessions, pool)  # while the workers judge theirs
        rest = []
        for judged, unjudged in collect():
            merged.extend(judged)
            rest.extend(unjudged)
        merged.extend(_judge_shared(rest, pool))  # the workers' leftovers, by everyone
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    order = {getattr(c, "name", c): i for i, c in enumerate(chains)}
    merged.sort(key=lambda s: (order.get(s.source, len(order)), s.start, s.first_frame))
    local.sessions = merged
    conclude(local, observers, any(isinstance(c, CaptureChain) for c in chains), judged=True)
    return local
