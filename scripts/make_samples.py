"""Write the bundled sample captures, their labels and key logs, and samples/README.md.

A thin command line over ``dissect.port902.lab.samples``: choose samples, a seed and the output
folder; the README is rendered from whatever labels files the folder then holds, so a partial
regeneration still leaves a consistent README.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:          # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from dissect.port902.lab import samples  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, write the requested samples and the README; returns an exit code."""
    names = [s.filename for s in samples.SAMPLES]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "samples"), help="output folder (default: samples/)")
    parser.add_argument("--only", action="append", choices=names, help="write only this sample (repeatable)")
    parser.add_argument("--seed", type=int, help="override every builder's default seed")
    parser.add_argument("--no-keys", action="store_true", help="do not write TLS key logs")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for sample in samples.SAMPLES:
        if args.only and sample.filename not in args.only:
            continue
        labels = samples.write_sample(sample, args.out, args.seed, keys=not args.no_keys)
        size = os.path.getsize(os.path.join(args.out, sample.filename))
        print(f"{sample.filename:28} {labels['capture']['packets']:6} packets {size:9,} bytes "
              f"{len(labels['connections']):3} connections")
    sections = []
    for sample in samples.SAMPLES:
        labels_file = Path(args.out) / f"{sample.stem}.labels.json"
        if labels_file.exists():
            labels = json.loads(labels_file.read_text())
            size = os.path.getsize(Path(args.out) / sample.filename)
            sections.append(samples.render_section(sample, labels, size))
    (Path(args.out) / "README.md").write_text(samples.render_readme(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
