#!/usr/bin/env python3
"""Per-connection cost under hostile load: time and peak memory of ``dissect902 analyze``.

    python scripts/stress_bench.py [--kinds synflood short concurrent handoff outoforder] [--scale 1.0]
                                   [--format jsonl] [--keep DIR]
    python scripts/stress_bench.py --targets [--keep DIR]     # issue 13's limits, pass/fail

For each kind it writes a capture with ``scripts/gen_stress.py`` at two sizes (N and 2N)
and runs ``python -m dissect.port902.cli.main analyze F -f FORMAT -o /dev/null -q`` as a
child process, measuring its wall-clock time and its own peak RSS (``ru_maxrss`` from
``os.wait4``).  It prints a markdown table with the time ratio between the two sizes
(about 2 for linear cost) and the memory per connection above the baseline of a run on
an empty capture.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import gen_stress  # noqa: E402

SIZES = {"synflood": 100_000, "short": 10_000, "concurrent": 10_000, "handoff": 2_500, "outoforder": 10_000}


PYTHON = sys.executable


def run(path: str, fmt: str) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB, exit status) of one analyze child."""
    cmd = [PYTHON, "-m", "dissect.port902.cli.main", "analyze", path, "-f", fmt, "-o", os.devnull, "-q"]
    t0 = time.perf_counter()
    # run from the capture directory: the interpreter's installed dissect902 is measured, not the checkout's
    proc = subprocess.Popen(cmd, cwd=os.path.dirname(path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode not in (0, 1):
        print(err, file=sys.stderr)
    return took, usage.ru_maxrss / 1024, proc.returncode


#: issue 13's memory targets: (kind, connections, peak RSS limit in MiB) with -f jsonl
TARGETS = [("synflood", 1_000_000, 300), ("short", 200_000, 300), ("concurrent", 50_000, 500)]


def targets(tmp: str, fmt: str) -> int:
    """``--targets``: each of the issue's loads once, at its size; the peak against its limit, and
    whether every connection came out as a session line (1 when a limit or a count is missed)."""
    print("| load | connections | file MB | s | peak RSS MiB | limit | sessions out | ok |\n|---|---:|---:|---:|---:|---:|---:|---|")
    failed = 0
    for kind, n, limit in TARGETS:
        path = os.path.join(tmp, f"{kind}-{n}.pcap")
        if not os.path.exists(path):
            gen_stress.generate(kind, path, n)
        out = os.path.join(tmp, f"{kind}-{n}.jsonl")
        cmd = [PYTHON, "-m", "dissect.port902.cli.main", "analyze", path, "-f", fmt, "-o", out, "-q"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=os.path.dirname(path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        took, rss = time.perf_counter() - t0, usage.ru_maxrss / 1024
        with open(out, encoding="utf-8") as handle:
            sessions = sum(1 for line in handle if line.startswith('{"record_type": "session"'))
        ok = rss <= limit and sessions == n and proc.returncode in (0, 1)
        failed += not ok
        print(f"| {kind} | {n:,} | {os.path.getsize(path) / 1e6:.0f} | {took:.1f} | {rss:.0f} | {limit} | {sessions:,} | "
              f"{'yes' if ok else 'NO'} |")
    return 1 if failed else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the default sizes")
    ap.add_argument("--format", default="jsonl")
    ap.add_argument("--keep", metavar="DIR", help="keep the captures in DIR")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter whose dissect902 is measured (another checkout's venv: a before/after)")
    ap.add_argument("--targets", action="store_true",
                    help="run issue 13's memory targets instead (1M-SYN flood, 200k short sessions, 50k "
                         "concurrent; -f jsonl; exit 1 if one is missed)")
    args = ap.parse_args(argv)
    global PYTHON
    PYTHON = args.python
    tmp = args.keep or tempfile.mkdtemp(prefix="stress902-")
    os.makedirs(tmp, exist_ok=True)
    if args.targets:
        return targets(tmp, args.format)
    empty = os.path.join(tmp, "empty.pcap")
    with open(empty, "wb") as f:
        f.write(gen_stress.PCAP_HEADER)
    _, base_rss, _ = run(empty, args.format)
    rows = []
    for kind in args.kinds:
        n = max(10, int(SIZES[kind] * args.scale))
        res = []
        for size in (n, 2 * n):
            path = os.path.join(tmp, f"{kind}-{size}.pcap")
            if not os.path.exists(path):
                meta = gen_stress.generate(kind, path, size)
            else:
                meta = {"connections": 1 if kind == "outoforder" else size * (3 if kind == "handoff" else 1), "file_size": os.path.getsize(path)}
            took, rss, rc = run(path, args.format)
            res.append((size, meta, took, rss, rc))
        (n1, m1, t1, r1, _), (n2, m2, t2, r2, rc2) = res
        per_conn = (r2 - base_rss) * 1024 * 1024 / m2["connections"]
        rows.append((kind, m2["connections"], m2["file_size"] / 1e6, t1, t2, t2 / t1 if t1 else 0, r2, per_conn, rc2))
    print(f"baseline RSS (empty capture): {base_rss:.0f} MiB, format {args.format}")
    print("| load | connections (2N) | MB | s (N) | s (2N) | ratio | peak RSS MiB (2N) | bytes/conn | exit |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, conns, mb, t1, t2, ratio, rss, per, rc in rows:
        print(f"| {kind} | {conns:,} | {mb:.1f} | {t1:.1f} | {t2:.1f} | {ratio:.2f} | {rss:.0f} | {per:,.0f} | {rc} |")
    print(json.dumps({"rows": rows}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
