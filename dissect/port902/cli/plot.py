"""``dissect902 plot CAPTURE... -o FILE``: charts of port-902 traffic as PNG, SVG or PDF.

Thin like the rest of the CLI: parse the arguments, run :func:`~dissect.port902.analysis.analyze`,
draw with :mod:`dissect.port902.plots`, save, return an exit code (0 written; 2 bad usage,
an unreadable capture, an unknown ``--uid`` or an unwritable output - one line on stderr).
matplotlib is imported only when the command runs, so ``dissect902 analyze`` does not pay
for it.

Wiring into ``cli.py`` (inside ``build_parser``, after the ``analyze`` sub-parser)::

    from . import plot as plotcli
    plotcli.add_parser(sub)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

KINDS = ("bytes", "timeline", "fingerprints", "hosts")  # plots.KINDS, without importing matplotlib
FEATURES = ("MKS", "NFC", "SOAP", "VMXARGS", "NONE", "UNKNOWN")
FORMATS = ("png", "svg", "pdf")
CLI_MAX_BINS = 2000  # a chart 10 inches wide at 150 dpi has 1500 pixel columns

PLOT_EPILOG = """\
chart kinds (--kind):
  timeline      one bar per session, first to last packet, coloured by feature: MKS (the
                VM console), NFC (file and disk copies), SOAP, VMXARGS, NONE (nothing used:
                probes, logins, failed attempts).  Arrows: classic ESX's 903->902 hand-off,
                and reconnects (a retry after a failure, a console reopened).  Markers:
                x = SYN sent (retries of an unanswered attempt), | = the second TLS
                handshake that starts a console or an NFC-over-TLS copy.
  bytes         payload bytes per time bin, stacked by feature; server->client on top
                (screen updates, disk reads), client->server below (keys, uploads).
  fingerprints  TLS record length x time, one panel per session.  Encrypted, yet they
                differ: a console is a long trickle of tiny client records (keys,
                pointer) with bursts of screen updates; an NFC copy a fraction of a second
                of 16 KiB records; SOAP a few large records inside the first TLS session.
  hosts         bytes and sessions per ESXi host and per client, stacked by feature.
  all           every kind: one page each in a PDF, or FILE-<kind>.png / .svg.

The file format follows the suffix of -o: .png (raster), .svg (vector, for slides and web
pages), .pdf (vector, printable).  Times are mm:ss since the first packet; colours are the
Okabe-Ito palette (safe for colour-blind readers).

examples:
  dissect902 plot capture.pcapng -o sessions.png                  # the timeline
  dissect902 plot capture.pcap --kind bytes --bin 10 -o traffic.svg
  dissect902 plot capture.pcap --kind fingerprints --uid C3bae2 --uid C96fce -o nfc.png
  dissect902 plot capture.pcap --feature MKS --feature NFC -o consoles-and-copies.png
  dissect902 plot a.pcap b.pcap --kind all -o report.pdf
  dissect902 plot capture.pcap --kind all -o charts/site.png     # charts/site-bytes.png, ...
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``plot`` on the ``dissect902`` sub-command parser and return its parser."""
    p = subparsers.add_parser(
        "plot",
        help="draw charts of port-902 traffic (PNG, SVG, PDF)",
        description="Analyse captures and draw port-902 charts: sessions on a timeline, traffic over "
        "time by feature, record-size fingerprints, totals per host and client.",
        epilog=PLOT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("captures", nargs="+", metavar="CAPTURE",
                   help="pcap / pcapng file, optionally gzip-compressed, or a directory of rotated captures (one stream)")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="where to write: FILE.png, FILE.svg or FILE.pdf")
    p.add_argument("-k", "--kind", choices=[*KINDS, "all"], default="timeline",
                   help="which chart (default: timeline; see below)")
    p.add_argument("--uid", action="append", metavar="UID",
                   help="only this session (uid or a prefix of it, as the analyze table prints it); "
                   "repeat for more.  With --kind fingerprints: exactly these panels")
    p.add_argument("--feature", action="append", choices=FEATURES, metavar="FEATURE", type=str.upper,
                   help=f"only sessions classified as FEATURE ({', '.join(FEATURES)}); repeat for more")
    p.add_argument("--bin", type=float, metavar="SECONDS", help="bytes: width of a time bin (default: ~120 bins)")
    p.add_argument("--max-sessions", type=int, default=6, metavar="N",
                   help="fingerprints: panels when no --uid is given (default: 6, one per feature first)")
    p.add_argument("--top", type=int, default=12, metavar="N",
                   help="hosts: bars per chart; the rest are summed into 'N others' (default: 12)")
    p.add_argument("--dpi", type=int, default=150, help="PNG resolution (default: 150)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not list the files written")
    p.set_defaults(func=run)
    return p


def _error(msg: str) -> int:
    print(f"dissect902 plot: error: {msg}", file=sys.stderr)
    return 2


def _outputs(path: Path, kinds: list[str]) -> list[Path]:
    if len(kinds) == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{kind}{path.suffix}") for kind in kinds]


def run(args: argparse.Namespace) -> int:
    """Run ``dissect902 plot``; returns the exit code."""
    out = Path(args.output)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        return _error(f"{out}: the output must end in .png, .svg or .pdf")
    kinds = list(KINDS) if args.kind == "all" else [args.kind]
    from ..output.sink import OutputError, output_file

    try:
        for path in ([out] if fmt == "pdf" else _outputs(out, kinds)):
            output_file(path)  # parents created (-o charts/site.png); a directory or unwritable place refused
    except OutputError as exc:
        return _error(str(exc))
    if args.bin is not None and args.bin <= 0:
        return _error("--bin must be a positive number of seconds")
    if args.max_sessions < 1 or args.top < 1:
        return _error("--max-sessions and --top must be at least 1")

    from ..output import plots  # matplotlib only now
    from ..output.render import safe
    from .runner import run_analyze

    result, read_code = run_analyze(args.captures, True, prog="dissect902 plot", observers=[])
    if result is None:
        return read_code
    args.exit_code = read_code
    if args.bin is not None and "bytes" in kinds:
        args.bin = _checked_bin(result, args.bin, plots, args.quiet)
    options = {
        "bytes": {"bin_s": args.bin},
        "timeline": {},
        "fingerprints": {"max_sessions": args.max_sessions},
        "hosts": {"top": args.top},
    }
    select = {"uids": args.uid, "features": args.feature}
    try:
        figures = [(kind, plots.plot(result, kind, **select, **options[kind])) for kind in kinds]
    except KeyError as exc:  # an unknown --uid
        return _error(safe(str(exc.args[0] if exc.args else exc)))
    if args.feature and not any(s.feature in args.feature for s in result.sessions) and not args.quiet:
        print(f"dissect902 plot: note: no session classified as {', '.join(args.feature)}; the charts are empty",
              file=sys.stderr)
    written: list[Path] = []
    try:
        if fmt == "pdf" and len(figures) > 1:
            from matplotlib.backends.backend_pdf import PdfPages

            with PdfPages(out, metadata={"Creator": "dissect902", "CreationDate": None}) as pdf:
                for _kind, fig in figures:
                    pdf.savefig(fig)
            written.append(out)
        else:
            for (_kind, fig), path in zip(figures, _outputs(out, kinds)):
                plots.save(fig, path, dpi=args.dpi)
                written.append(path)
    except OSError as exc:
        return _error(f"cannot write {safe(str(exc.filename or out))}: {exc.strerror or exc}")
    if not args.quiet:
        for path in written:
            print(f"wrote {path}")
    return read_code


def _checked_bin(result, bin_s: float, plots, quiet: bool) -> float:
    """--bin as the chart will use it: a width that would make more than plots.MAX_BINS bins is
    widened (and the user told), instead of silently."""
    times = [t for s in result.sessions for t in (s.start, s.end) if t is not None]
    span = (max(times) - min(times)) if times else 0.0
    most = min(plots.MAX_BINS, CLI_MAX_BINS)
    if span > 0 and span / bin_s > most:
        wider = plots.nice_step(span, most)
        if not quiet:
            print(f"dissect902 plot: note: --bin {bin_s:g} would make {span / bin_s:,.0f} bins over {span:.1f} s; "
                  f"using {wider:g} s ({most} bins at most: more bins than the chart has pixels)", file=sys.stderr)
        return wider
    return bin_s


__all__ = ["KINDS", "PLOT_EPILOG", "add_parser", "run"]
