#!/usr/bin/env python3
"""Mutation fuzzing campaign over every target in ``fuzz/targets.py`` (issue 13).

    python scripts/fuzz.py [--targets tls dns ...] [--inputs 100000] [--seconds 600]
                           [--timeout 20] [--seed 1] [--save tests/fuzz_regressions]

For each target: the seed corpus from ``samples/`` (``fuzz/corpus.py``) is run first, then
mutated inputs (AFL-style havoc: bit flips, interesting values, block deletes/duplicates,
truncation, splicing) until ``--inputs`` or ``--seconds`` is reached.  An input that raises is
a crash; one that runs longer than ``--timeout`` seconds (SIGALRM) is a hang.  The first input
of every distinct crash (exception type and the innermost frame of the project) is written
to ``--save`` as ``<target>-<sha1>.bin``, which ``tests/test_fuzz_regressions.py`` replays.
When ``atheris`` is installed, ``--atheris TARGET`` runs that target coverage-guided instead.

Prints a markdown table: target, inputs, seconds, inputs/s, crashes (distinct), hangs, and the
peak RSS of the process.  Exit status 1 when anything crashed or hung.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import signal
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fuzz import corpus, targets  # noqa: E402


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def crash_key(exc: BaseException) -> tuple:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "dissect/port902" in f.filename] or frames
    f = ours[-1]
    return type(exc).__name__, os.path.relpath(f.filename, REPO), f.lineno


def campaign(name: str, max_inputs: int, seconds: float, timeout: int, seed: int, save: Path | None) -> dict:
    fn = targets.TARGETS[name]
    seeds = corpus.seeds(name)
    rng = random.Random(f"{seed}-{name}")
    crashes: dict[tuple, bytes] = {}
    hangs = 0
    n = 0
    t0 = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    while n < max_inputs and time.perf_counter() - t0 < seconds:
        data = seeds[n] if n < len(seeds) else corpus.mutate(rng.choice(seeds), rng, seeds)
        n += 1
        signal.alarm(timeout)
        try:
            fn(data)
        except Hang:
            hangs += 1
            if save is not None:
                _save(save, name, "hang", data)
        except Exception as exc:  # noqa: BLE001 - every exception is a finding
            key = crash_key(exc)
            if key not in crashes:
                crashes[key] = data
                print(f"  {name}: crash {key[0]} at {key[1]}:{key[2]}: {str(exc)[:160]}", file=sys.stderr)
                if save is not None:
                    _save(save, name, "crash", data)
        finally:
            signal.alarm(0)
    took = time.perf_counter() - t0
    return {"target": name, "inputs": n, "seconds": took, "crashes": len(crashes), "hangs": hangs,
            "kinds": sorted(f"{k[0]}@{k[1]}:{k[2]}" for k in crashes)}


def _save(directory: Path, name: str, what: str, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{what}-{hashlib.sha1(data).hexdigest()[:12]}.bin"
    path.write_bytes(data)


def run_atheris(name: str) -> None:
    import atheris  # noqa: PLC0415 - optional

    fn = targets.TARGETS[name]
    atheris.Setup(sys.argv[:1] + sys.argv[3:], lambda data: fn(bytes(data)))
    atheris.Fuzz()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", nargs="+", default=list(targets.TARGETS), choices=list(targets.TARGETS))
    ap.add_argument("--inputs", type=int, default=100_000, help="inputs per target (default 100000)")
    ap.add_argument("--seconds", type=float, default=600.0, help="time limit per target (default 600)")
    ap.add_argument("--timeout", type=int, default=20, help="seconds before an input counts as a hang")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--save", type=Path, default=REPO / "tests" / "fuzz_regressions",
                    help="where crashing inputs are written (default tests/fuzz_regressions)")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--atheris", metavar="TARGET", help="run one target coverage-guided with atheris")
    args = ap.parse_args(argv)
    if args.atheris:
        run_atheris(args.atheris)
        return 0
    rows = []
    for name in args.targets:
        rows.append(campaign(name, args.inputs, args.seconds, args.timeout, args.seed,
                             None if args.no_save else args.save))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| target | inputs | seconds | inputs/s | crashes | hangs |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['target']} | {r['inputs']:,} | {r['seconds']:.0f} | {r['inputs'] / max(r['seconds'], 1e-9):,.0f} "
              f"| {r['crashes']} | {r['hangs']} |")
    total = sum(r["inputs"] for r in rows)
    print(f"\n{total:,} inputs in all; peak RSS {rss:.0f} MiB")
    for r in rows:
        for k in r["kinds"]:
            print(f"  {r['target']}: {k}")
    return 1 if any(r["crashes"] or r["hangs"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
