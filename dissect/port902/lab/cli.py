"""``dissect902 lab``: write labelled port-902 captures — a random dataset, or one named scenario.

Thin by design: ``add_parser(subparsers)`` registers the command on the main parser,
``run(args)`` calls ``lab.dataset`` / ``lab.samples`` and returns an exit code (0 success, 2 bad
usage). The heavy modules are imported only when the command runs, so ``dissect902 analyze``
does not pay for them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

CONDITIONS = ("varied", "clean", "lan", "campus", "wan", "lossy", "host", "truncated")
SCENARIOS = ("esxi8_console", "legacy_login", "classic_esx_handoff", "unanswered_syn", "nfc_transfers", "mixed_esxi",
             "plain_vnc")

DESCRIPTION = """\
The traffic lab synthesises port-902 (vmware-authd) traffic from first principles — real TLS
from Python's ssl (TLS 1.0-1.3, several cipher suites), the authd dialogues of protocol.md for
MKS consoles, NFC (VDDK nbd/nbdssl, nfclib and photon uploads and downloads), SOAP and VMXARGS
(both lab models), brute force with 530s, scanners and probes — over a TCP model with RTT,
jitter, loss and retransmissions, and writes pcap/pcapng files with a sidecar NAME.labels.json
that says, for every connection, its 5-tuple, start, feature, persona, transport, conditions
and the frame numbers of its key moments. Same seed, same labels."""

GENERATE_EPILOG = """\
what each capture draws (deterministic per --seed and capture index):
  site        1-3 authd servers of one era (ESXi 5.5 / 6.x / 8.x, Workstation 902 and 912,
              GSX-era daemon without SSL, classic ESX with its 903 leg), admin PCs, vCenter,
              a backup proxy, automation and a scanner, random private addresses (some IPv6)
  sessions    features cycle MKS, NFC, SOAP, VMXARGS, NONE, then weighted; consoles from
              seconds to hours (idle, typing, mouse, full redraws, resolution changes);
              NFC KBs to --max-bytes either way, streamed (memory stays bounded); SOAP with
              think times and keep-alive; NONE = probes, banner grabs, TLS-only scans,
              Hydra/Medusa-style brute force, unanswered SYNs, refused connections
  conditions  varied (default) draws a profile per capture:
                clean      LAN, no jitter, no loss
                lan        RTT 0.1-2 ms, jitter, rare loss, MSS up to 9000 (jumbo)
                campus     RTT 1-12 ms, jitter, loss up to 0.3 %
                wan        RTT 15-200 ms, jitter, loss up to 1 %, lower bandwidth
                lossy      loss 1-3 % with retransmissions
                host       captured on an endpoint: TSO/LSO and GRO super-frames
                           (IPv4 total length 0 on Windows LSO and above 64 KiB)
                truncated  a snaplen of 68-512 bytes
              plus, everywhere: --midstream-share of the eligible sessions captured from
              inside (no banner, no handshake), background DNS/HTTPS/SSH/UDP-902 heartbeats
  container   pcap or pcapng, µs or ns, either byte order, sometimes gzip; ethernet, 802.1Q,
              QinQ, raw IP, Linux SLL / SLL2

labels: NAME.labels.json per capture (schema in samples/README.md, plus per connection
"midstream", "traffic" — the plan that generated it — and richer "conditions"), and
dataset.json listing every capture with its counts.

examples:
  dissect902 lab generate --out lab-set --captures 20 --seed 7
  dissect902 lab generate --out wan-set --captures 5 --conditions wan --sessions 10
  dissect902 lab generate --out big-nfc --captures 2 --max-bytes 2G --workers 2
  dissect902 lab scenario mixed_esxi --out /tmp/one
  dissect902 analyze lab-set/lab-7-0003.pcap      # compare with lab-set/lab-7-0003.labels.json
"""


def _size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    try:
        value = int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 512K, 64M, 2G)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return value


def _range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        pair = (int(low), int(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or range: {text!r} (use e.g. 8 or 6-12)") from None
    if pair[0] < 1 or pair[1] < pair[0]:
        raise argparse.ArgumentTypeError("need 1 <= LO <= HI")
    return pair


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("a share between 0 and 1")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``lab`` (with ``generate`` and ``scenario``) on the main parser's subparsers."""
    lab = subparsers.add_parser(
        "lab", help="write labelled synthetic port-902 captures (datasets or named scenarios)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n  generate   a random dataset of labelled captures\n"
               "  scenario   one of the bundled sample scenarios\n\n"
               "run 'dissect902 lab generate --help' for what a dataset contains.")
    sub = lab.add_subparsers(dest="lab_command", metavar="COMMAND")
    gen = sub.add_parser("generate", help="a random dataset of labelled captures",
                         description="Write --captures random, labelled port-902 captures (and dataset.json) to --out; "
                                     "the same --seed gives the same labels.",
                         epilog=GENERATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    gen.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (created if missing)")
    gen.add_argument("-n", "--captures", type=int, default=10, metavar="N", help="number of captures (default 10)")
    gen.add_argument("--seed", type=int, default=0, help="dataset seed (default 0); capture k depends only on seed and k")
    gen.add_argument("--sessions", type=_range, default=(6, 12), metavar="N|LO-HI",
                     help="authd sessions per capture (default 6-12)")
    gen.add_argument("--conditions", choices=CONDITIONS, default="varied", help="network/capture profile (default varied)")
    gen.add_argument("--midstream-share", type=_share, default=0.2, metavar="SHARE",
                     help="share of eligible sessions captured from inside (default 0.2)")
    gen.add_argument("--min-bytes", type=_size, default=4096, metavar="SIZE", help="smallest NFC transfer (default 4K)")
    gen.add_argument("--max-bytes", type=_size, default=64 << 20, metavar="SIZE",
                     help="largest NFC transfer, e.g. 64M or 2G (default 64M); time grows with it, memory does not")
    gen.add_argument("--max-console", type=float, default=10800.0, metavar="SECONDS",
                     help="longest console session (default 10800 s = 3 h; idle time costs no packets)")
    gen.add_argument("--no-background", action="store_true", help="only port-902 traffic, no DNS/HTTPS/SSH/heartbeats")
    gen.add_argument("--keys", action="store_true", help="also write NAME.keys (NSS key log for Wireshark; slower)")
    gen.add_argument("--prefix", default="lab", help="file name prefix (default lab: lab-SEED-INDEX.pcap)")
    gen.add_argument("--first-index", type=int, default=0, metavar="K", help="start at capture index K (default 0)")
    gen.add_argument("-j", "--workers", type=int, default=1, metavar="N", help="parallel processes (default 1)")
    gen.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    one = sub.add_parser("scenario", help="one of the bundled sample scenarios",
                         description="Write one bundled sample scenario (the builders behind samples/) with its labels.",
                         epilog="scenarios: " + ", ".join(SCENARIOS) + "\n\nexample:\n  dissect902 lab scenario "
                                "nfc_transfers --out /tmp/nfc --seed 11",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    one.add_argument("name", nargs="?", choices=SCENARIOS, metavar="NAME", help="scenario name (see below)")
    one.add_argument("-o", "--out", metavar="DIR", help="output folder")
    one.add_argument("--seed", type=int, help="override the scenario's default seed")
    one.add_argument("--keys", action="store_true", help="also write the TLS key log")
    one.add_argument("--list", action="store_true", help="list the scenarios and exit")
    lab.set_defaults(func=run, lab_parser=lab)
    return lab


def _generate(args) -> int:
    from . import dataset

    if args.captures < 1:
        print("dissect902 lab generate: error: --captures must be at least 1", file=sys.stderr)
        return 2
    if args.max_bytes < args.min_bytes:
        print("dissect902 lab generate: error: --max-bytes is below --min-bytes", file=sys.stderr)
        return 2
    started = time.perf_counter()

    def progress(done: int, total: int, row: dict) -> None:
        if not args.quiet:
            mid = f", {row['midstream']} mid-session" if row["midstream"] else ""
            print(f"[{done}/{total}] {row['file']:28} {row['packets']:8} packets {row['bytes'] / 1e6:8.1f} MB "
                  f"{row['authd_sessions']:3} authd sessions{mid}  ({row['conditions']['profile']})", flush=True)

    manifest = dataset.generate(
        args.out, args.captures, args.seed, sessions_per_capture=args.sessions, conditions=args.conditions,
        midstream_share=args.midstream_share, min_bytes=args.min_bytes, max_bytes=args.max_bytes,
        max_console_s=args.max_console, background=not args.no_background, prefix=args.prefix, keys=args.keys,
        workers=max(1, args.workers), first_index=args.first_index, progress=progress)
    totals = manifest["totals"]
    if not args.quiet:
        features = ", ".join(f"{k} {v}" for k, v in totals["features"].items())
        print(f"wrote {totals['captures']} captures ({totals['bytes'] / 1e6:.1f} MB, {totals['packets']} packets, "
              f"{totals['authd_sessions']} authd sessions: {features}; {totals['midstream']} mid-session) to "
              f"{args.out} in {time.perf_counter() - started:.1f} s; manifest {os.path.join(args.out, 'dataset.json')}")
    return 0


def _scenario(args) -> int:
    from . import samples

    if args.list or not args.name:
        for name in samples.scenario_names():
            print(name)
        return 0 if args.list else 2
    if not args.out:
        print("dissect902 lab scenario: error: --out DIR is required", file=sys.stderr)
        return 2
    labels = samples.write_scenario(args.name, args.out, args.seed, keys=args.keys)
    print(json.dumps({"file": os.path.join(args.out, labels["capture"]["file"]), "packets": labels["capture"]["packets"],
                      "connections": len(labels["connections"])}))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``dissect902 lab …``; returns the exit code."""
    command = getattr(args, "lab_command", None)
    if command == "generate":
        return _generate(args)
    if command == "scenario":
        return _scenario(args)
    args.lab_parser.print_help()
    return 2
