"""``dissect902 report CAPTURE... -o report.html``: one self-contained HTML file to share.

Thin: parse arguments, run the analysis with the diagnosis, render (output/html.py), write.
One module per command (cli/, issue 15).
"""

from __future__ import annotations

import argparse
import io
import sys

from ..analyzers.vnc import VncConsoles
from ..infer.diagnose import Diagnostics
from ..output.html import render_html
from ..output.render import safe
from ..output.sink import error, open_output, output_file
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
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="the HTML file to write (- for standard output)")
    p.add_argument("--title", help="page title (default: the capture names)")
    p.add_argument("--no-charts", action="store_true", help="leave the charts out (smaller, faster)")
    p.add_argument("--show-secrets", action="store_true",
                   help="show PASS arguments and tickets instead of <redacted> (think before sharing)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Analyse, render, write.  ``-o`` is checked before the analysis (a directory, or a place that
    cannot be written, is one line and exit 2), parent folders are made, ``-o -`` is standard
    output, and a device or FIFO is written to, never replaced.  Exit 2 when a capture could not
    be read (the others are in the report), as ``analyze`` does."""
    prog = "dissect902 report"
    if not args.captures:
        return error(prog, "give at least one capture file")
    if args.output != "-":
        output_file(args.output)
    diag = Diagnostics(show_secrets=args.show_secrets)
    result, code = run_analyze(args.captures, args.quiet, prog=prog, show_secrets=args.show_secrets,
                               observers=[VncConsoles(), diag])
    if result is None:
        return code
    page = io.StringIO()
    render_html(result, page, charts=not args.no_charts, title=args.title)
    with open_output(args.output) as fh:
        fh.write(page.getvalue())
    if not args.quiet and args.output != "-":
        print(f"wrote {safe(args.output)}", file=sys.stderr)
    return code
