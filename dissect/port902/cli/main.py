"""Command line: ``dissect902 analyze CAPTURE...`` and friends.

Thin by design: parse arguments, call the library, render, return an exit code.
Exit codes: 0 success; 1 ``--strict`` and something weird was found; 2 bad usage
or a file that is not a readable capture (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import importlib
from functools import partial
from typing import Sequence

from .. import __version__
from ..errors import Port902Error
from ..output.sink import describe_os_error, error, escape_unencodable, output_dir

# Start-up: only the command being run builds its full parser (and so imports its module, the
# analysis, cryptography ...); the others are listed by name and help line.  `dissect902 --help`
# loads none of them (tests/test_cli_startup.py checks that, and that these help lines are the
# ones the commands' own parsers show).
COMMANDS = {  # name -> (module that registers it, its help line)
    "analyze": (__name__, "list port-902 sessions in captures (pcap, pcapng, gzip)"),
    "doctor": ("dissect.port902.cli.doctor", "why won't the console open? ranked findings with evidence and advice"),
    "plot": ("dissect.port902.cli.plot", "draw charts of port-902 traffic (PNG, SVG, PDF)"),
    "lab": ("dissect.port902.lab.cli", "write labelled synthetic port-902 captures (datasets or named scenarios)"),
    "wireshark-plugin": ("dissect.port902.cli.wireshark",
                         "write the Wireshark/tshark Lua dissector for port 902 (authd.lua)"),
    "report": ("dissect.port902.cli.report",
               "write a self-contained HTML report (diagnosis, sessions, charts) to share"),
    "watch": ("dissect.port902.cli.watch", "follow port-902 sessions live (an interface via tcpdump, or a stream)"),
}
ALL = "*"  # build_parser(command=ALL): every command's full parser

def _analyze_epilog() -> str:
    from ..model.schema import FRAME_TABLES, SCHEMAS

    return ANALYZE_EPILOG + ", ".join(FRAME_TABLES) + """, and the diagnosis'
  """ + ", ".join(t for t in SCHEMAS if t not in FRAME_TABLES) + """ (--describe TABLE explains the columns)
"""


ANALYZE_EPILOG = """\
what it finds, per TCP connection on 902/903/912 (or any port whose server greets
with "220 VMware Authentication Daemon"):
  banner      the greeting, authd version, 'SSL Required', capabilities, product guess
  tls         every handshake on the stream: TLS #1 after the banner and the second
              one after "200 Connect" (console / NFC over TLS); versions, cipher,
              SNI, JA3/JA4, the server certificate and its SHA-1 thumbprint when in clear
  dialogue    authd lines when visible (non-SSL daemons, Workstation 912); PASS and
              tickets redacted unless --show-secrets
  tcp         Zeek conn_state and history, retransmissions, gaps; unanswered (no_answer)
              and refused attempts are sessions too
  hand-offs   classic ESX: a 903 session followed by a 902 session from the same client
  feature     MKS / NFC / SOAP / VMXARGS / NONE / UNKNOWN with a confidence and reasons,
              inferred from what stays visible (see README, "How sessions are classified")
  logins      every PASS with the reply matched to it in command order (accepted /
              rejected / unanswered): JSON auth.attempts, --table logins
  failure     per session: no_answer, refused, tls_alert, login_rejected, connect_rejected
              or reset, with the evidence frame and a reason
  diagnosis   why a console would not open: DNS failures, unanswered / refused / ICMP-blocked
              902, rejected certificates and logins, resets, vMotion reconnects, console paths
              (JSON: "diagnostics"; the full report: dissect902 doctor)

decryption: --keylog FILE (NSS key log; pcapng Decryption Secrets Blocks are read without it)
  decrypts TLS #1 and TLS #2 and dissects authd lines, SOAP/HTTP, RFB and NFC inside; the feature
  then comes from the plaintext (confidence 1.0) beside the metadata verdict (feature_inferred);
  --export-decrypted OUT.pcapng hands the inner streams to Wireshark (RFB on 5900).

secrets: PASS / XPAS / SESSION arguments, ticket-shaped USER names, THUMBPRINT client tokens,
  the ticket a 331/230 reply repeats, tickets in HTTP targets and credential headers are
  replaced by <redacted> in every format (by their place in the line) unless --show-secrets.
jsonl, and parquet of the sessions table: written while the captures are read, each session
  as soon as it is final (the order sessions end; 903 legs and the 902 sessions of their
  clients at the end, paired; jsonl: its weird rows after it, hand-offs last; parquet: row
  groups of 10,000): memory stays flat however many sessions (a million-SYN flood, hundreds of
  thousands of short sessions). Neither carries the diagnosis, so none is run. The other
  formats and tables hold every session until the end.
csv: a text cell starting with = + - @ TAB or CR gets a leading ' so that a spreadsheet shows
  it instead of running it as a formula (SNI, user names, targets, banners come from the
  capture); numeric columns stay numbers.

examples:
  dissect902 analyze capture.pcapng
  dissect902 analyze a.pcap b.pcap.gz --format json -o result.json
  dissect902 analyze capture.pcap --format csv --table tls_records > records.csv
  dissect902 analyze capture.pcap --format jsonl | jq 'select(.record_type=="session")'
  dissect902 analyze capture.pcap --strict || echo "something malformed in there"
  dissect902 analyze capture.pcap --reference --strict   # and does Wireshark read it the same way?
  dissect902 analyze /srv/pcap/esx-01/                   # rotated files: one stream, sessions stitched
  dissect902 analyze /srv/pcap/ -f parquet -o lake/      # Parquet dataset per table; re-runs read new files only

tables for --format csv/parquet: """


def cmd_analyze(args: argparse.Namespace) -> int:
    from ..analysis import default_observers
    from ..extras import require
    from ..model.schema import describe
    from ..output.render import JsonlStream, render_csv, render_json, render_jsonl, render_table, write_parquet
    from ..output.sink import open_output, output_file
    from . import archive as archive_cli
    from .runner import run_analyze

    if args.describe:
        print(describe(args.describe))
        return 0
    prog = "dissect902 analyze"
    if not args.captures:
        return error(prog, "give at least one capture file")
    if args.format == "parquet":
        if args.output in (None, "-"):
            return error(prog, "--format parquet needs -o FILE")
        require("pyarrow", "--format parquet")
    from ..model.schema import DIAGNOSIS_TABLES

    if args.no_diagnostics and args.format in ("csv", "parquet") and args.table in DIAGNOSIS_TABLES:
        # refused before -o is opened: a usage error must not empty an existing file
        return error(prog, f"the {args.table} table comes from the diagnosis: drop --no-diagnostics")
    archive = archive_cli.wanted(args)  # directories, --sensor-by, --jobs, --scheduler (issue 11)
    if archive and args.format == "parquet":  # a capture archive: a Parquet dataset in a directory
        return archive_cli.dataset(args, prog)
    if args.output not in (None, "-"):
        output_file(args.output)  # refused before the analysis runs, not after
    observers = None if not (args.no_diagnostics or args.reference) else (
        [] if args.no_diagnostics else default_observers(args.show_secrets))
    if args.reference:
        from ..reference import ReferenceCheck, require_reference

        require_reference()
        observers.append(ReferenceCheck())
    if args.export_decrypted and ((args.jobs or 0) > 1 or args.scheduler):
        return error(prog, "--export-decrypted writes one stream in capture order: run it without --jobs/--scheduler")
    export = None
    if args.export_decrypted:  # written while the captures are read (decrypt.export.StreamExport)
        from ..decrypt.export import StreamExport

        output_file(args.export_decrypted)  # a directory, or nowhere to write: one line, exit 2; parents made
        export = StreamExport(args.export_decrypted, show_secrets=args.show_secrets)
    stream = None
    extra = {}
    if not archive and not args.reference and (
            args.format == "jsonl" or (args.format == "parquet" and args.table == "sessions")):
        # JSON lines and the sessions table are written as the sessions end, so memory does not
        # grow with their number; neither carries the diagnosis, so it does not run
        if args.format == "jsonl":
            stream = JsonlStream(args.output, records=args.records)
        else:
            from ..output.parquet import ParquetSessionStream

            stream = ParquetSessionStream(args.output)
        observers, extra = [], {"emit": stream.session}
    # one process where the output is written while the capture is read (decrypted streams,
    # sessions as they end) or the reference check runs; else --jobs, or automatic
    serial = export is not None or stream is not None or args.reference
    run = partial(archive_cli.run, args) if archive else partial(
        run_analyze, args.captures, args.quiet, jobs=1 if serial else args.jobs)
    try:
        result, code = run(prog=prog, show_secrets=args.show_secrets, observers=observers, keylog=args.keylog,
                           keep_plaintext=export or False, **extra)
        if stream is not None and result is not None:
            stream.finish(result)
    finally:
        if export is not None:
            export.close()
        if stream is not None:
            stream.close()
    if result is None:
        return code
    if args.reference and not args.quiet:
        print(f"dissect902 analyze: reference: {result.extras['reference'].summary()}", file=sys.stderr)
    seen = stream.sessions if stream is not None else len(result.sessions)
    decrypted = stream.decrypted if stream is not None else sum(
        s.decryption is not None and s.decryption.decrypted for s in result.sessions)
    if args.keylog and not args.quiet and seen and not decrypted:
        print("dissect902 analyze: note: no TLS handshake in the captures has its keys in the key log "
              "(a key log of another capture or client?): nothing was decrypted", file=sys.stderr)
    args.exit_code = code  # kept when the reader of a pipe goes away early
    if stream is not None:
        weird_count = stream.weird
    elif args.format == "parquet":
        write_parquet(result, args.output, args.table)
    else:
        with open_output(args.output) as out:
            if args.format == "table":
                render_table(result, out)
            elif args.format == "json":
                render_json(result, out, records=args.records)
            elif args.format == "jsonl":
                render_jsonl(result, out, records=args.records)
            elif args.format == "csv":
                render_csv(result, out, args.table)
    if stream is None:
        weird_count = len(result.weird)
    if weird_count and not args.quiet and args.format != "table":
        print(f"dissect902: {weird_count} weird finding(s); see the 'weird' list", file=sys.stderr)
    if code:
        return code
    return 1 if (args.strict and weird_count) else 0


def _version() -> str:
    """The version, the capture engine in use and the Python it runs on."""
    from ..io.native import default_engine

    engine = {"c": "C engine (_fastscan)", "python": "pure-Python engine"}[default_engine()]
    return f"dissect902 {__version__} — {engine}, Python {sys.version.split()[0]}"


def build_parser(lab: bool = True, command: str | None = ALL) -> argparse.ArgumentParser:
    """The command line's parser: the full parser of ``command`` (of every command for ``ALL``; the
    lab's only when ``lab``), the other commands as a name and a help line."""
    parser = argparse.ArgumentParser(
        prog="dissect902",
        description="Dissect VMware ESXi port 902 (vmware-authd) traffic in packet captures: "
        "banners, the TLS upgrade, the second handshake of a console or NFC hand-off, "
        "the classic ESX 903->902 hand-off, and what each session was.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_line) in COMMANDS.items():
        full = command == name or (command == ALL and (lab or name != "lab"))
        if not full:
            sub.add_parser(name, help=help_line, add_help=False)
        elif name == "analyze":
            add_analyze_parser(sub)
        else:  # the lab is a tool for tests and training: loaded only when its command runs
            importlib.import_module(module).add_parser(sub)
    return parser


def add_analyze_parser(sub) -> argparse.ArgumentParser:
    from ..model.schema import SCHEMAS

    p = sub.add_parser(
        "analyze",
        help=COMMANDS["analyze"][1],
        description="Read captures and report every port-902/903/912 session: banner, TLS, "
        "authd dialogue, TCP state and 903->902 hand-offs.",
        epilog=_analyze_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("captures", nargs="*", metavar="CAPTURE", help="pcap / pcapng file, optionally gzip-compressed, or a directory of "
                   "rotated captures (read as one stream per sensor)")
    p.add_argument("-f", "--format", choices=["table", "json", "jsonl", "csv", "parquet"], default="table",
                   help="output format (default: table)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--table", choices=list(SCHEMAS), default="sessions",
                   help="which table --format csv/parquet writes (default: sessions; the diagnosis' "
                        "findings, heartbeats, console_paths, dns too)")
    p.add_argument("--describe", choices=list(SCHEMAS), metavar="TABLE", help="explain the columns of TABLE and exit")
    p.add_argument("--records", action="store_true", help="JSON: include every TLS record (time, direction, length)")
    p.add_argument("--show-secrets", action="store_true",
                   help="show PASS arguments and tickets instead of <redacted> (they are credentials)")
    p.add_argument("--no-diagnostics", action="store_true",
                   help="skip the console diagnosis (DNS, ICMP, UDP 902, 443/7331/7343): faster on busy captures")
    p.add_argument("--reference", action="store_true",
                   help="cross-check every session against Wireshark's dissection (tshark via pyshark: "
                   "pip install 'dissect902[reference]'); differences are reference_mismatch weird rows")
    p.add_argument("--keylog", metavar="FILE", action="append",
                   help="NSS key log (SSLKEYLOGFILE) to decrypt TLS #1 and TLS #2 with (repeatable); keys in "
                        "pcapng Decryption Secrets Blocks are used without it")
    p.add_argument("--export-decrypted", metavar="OUT.pcapng",
                   help="write each decrypted inner stream as a TCP conversation of its own (RFB to 5900, "
                        "authd lines to 902, HTTP to 80) for Wireshark")
    p.add_argument("--strict", action="store_true", help="exit 1 when anything malformed or unexpected was found")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no notes on stderr")
    from . import archive as archive_cli

    archive_cli.add_arguments(p)
    p.set_defaults(func=cmd_analyze)
    return p


def _prog(args: argparse.Namespace) -> str:
    words = ["dissect902", getattr(args, "command", None), getattr(args, "lab_command", None)]
    return " ".join(w for w in words if w)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if sys.stderr is None:  # started with standard error closed (``2>&-``): what would go there is lost, not fatal
        sys.stderr = open(os.devnull, "w", encoding="utf-8")
    escape_unencodable(sys.stdout, sys.stderr)
    parser = build_parser(command=argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    func = _checked_lab(args.func) if args.command == "lab" else args.func
    return run_command(func, args)


def _checked_lab(func):
    """``lab generate`` / ``lab scenario NAME``: the output folder is checked (and made) here, before
    any capture is drawn (the lab imports nothing from the analysis, this module may)."""
    def run(args: argparse.Namespace) -> int:
        sub = getattr(args, "lab_command", None)
        wants = sub == "generate" or (sub == "scenario" and args.name and not args.list)
        if wants and getattr(args, "out", None):
            output_dir(args.out)  # a file there, or an unwritable place: one line, exit 2
        return func(args)

    return run


def run_command(func, args: argparse.Namespace) -> int:
    """Run a command: one line on stderr and exit 2 for any error of ours or of the file system;
    the command's exit code kept when the reader of a pipe stops early (``doctor x | head``)."""
    try:
        code = func(args)
        if sys.stdout is not None:  # None: started with it closed, and the command wrote to -o FILE
            sys.stdout.flush()  # a pipe closed early fails here, inside the handler, not at exit
        return code
    except BrokenPipeError:  # `dissect902 analyze x | head`
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # nothing more to flush at interpreter exit
        except (OSError, ValueError):
            pass
        return getattr(args, "exit_code", 0)
    except KeyboardInterrupt:
        return 130
    except Port902Error as exc:  # OutputError, MissingExtra, CaptureError from a command
        return error(_prog(args), exc)
    except OSError as exc:  # anything the file system refused that a command did not word itself
        return error(_prog(args), describe_os_error(exc, exc.filename or "output"))


if __name__ == "__main__":
    sys.exit(main())
