#!/usr/bin/env python3
"""Capture-archive benchmark (issue 11): stitching cost and throughput with 1 and 2 workers.

    python scripts/bench_archive.py [--packets 5000000] [--files 24] [--keep DIR] [--json FILE]

Generates one bulk capture with ``scripts/gen_bulk_capture.py`` (as ``scripts/benchmark.py``
does), splits it with real ``editcap -c`` into ``--files`` rotated pieces named against time
order (``esx.pcap.0`` is the newest), then runs as child processes, one after the other:

* ``analyze WHOLE.pcap -f json``          -- the one-file baseline
* ``analyze DIR/ -f json``                -- the archive, one stream, one process (stitching cost)
* ``analyze DIR/ -f json --jobs 2``       -- the archive split by connection over 2 processes

and reports wall time, packets/s, CPU seconds and the peak RSS of the main process (from
``os.wait4`` of that pid; a ``--jobs`` worker is a child of it and reports its own peak RSS
its own peak is not in this figure: the README says how it is bounded).  It checks that the
three runs report the same sessions (4-tuple, first/last frame, bytes, feature) and exits 1
when they do not or a run failed.  The file is read once before the runs (warm page cache).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import GENERATOR, REPO, human_size, machine_facts, run_measured, warm  # noqa: E402


def sessions_of(path: Path) -> list:
    doc = json.loads(path.read_text())
    return sorted((s["client"], s["server"], s["first_frame"], s["last_frame"], s["bytes"]["client_to_server"],
                   s["bytes"]["server_to_client"], s["feature"]) for s in doc["sessions"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=5_000_000)
    ap.add_argument("--files", type=int, default=24, help="rotated pieces (default 24)")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (re-uses the capture)")
    ap.add_argument("--seed", type=int, default=902)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-archive-"))
    work.mkdir(parents=True, exist_ok=True)
    whole = work / f"bulk-{args.packets}.pcap"
    if not whole.exists():
        print(f"generating {args.packets:,} packets -> {whole}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(GENERATOR), str(whole), "--packets", str(args.packets),
                        "--seed", str(args.seed), "-q"], check=True, stdout=subprocess.DEVNULL, cwd=REPO)
    ring = work / f"ring-{args.packets}-{args.files}"
    if not ring.exists():
        ring.mkdir()
        per = -(-args.packets // args.files)
        subprocess.run(["editcap", "-F", "pcap", "-c", str(per), str(whole), str(ring / "x.pcap")], check=True)
        pieces = sorted(ring.iterdir())
        for i, p in enumerate(pieces):
            p.rename(ring / f"esx.pcap.{len(pieces) - 1 - i}")
    files = sorted(ring.iterdir())
    size = whole.stat().st_size
    warm(whole)
    for f in files:
        warm(f)
    py = [sys.executable, "-m", "dissect.port902.cli.main", "analyze", "-q", "-f", "json", "-o"]
    runs = [("one file", [str(whole)]), ("archive, 1 worker", [str(ring)]),
            ("archive, --jobs 2", ["--jobs", "2", str(ring)])]
    rows, outs = [], []
    for name, extra in runs:
        out = work / f"out-{len(rows)}.json"
        r = run_measured(py + [str(out)] + extra, work / f"out-{len(rows)}.stdout", work / f"out-{len(rows)}.stderr")
        r["name"] = name
        r["packets_per_s"] = args.packets / r["seconds"]
        rows.append(r)
        outs.append(out)
        print(f"{name}: rc={r['rc']} {r['seconds']:.2f} s", file=sys.stderr, flush=True)
    facts = machine_facts(None)
    print(f"\n{facts.get('cpu_model', '?')}, {os.cpu_count()} cores; {args.packets:,} packets, {human_size(size)}, "
          f"{len(files)} files\n")
    print("| run | seconds | packets/s | CPU s | peak RSS (main) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['name']} | {r['seconds']:.2f} | {r['packets_per_s'] / 1e6:.2f} M | {r['cpu_seconds']:.2f} | "
              f"{r['peak_rss_mib']:.0f} MiB |")
    ok = all(r["rc"] == 0 for r in rows)
    if ok:
        base = sessions_of(outs[0])
        same = [sessions_of(o) == base for o in outs[1:]]
        print(f"\nsessions: {len(base)}; archive == one file: {same[0]}; --jobs 2 == one file: {same[1]}")
        ok = all(same)
        print(f"stitching cost (archive, 1 worker vs one file): {rows[1]['seconds'] / rows[0]['seconds'] - 1:+.1%}")
        print(f"--jobs 2 speed-up over 1 worker: {rows[1]['seconds'] / rows[2]['seconds']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"facts": facts, "rows": rows, "files": len(files)}, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
