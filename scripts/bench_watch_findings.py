#!/usr/bin/env python3
"""What printing findings live costs ``dissect902 watch`` (issue 10).

    bench_watch_findings.py CAPTURE [--keep N] [--repeat R]

Runs ``watch -r CAPTURE -q -f jsonl`` in a child process twice per repeat: as shipped (the live
diagnosis: ``infer.diagnose.live.LiveFindings`` snapshots every 2 s of capture time and when a
session ended, within 10 % of the run time), and with the live snapshots switched off
(``Watcher.check`` doing nothing; the findings then all come at the end). Prints JSON:
wall and CPU seconds of the child (the run with the least CPU of R; CPU time is steadier than
wall time on a shared machine), peak RSS of the child, snapshots taken and skipped, findings printed
live / at the end. A capture spread over hours (``gen_bulk_capture.py --pps 10``) shows the
capture-time cadence; a dense one the time share.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CHILD = r"""
import sys
from dissect.port902.cli import watch
if sys.argv[1] == "off":
    watch.Watcher.check = lambda self: None
from dissect.port902.cli.main import main
sys.exit(main(["watch", "-r", sys.argv[2], "-q", "-f", "jsonl", "--keep", sys.argv[3]]))
"""


def run(mode: str, capture: str, keep: int) -> dict:
    t0, u0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([sys.executable, "-c", CHILD, mode, capture, str(keep)], capture_output=True, check=True)
    wall, u1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (u1.ru_utime - u0.ru_utime) + (u1.ru_stime - u0.ru_stime)
    records = [json.loads(x) for x in r.stdout.splitlines()]
    (summary,) = [x for x in records if x["record_type"] == "summary"]
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "sessions": summary["sessions"], "findings": summary["findings"],
            "printed_live": summary["findings_printed_live"], "printed_at_end": summary["findings_printed_at_end"],
            "snapshots": summary["diagnosis_snapshots"], "snapshots_skipped": summary["diagnosis_snapshots_skipped"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("capture")
    p.add_argument("--keep", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    out = {"capture": args.capture, "keep": args.keep}
    for mode in ("on", "off"):
        best = None
        for _ in range(args.repeat):
            got = run(mode, args.capture, args.keep)
            if best is None or got["cpu_s"] < best["cpu_s"]:
                best = got
        out[mode] = best
    out["peak_rss_mb_any_child"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    out["cpu_ratio_on_off"] = round(out["on"]["cpu_s"] / out["off"]["cpu_s"], 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
