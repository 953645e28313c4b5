"""Regenerate docs/report-sample.png: `dissect902 report` of two bundled samples, rendered by headless
Chromium (the same DevTools driver the tests use, tests/chromium.py).

    python scripts/report_screenshot.py [-o docs/report-sample.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from chromium import Browser  # noqa: E402

from dissect.port902.cli.main import main as cli_main  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "report-sample.png"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "report.html"
        code = cli_main(["report", str(ROOT / "samples" / "mixed-esxi.pcap"),
                         str(ROOT / "samples" / "doctor" / "login-530.pcap"), "-o", str(html), "-q"])
        if code:
            return code
        with Browser(width=1400, height=1300) as b:
            b.load(html.as_uri() + "#sort=s2c:desc")
            b.screenshot(Path(args.output))
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
