"""Writing a dataset: captures with their labels, in parallel processes, and the ``dataset.json`` manifest.

Job: ``build_capture`` and ``write_capture`` turn capture *k* of a seed into a file and its
labels (the same file whatever the number of captures); ``generate`` writes many, optionally
in worker processes (``fork`` where available, each with its own folder of PEM files for
``tlsbio``), and the manifest (schema ``DATASET_SCHEMA``) with per-capture rows and totals.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import multiprocessing.util
import os
import shutil
import tempfile
from dataclasses import asdict
from typing import Callable

from ..labels import FEATURES
from .builder import CaptureBuilder, CaptureSpec, capture_name
from .options import DATASET_SCHEMA, Options
from .scenario import DatasetScenario


def build_capture(seed: int, index: int, opts: Options | None = None, spill_dir: str | None = None,
                  keylog: str | None = None) -> tuple[DatasetScenario, CaptureSpec]:
    """Draw and build capture ``index`` of dataset ``seed`` (not yet written)."""
    opts = opts or Options()
    builder = CaptureBuilder(seed, index, opts, spill_dir, keylog)
    sc = builder.build()
    sc.description = (f"dataset seed {seed}, capture {index}: {builder.era} site, {builder.spec.profile} conditions "
                      f"({builder.spec.kind}, {builder.spec.network}), {len(sc.flows)} connections")
    return sc, builder.spec


def write_capture(out_dir: str | os.PathLike, seed: int, index: int, opts: Options | None = None) -> dict:
    """Build and write one capture with its labels; returns a manifest row."""
    opts = opts or Options()
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    stem = capture_name(seed, index, opts.prefix)
    keylog = os.path.join(out_dir, stem + ".keys") if opts.keys else None
    if keylog and os.path.exists(keylog):
        os.remove(keylog)
    sc, spec = build_capture(seed, index, opts, keylog=keylog)      # spill files go to TMPDIR
    filename = f"{stem}.{spec.extension}"
    path = os.path.join(out_dir, filename)
    labels = sc.write(path, spec.fmt, spec.link, offload=spec.offload, local=spec.local,
                      capture_info=spec.info(), dataset_info={"schema": DATASET_SCHEMA, "seed": seed, "index": index},
                      ts_resolution=spec.ts_resolution, byteorder=spec.byteorder, compress=spec.compress,
                      snaplen=spec.snaplen,
                      link_options={"local": spec.local} if spec.link in ("sll", "sll2") else None)
    authd = [c for c in labels["connections"] if c["service"] == "authd"]
    return {"file": filename, "labels": stem + ".labels.json",
            "packets": labels["capture"]["packets"], "bytes": os.path.getsize(path),
            "connections": len(labels["connections"]), "authd_sessions": len(authd),
            "midstream": sum(1 for c in authd if c["midstream"]),
            "features": {f: sum(1 for c in authd if c["feature"] == f) for f in FEATURES},
            "conditions": spec.info()}


def _job(args) -> dict:
    out_dir, seed, index, opts = args
    return write_capture(out_dir, seed, index, opts)


def _worker_init() -> None:
    """Give each worker process its own folder for the PEM files ``ssl`` loads (``tlsbio``), so
    two processes never write the same file at once; it is removed when the worker exits."""
    from .. import tlsbio
    folder = tempfile.mkdtemp(prefix="dissect902-lab-")
    tlsbio._PEM_DIR[:] = [folder]
    multiprocessing.util.Finalize(None, shutil.rmtree, args=(folder, True), exitpriority=10)


def pool_context():
    """``fork`` where available (workers inherit loaded modules and cached certificates; works
    from notebooks and ``python -``), else the platform default."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def generate(out_dir: str | os.PathLike, n_captures: int, seed: int, *, sessions_per_capture=(6, 12),
             conditions: str = "varied", midstream_share: float = 0.2, min_bytes: int = 4096,
             max_bytes: int = 64 << 20, max_console_s: float = 10800.0, background: bool = True, prefix: str = "lab",
             keys: bool = False, workers: int = 1, first_index: int = 0,
             progress: Callable[[int, int, dict], None] | None = None) -> dict:
    """Write ``n_captures`` labelled captures to ``out_dir`` and a ``dataset.json`` manifest.

    Deterministic per ``(seed, capture index)``; ``workers`` > 1 builds captures in parallel
    processes (same output). ``sessions_per_capture`` is an int or a ``(low, high)`` range of
    authd sessions per capture (brute force across connections adds a few). ``conditions`` is
    ``"varied"`` or one of ``CAPTURE_PROFILES``. ``midstream_share`` is the probability that an
    eligible session (MKS, NFC, SOAP, VMXARGS, multi-attempt brute force) is captured from
    inside. ``max_bytes`` bounds NFC transfer sizes (generation is streamed: memory stays
    bounded, time grows with bytes). Returns the manifest.
    """
    opts = Options(sessions_per_capture=sessions_per_capture, conditions=conditions, midstream_share=midstream_share,
                   min_bytes=min_bytes, max_bytes=max_bytes, max_console_s=max_console_s, background=background,
                   keys=keys, prefix=prefix)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    jobs = [(out_dir, seed, first_index + k, opts) for k in range(n_captures)]
    rows: list[dict | None] = [None] * len(jobs)
    if workers > 1 and len(jobs) > 1:
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(),
                                                    initializer=_worker_init) as pool:
            futures = {pool.submit(_job, job): k for k, job in enumerate(jobs)}
            done = 0
            for future in concurrent.futures.as_completed(futures):
                k = futures[future]
                rows[k] = future.result()
                done += 1
                if progress:
                    progress(done, len(jobs), rows[k])
    else:
        for k, job in enumerate(jobs):
            rows[k] = _job(job)
            if progress:
                progress(k + 1, len(jobs), rows[k])
    manifest = {
        "schema": DATASET_SCHEMA,
        "seed": seed,
        "options": {**asdict(opts), "sessions_per_capture": list(opts.sessions_per_capture)},
        "captures": rows,
        "totals": {
            "captures": len(rows),
            "packets": sum(r["packets"] for r in rows),
            "bytes": sum(r["bytes"] for r in rows),
            "authd_sessions": sum(r["authd_sessions"] for r in rows),
            "midstream": sum(r["midstream"] for r in rows),
            "features": {f: sum(r["features"][f] for r in rows) for f in FEATURES},
        },
    }
    with open(os.path.join(out_dir, "dataset.json"), "w") as handle:
        json.dump(manifest, handle, indent=1)
        handle.write("\n")
    return manifest
