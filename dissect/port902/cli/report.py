"""``dissect902 report CAPTURE... -o report.html``: one self-contained HTML file to share.

Thin: parse arguments, run the analysis with the diagnosis, render (output/html.py), write.
One module per command (cli/, issue 15).
"""

from __future__ import annotations

import argparse
import os
import sys

from ..analyzers.vnc import VncConsoles
from ..infer.diagnose import Diagnostics
from ..output.html import render_html
from ..output.render import safe
from .runner import run_analyze

EPILOG = """\
the page, in order: the verdict of the diagnosis; the findings with their evidence (frames,
times, hosts, advice); a sortable, filterable sessions table (feature, confidence, reasons,
TLS, thumbprint, bytes, duration); the charts of `dissect902 plot`; per-session detail
(dialogue, handshakes, record-size fingerprint); what was checked.

self-contained: no request leaves the file (styles, script and charts inlined; a
Content-Security-Policy forbids the rest). Text from the capture is escaped, credentials
stay redacted unless --show-secrets. Open report.html#sort=c2s:desc&feature=NFC to share a
sorted, filtered view.

examples:
  dissect902 report capture.pcap -o report.html
  dissect902 report a.pcap b.pcapng.gz -o week12.html --title "console failures, week 12"
"""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report (diagnosis, sessions, charts) to share",
        description="Analyse captures and write one HTML file that a reader without Python or the "
        "capture can open: diagnosis first, then sessions, charts and per-session detail.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("captures", nargs="*", metavar="CAPTURE",
                   help="pcap / pcapng file, optionally gzip-compressed, or a directory of rotated captures (one stream)")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="the HTML file to write")
    p.add_argument("--title", help="page title (default: the capture names)")
    p.add_argument("--no-charts", action="store_true", help="leave the charts out (smaller, faster)")
    p.add_argument("--show-secrets", action="store_true",
                   help="show PASS arguments and tickets instead of <redacted> (think before sharing)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if not args.captures:
        print("dissect902 report: error: give at least one capture file", file=sys.stderr)
        return 2
    diag = Diagnostics(show_secrets=args.show_secrets)
    result, code = run_analyze(args.captures, args.quiet, show_secrets=args.show_secrets,
                                observers=[VncConsoles(), diag])
    if result is None:
        return code
    tmp = f"{args.output}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            render_html(result, fh, charts=not args.no_charts, title=args.title)
        os.replace(tmp, args.output)
    except OSError as exc:
        print(f"dissect902 report: error: {safe(str(exc))}", file=sys.stderr)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return 2
    if not args.quiet:
        print(f"wrote {safe(args.output)}", file=sys.stderr)
    return 0
