"""``dissect902 wireshark-plugin [-o FILE | --install] [--annotate ANALYSIS.json]``.

Thin: parse arguments, render the plugin (dissect.port902.wireshark.plugin), write it.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..output.render import safe
from ..output.sink import describe_os_error, error, open_output, output_file
from ..wireshark import plugin

EPILOG = """\
the plugin (authd.lua) registers on TCP 902/903/912 and, by the greeting
"220 VMware Authentication Daemon", on any TCP port. Fields:
  authd.banner, authd.version, authd.ssl_required, authd.capability
  authd.command, authd.argument (PASS / tickets redacted), authd.reply_code, authd.reply_text
  authd.nfc.type, authd.nfc.aio_type, authd.nfc.path, authd.nfc.size, authd.nfc.data_len
  TLS from the first ClientHello on, and again from the second handshake after "200 Connect",
  is handed to Wireshark's TLS dissector (tls.*).
with --annotate (the JSON of `dissect902 analyze -f json`): dissect902.session,
  dissect902.feature, dissect902.confidence, dissect902.reason on every packet of a session.

examples:
  dissect902 wireshark-plugin --install
  tshark -r capture.pcap -Y authd.reply_code -T fields -e authd.command -e authd.reply_code
  dissect902 analyze capture.pcap -f json -o a.json
  dissect902 wireshark-plugin --annotate a.json -o authd.lua
  tshark -X lua_script:authd.lua -r capture.pcap -Y 'dissect902.feature == "NFC"'

Oldest Wireshark supported: 3.0; tested with 4.0 (Debian 12).
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "wireshark-plugin",
        help="write the Wireshark/tshark Lua dissector for port 902 (authd.lua)",
        description="Write a Lua dissector for Wireshark and tshark: authd banner, commands and "
        "replies, TLS #1 and #2, cleartext NFC; optionally dissect902's verdict per packet.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="FILE", help="write the plugin to FILE ('-' or none: standard output)")
    where.add_argument("--install", action="store_true",
                       help="put authd.lua into your personal Wireshark plugin folder (~/.local/lib/wireshark/plugins)")
    p.add_argument("--annotate", metavar="ANALYSIS.json",
                   help="embed per-session feature/confidence from `dissect902 analyze -f json` output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    analysis = None
    if args.annotate:
        try:
            with open(args.annotate, encoding="utf-8") as fh:
                analysis = json.load(fh)
            if not isinstance(analysis, dict) or "sessions" not in analysis:
                raise ValueError("not the JSON of `dissect902 analyze -f json` (no 'sessions')")
        except OSError as exc:
            return error("dissect902 wireshark-plugin", describe_os_error(exc, args.annotate, "read"))
        except ValueError as exc:  # not JSON, not UTF-8, or not analyze's JSON
            return error("dissect902 wireshark-plugin", f"{args.annotate}: not the JSON of `dissect902 analyze -f json` "
                         f"({type(exc).__name__}: {exc})")
    text = plugin.render(analysis)
    if args.install:
        path = plugin.install(text)
        print(f"installed {safe(str(path))}; restart Wireshark (tshark picks it up at start)", file=sys.stderr)
        return 0
    if args.output not in (None, "-"):
        output_file(args.output)  # a directory, or nowhere to write: one line, exit 2; parents made
    with open_output(args.output) as fh:
        fh.write(text)
    return 0
