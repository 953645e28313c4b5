"""``dissect902 doctor CAPTURE...``: why won't the VM console open?

Thin command-line glue over :class:`~dissect.port902.diagnose.Diagnostics`: run the analysis
with the diagnostics observer, print the findings most likely first (each with its frames,
hosts, times and what to do), the console paths the clients used, the UDP 902 heartbeats, and
what was checked.  Exit codes: 0 no problem found, 1 problems found, 2 bad usage or a file
that is not a readable capture.  Terminal text goes through ``report.safe`` (host names and
banners come from the capture and may carry escape sequences).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import shutil
import textwrap
from typing import Sequence, TextIO

from ..analysis import SCHEMA_VERSION
from ..analyzers.vnc import VncConsoles
from ..infer.diagnose import FINDING_KINDS, Diagnostics
from ..model.timefmt import utc_text
from ..output.render import safe
from ..output.sink import error, open_output, output_file
from .runner import run_analyze

WIDTH = 100

DOCTOR_DESCRIPTION = """\
Why won't the VM console open? Read captures taken on the client, the ESXi host, vCenter or
a span port, and rank what could explain a console that does not open, most likely first."""

DOCTOR_EPILOG = """\
what it checks (the usual reasons a console fails while vCenter works):
  name resolution   DNS lookups (UDP 53) of the host names: NXDOMAIN, SERVFAIL/REFUSED, no
                    answer, no address - and whether a 902 connection followed at all
  reachability      SYNs to 902 never answered (filtered / host down), RST to a SYN (refused),
                    ICMP unreachable / administratively prohibited for 902 (a firewall)
  TLS on 902        alerts, and clients that hang up right after the server certificate
                    (the host's thumbprint changed); clients that send TLS before reading the
                    greeting (openssl s_client, nmap ssl-*, a TLS proxy) or offer TLS to a
                    daemon without SSL - not a certificate problem
  authd             530 to a login (seen on plaintext daemons; inside TLS inferred from the
                    reply records' sizes), a session that ends right after CONNECT (VM not
                    found, not powered on; plaintext daemons only); resets mid-stream
  reconnects        a console that moved to another host (vMotion, with the vCenter 443
                    traffic in between) or reconnected to the same host (a retry)
  console paths     902 straight to ESXi, vCenter's relay on 7331/7343 (web client, Mac),
                    WebMKS on ESXi 443 (SNI, /ticket/ when visible)
  UDP 902           vpxa heartbeats to vCenter: host, build and ESXi version, rate (not authd)

each finding names its packets (frame numbers as in Wireshark), hosts and times, and says
what to do. Tickets in request targets are redacted unless --show-secrets.

exit codes: 0 no problem found; 1 problems found; 2 bad usage, an unwritable -o, or a capture that
  could not be read (the readable ones are still diagnosed); 3 capture damaged (truncated or corrupt:
  part of it was never read, so no all-clear can be given); 4 nothing to check (no port-902
  connection, authd greeting, DNS lookup, console path or UDP 902 heartbeat in the input)

examples:
  dissect902 doctor client-side.pcapng
  dissect902 doctor esxi.pcap vcenter.pcap.gz --format json -o findings.json
  dissect902 doctor capture.pcap || echo "see the findings above"
  python -c 'from dissect.port902.analysis import analyze; from dissect.port902.infer.diagnose import Diagnostics;
             print(analyze("c.pcap", observers=[Diagnostics()]).extras["diagnostics"].findings_frame())'

finding kinds:
""" + "\n".join(f"  {k:<22}{v}" for k, v in FINDING_KINDS.items()) + "\n"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``doctor`` on an ``argparse`` sub-parser collection; returns its parser."""
    p = subparsers.add_parser(
        "doctor",
        help="why won't the console open? ranked findings with evidence and advice",
        description=DOCTOR_DESCRIPTION,
        epilog=DOCTOR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("captures", nargs="*", metavar="CAPTURE",
                   help="pcap / pcapng file, optionally gzip-compressed, or a directory of rotated captures (one stream)")
    p.add_argument("-f", "--format", choices=["table", "json"], default="table", help="output format (default: table)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--show-secrets", action="store_true",
                   help="show tickets in console URLs and authd lines instead of <redacted>")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


# capture-level weird kinds that mean part of a capture was never read
DAMAGE_KINDS = ("truncated_file", "corrupt_record", "unsupported_link", "unreadable_capture")
EXIT_CODES = {"no_problem_found": 0, "problems_found": 1, "capture_damaged": 3, "nothing_to_check": 4}


def damage(result) -> list:
    """The capture-level weird rows that mean the diagnosis saw only part of the input."""
    return [w for w in result.capture_weird if w.kind in DAMAGE_KINDS]


def verdict(result, diag: Diagnostics) -> str:
    """``problems_found``, else ``capture_damaged`` (part of the input unread: no all-clear),
    else ``nothing_to_check`` (nothing port-902 related to judge), else ``no_problem_found``."""
    if diag.problems:
        return "problems_found"
    if damage(result):
        return "capture_damaged"
    if not (result.sessions or diag.findings or diag.console_paths or diag.heartbeat_flows or diag.lookups):
        return "nothing_to_check"
    return "no_problem_found"


def run(args: argparse.Namespace) -> int:
    """Run the diagnosis for parsed arguments; returns the exit code."""
    prog = "dissect902 doctor"
    if not args.captures:
        return error(prog, "give at least one capture file")
    if args.output not in (None, "-"):
        output_file(args.output)
    diag = Diagnostics(show_secrets=args.show_secrets)
    result, read_code = run_analyze(args.captures, args.quiet, prog=prog, show_secrets=args.show_secrets,
                                    observers=[VncConsoles(), diag])
    if result is None:
        return read_code
    code = read_code or EXIT_CODES[verdict(result, diag)]
    args.exit_code = code  # `doctor x | head` keeps it
    with open_output(args.output) as out:
        if args.format == "json":
            render_json(result, diag, out, code)
        else:
            render_table(result, diag, out)
    return code


# -- rendering ------------------------------------------------------------------------------------------------

def render_json(result, diag: Diagnostics, out: TextIO, code: int | None = None) -> None:
    """The doctor's JSON document: verdict, captures and the ``diagnostics`` block."""
    name = verdict(result, diag)
    code = EXIT_CODES[name] if code is None else code
    doc = {
        "schema_version": SCHEMA_VERSION,
        "verdict": name,
        "exit_code": code,
        "captures": [{"path": c.path, "format": c.format, "packets": c.packets, "first_ts": c.first_ts,
                      "last_ts": c.last_ts} for c in result.captures],
        "damage": [{"source": w.source, "kind": w.kind, "frame": w.frame, "offset": w.offset, "detail": w.detail}
                   for w in damage(result)],
        "sessions": len(result.sessions),
        "diagnostics": diag.to_json(),
    }
    json.dump(doc, out, ensure_ascii=True, indent=2, default=str)
    out.write("\n")


def _utc(ts: float | None) -> str:
    return utc_text(ts)


def text_width(out: TextIO) -> int:
    """The terminal's width when writing to it (``COLUMNS`` first, as ``shutil`` reads it), else
    WIDTH; never below 60 columns."""
    width = WIDTH
    if out is sys.stdout or getattr(out, "isatty", lambda: False)():
        width = shutil.get_terminal_size((WIDTH, 24)).columns
    return max(60, width)


def _wrap(out: TextIO, label: str, text: str, indent: int = 6, width: int | None = None) -> None:
    pad = " " * indent
    width = width or getattr(out, "doctor_width", None) or WIDTH
    lines = textwrap.wrap(safe(text), max(20, width - indent - len(label)), break_on_hyphens=False,
                          break_long_words=False) or [""]
    out.write(f"{pad}{label}{lines[0]}\n")
    for line in lines[1:]:
        out.write(f"{pad}{' ' * len(label)}{line}\n")


def render_table(result, diag: Diagnostics, out: TextIO) -> None:
    """Readable findings for a terminal (every capture-derived text escaped)."""
    width = text_width(out)
    out = _Width(out, width)
    for c in result.captures:
        if c.format == "unreadable":
            out.write(safe(f"{c.path}: not read (see the error above)") + "\n")
            continue
        out.write(safe(f"{c.path}: {c.format}, {c.packets} packets, {_utc(c.first_ts)} to {_utc(c.last_ts)} UTC")
                  + "\n")
    problems = diag.problems
    name = verdict(result, diag)
    damaged = damage(result)
    notes = [f for f in diag.findings if f.severity != "problem"]
    several = len(result.captures) > 1

    def where(source: str | None) -> str:
        return f" in {os.path.basename(source)}" if several and source else ""

    out.write("\n")
    if damaged:
        _wrap(out, "", ("Capture damaged: " if name == "capture_damaged" else "Beware, capture damaged: ")
              + "; ".join(_damage_line(w, several) for w in damaged)
              + ". The findings below cover only what was read"
              + ("" if problems else ", so this is no all-clear") + ".", indent=0)
        out.write("\n")
    if problems:
        hidden = _suppressed_problems(diag)
        more = (f" ({hidden} more of the same kinds not listed: --format json counts them per check)"
                if hidden else "")
        out.write(f"{len(problems)} problem(s) found{more}, most likely first:\n\n")
    elif name == "nothing_to_check":
        _wrap(out, "", "Nothing to check: no port 902/903/912 connection, authd greeting, DNS lookup, console "
              "path or UDP 902 heartbeat in the capture. Was it taken on the right host or interface, with a "
              "filter that keeps port 902?", indent=0)
        out.write("\n")
    elif name == "no_problem_found":
        out.write("No problem found.\n\n")
    for f in problems:
        out.write(safe(f"{f.rank:>3}. [{f.likelihood:.0%}] {f.title}  ({f.kind})") + "\n")
        _wrap(out, "what:  ", f.detail)
        _wrap(out, "do:    ", f.advice)
        ev = ", ".join(str(x) for x in f.evidence[:12]) + (" ..." if len(f.evidence) > 12 else "")
        _wrap(out, "frames: ", f"{ev or '-'}{where(f.source)}; hosts {', '.join(f.hosts)}; {_utc(f.first_ts)} UTC"
              + (f"; sessions {', '.join(f.related)}" if f.related else ""))
        out.write("\n")
    if notes:
        out.write("Notes (not failures):\n")
        for f in notes:
            out.write(safe(f"  - {f.title}  ({f.kind})") + "\n")
            _wrap(out, "", f.detail, indent=4)
        out.write("\n")
    paths = diag.console_paths
    if paths:
        out.write("Console paths seen:\n")
        for p in paths[:40]:
            extra = []
            if p.get("sni"):
                extra.append(f"SNI {p['sni']}")
            if p.get("http_target"):
                extra.append(f"{p.get('http_method') or 'GET'} {p['http_target']}")
            if p.get("upgrade"):
                extra.append(f"Upgrade: {p['upgrade']}")
            out.write(safe(f"  {p['client']} -> {p['server']}  {p['kind']}  {p['state']}  "
                           f"{p['duration_s']:.1f} s  frame {p['first_frame']}{where(p.get('source'))}"
                           + (f"  ({'; '.join(extra)})" if extra else "")) + "\n")
        if len(paths) > 40:
            out.write(f"  ... {len(paths) - 40} more (use --format json)\n")
        out.write("\n")
    flows = [h for h in diag.heartbeat_flows]
    if flows:
        out.write("UDP 902 (vpxa heartbeats to vCenter; not authd):\n")
        for h in flows:
            if h.heartbeats:
                version = h.to_dict()["version"] or "build not in the table"
                rate = f", every {h.interval_s:.1f} s ({h.rate_per_min:.1f}/min)" if h.interval_s else ""
                out.write(safe(f"  {h.sender} -> vCenter {h.receiver}: {h.heartbeats} heartbeat(s){rate}, "
                               f"host {h.host_ip}, build {h.build} ({version}), frame {h.first_frame}"
                               f"{where(diag._source(h.source_index))}") + "\n")
            if h.not_heartbeat:
                out.write(safe(f"  {h.sender} -> {h.receiver}: {h.not_heartbeat} UDP 902 datagram(s) that are not "
                               f"heartbeats (frame {h.odd_frames[0] if h.odd_frames else '?'})") + "\n")
        out.write("\n")
    out.write("Checked:\n")
    statuses = [("not listed" if c["check"] == "suppressed" else "ok" if not c["problems"]
                 else f"{c['problems']} problem(s)") for c in diag.checked]
    name_w = max([len(c["check"]) for c in diag.checked] + [20]) + 1
    status_w = max([len(x) for x in statuses] + [12]) + 1
    for c, status in zip(diag.checked, statuses):
        _wrap(out, f"{c['check']:<{name_w}}{status:<{status_w}}", c["what"], indent=2)


def _suppressed_problems(diag: Diagnostics) -> int:
    """Findings ranked out by the per-kind cap (they are all of kinds already listed)."""
    return sum(c["problems"] for c in diag.checked if c["check"] == "suppressed")


def _damage_line(w, several: bool) -> str:
    where = []
    if w.frame:
        where.append(f"after frame {w.frame}")
    if w.offset is not None and w.offset >= 0:
        where.append(f"at byte {w.offset}")
    name = os.path.basename(w.source) if w.source else ""
    head = f"{name}: " if name and (several or w.kind == "unreadable_capture") else ""
    return f"{head}{w.kind.replace('_', ' ')}{' ' + ' '.join(where) if where else ''} ({w.detail})"


class _Width:
    """A text stream that carries the width the doctor wraps at."""

    def __init__(self, out: TextIO, width: int):
        self._out, self.doctor_width = out, width

    def write(self, text: str) -> int:
        return self._out.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dissect.port902.doctor CAPTURE...`` (the same as ``dissect902 doctor``)."""
    parser = argparse.ArgumentParser(prog="dissect902")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_parser(sub)
    args = parser.parse_args(["doctor", *(argv if argv is not None else sys.argv[1:])])
    from .main import run_command

    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
