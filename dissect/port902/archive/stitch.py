"""Group an archive's files into per-sensor chains and analyse them (stage: archive).

Never stitches across sensors: each sensor is its own ``io.chain.CaptureChain``, so its
connection table, hand-offs and diagnosis stream are its own; afterwards a connection seen by
two sensors (same 4-tuple, overlapping time) gets a ``seen_by_several_sensors`` weird row per
sensor naming the other, and stays reported once per sensor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

from ..analysis import Analysis, analyze
from ..analyzers.session import Weird
from ..extras import require
from ..errors import CaptureError
from ..io.chain import CaptureChain
from ..io.formats import GZIP_MAGIC, PCAP_MAGIC, PCAPNG_SHB

SENSOR_BY = ("dir", "none", "file")


def _expand(inputs: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Files as given, and the captures under a given directory (sorted): regular, non-hidden
    files that start like a pcap, pcapng or gzip file, or are named like a capture (``.pcap``,
    ``.pcapng``, ``.cap``, rotated ``x.pcap.3``: a damaged one is then a weird row naming it).
    Notes, key logs and labels beside the captures are left alone; a directory with no capture
    in it is an error, not an all-clear."""
    out: list[str] = []
    for item in inputs:
        p = os.fspath(item)
        if os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    path = os.path.join(root, f)
                    if not f.startswith(".") and f != "manifest.json" and (_named_like_capture(f)
                                                                             or _looks_like_capture(path)):
                        found.append(path)
            if not found:
                raise CaptureError(f"{p}: no pcap, pcapng or gzip file in this directory")
            out += found
        else:
            out.append(p)
    return out


def _named_like_capture(name: str) -> bool:
    parts = name.lower().split(".")[1:]
    return any(p in ("pcap", "pcapng", "cap") for p in parts)


def _looks_like_capture(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return True  # unreadable: let the reader say why, as a weird row naming the file
    return (head[:2] == GZIP_MAGIC or int.from_bytes(head.ljust(4, b"\0"), "little") in PCAP_MAGIC
            or head == PCAPNG_SHB.to_bytes(4, "little"))


def discover(inputs: Iterable[str | os.PathLike[str]], sensor_by: str = "dir") -> list[CaptureChain]:
    """The sensors' chains: ``dir`` groups by the directory a file is in, ``none`` makes one
    chain of everything, ``file`` one chain per file.  Chains come in order of first name."""
    if sensor_by not in SENSOR_BY:
        raise ValueError(f"sensor_by must be one of {SENSOR_BY}, not {sensor_by!r}")
    files = _expand(inputs)
    groups: dict[str, list[str]] = {}
    for f in files:
        key = {"dir": os.path.dirname(f) or ".", "none": "archive", "file": f}[sensor_by]
        groups.setdefault(key, []).append(f)
    return [CaptureChain.of(name, paths) for name, paths in groups.items()]


def note_cross_sensor(result: Analysis) -> int:
    """Connections seen by more than one sensor: a weird row on each sensor's copy naming the
    others (the sessions themselves stay, once per sensor).  Returns how many were noted."""
    by_tuple: dict[tuple, list] = {}
    for s in result.sessions:
        by_tuple.setdefault((s.client_ip, s.client_port, s.server_ip, s.server_port), []).append(s)
    noted = 0
    for group in by_tuple.values():
        if len({s.source for s in group}) < 2:
            continue
        for s in group:
            others = [o for o in group if o.source != s.source and o.start <= s.end and s.start <= o.end]
            if others:
                noted += 1
                names = ", ".join(sorted({f"{o.source} ({o.uid})" for o in others}))
                result.capture_weird.append(Weird(s.start, s.first_frame, "seen_by_several_sensors",
                                                  f"{s.client} -> {s.server} also captured by {names}; "
                                                  "reported once per sensor", s.uid, s.source))
    return noted


@dataclass
class ArchiveResult:
    """What ``analyze_archive`` returns: the pipeline's :class:`Analysis` and the chains read."""

    analysis: Analysis
    chains: list[CaptureChain]

    def __getattr__(self, name: str):
        """``sessions``, ``handoffs``, ``weird``, ``to_dict()`` ... are the analysis'; ``X_frame()``
        is the analysis' table ``X`` as a Dask DataFrame with the same declared columns and
        dtypes (``pip install 'dissect902[scale]'``; ``result.analysis.X_frame()`` is pandas)."""
        if name in ("analysis", "chains"):
            raise AttributeError(name)
        value = getattr(self.analysis, name)
        if name.endswith("_frame") and callable(value):
            return lambda: self._dask(value())
        return value

    def _dask(self, frame):
        dd = require("dask.dataframe", "Dask DataFrames of an archive")
        dask = require("dask", "Dask DataFrames of an archive")
        with dask.config.set({"dataframe.convert-string": False}):  # keep the declared dtypes as they are
            return dd.from_pandas(frame, npartitions=max(1, min(len(self.chains), len(frame) or 1)))


def analyze_archive(paths, client=None, *, jobs: int | None = None, sensor_by: str = "dir",
                    **options) -> ArchiveResult:
    """Analyse capture files and directories as per-sensor streams (see module docstring).

    ``client`` (a ``distributed.Client``) or ``jobs`` > 1 (local processes) splits the work by
    connection (``archive.parallel``); the result is the serial one.  ``options`` go to
    :func:`~dissect.port902.analysis.analyze` (``keylog``, ``observers`` ...); unreadable files
    become ``unreadable_capture`` weird rows and the rest is analysed."""
    if client is not None or (jobs or 1) > 1:
        from .parallel import analyze_parallel

        if client is not None and not jobs:
            jobs = max(2, len(client.scheduler_info().get("workers", {})) + 1)
        return analyze_parallel(paths, jobs=jobs or 2, client=client, sensor_by=sensor_by, **options)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    chains = discover(paths, sensor_by)
    options.setdefault("skip_unreadable", True)
    result = analyze(chains, **options)
    note_cross_sensor(result)
    return ArchiveResult(result, chains)
