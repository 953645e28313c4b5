"""Write the failure captures for ``dissect902 doctor`` and samples/doctor/README.md.

A thin command line over ``dissect.port902.lab.failures``: choose captures, a seed and the
output folder; the README is rendered from whatever labels files the folder then holds.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:          # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from dissect.port902.lab import failreadme, failures  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, write the requested captures and the README; returns an exit code."""
    names = [s.filename for s in failures.FAILURE_SAMPLES]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "samples" / "doctor"),
                        help="output folder (default: samples/doctor/)")
    parser.add_argument("--only", action="append", choices=names, help="write only this capture (repeatable)")
    parser.add_argument("--seed", type=int, help="override every builder's default seed")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for sample in failures.FAILURE_SAMPLES:
        if args.only and sample.filename not in args.only:
            continue
        labels = failures.write_failure_sample(sample, args.out, args.seed)
        size = os.path.getsize(os.path.join(args.out, sample.filename))
        kinds = ", ".join(labels["doctor"]["expected_problem_kinds"] + labels["doctor"]["expected_info_kinds"]) or "-"
        print(f"{sample.filename:28} {labels['capture']['packets']:5} packets {size:8,} bytes  expects {kinds}")
    (Path(args.out) / "README.md").write_text(failreadme.render_readme(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
