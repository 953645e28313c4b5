#!/usr/bin/env python3
"""Speed and memory benchmark: ``dissect902 analyze`` against ``tshark -q -z conv,tcp``.

    python scripts/benchmark.py [--packets 1000000 5000000] [--keep DIR] [--skip-tshark] [--variants]

For every size it generates a capture with ``scripts/gen_bulk_capture.py`` (mostly
background traffic, a few percent port-902 authd sessions), then runs, one after the
other and as child processes of this script:

* ``python -m dissect.port902.cli.main analyze F --format json -o OUT.json -q``
* ``tshark -r F -q -z conv,tcp``

and measures each child's wall-clock time (spawn to ``os.wait4``) and its own peak
resident set size (``ru_maxrss`` from ``os.wait4`` of that pid, not the accumulated
``RUSAGE_CHILDREN``).  Nothing is dropped from the page cache: the capture was just
written and is read once more before the runs, so it is warm in cache for both tools
and the numbers compare parsing, not disks.

It prints the machine facts and a markdown table (packets, file size, tool, seconds,
packets/s, CPU seconds, peak RSS, throughput relative to tshark), checks the analyzer
against the generator's ground truth (number of 902 sessions and their states, packets
read) and exits 1 when a tool failed or the session counts are wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO / "scripts" / "gen_bulk_capture.py"
TARGET_RATIO = 20.0  # issue 10: the default analyze (diagnosis on)
TARGET_RSS_MIB = 200.0
# (run name, extra analyze arguments, pure-Python engine, run whose JSON it must equal byte for byte)
VARIANTS = [
    ("dissect902", [], False, None),  # the default: diagnosis on, --jobs automatic (the usable cores on big files)
    ("jobs1", ["--jobs", "1"], False, "dissect902"),
    ("no-diag", ["--no-diagnostics"], False, None),
    ("no-diag-jobs1", ["--no-diagnostics", "--jobs", "1"], False, "no-diag"),
    ("pure", [], True, "dissect902"),
    ("pure-jobs1", ["--jobs", "1"], True, "dissect902"),
]
TARGETS = {"dissect902": 20.0, "no-diag": 30.0, "pure": 5.0}


# --------------------------------------------------------------------------- helpers

def sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_facts(tshark: str | None) -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "?"
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": affinity,
        "cpu_model": cpu,
        "memory": mem,
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "tshark": (sh([tshark, "--version"]).splitlines() or ["?"])[0] if tshark else "not used",
        "dissect902": sh([sys.executable, "-m", "dissect.port902.cli.main", "--version"]) or "?",
        "git": sh(["git", "rev-parse", "--short", "HEAD"]) + (" (+ uncommitted changes)"
                                                            if sh(["git", "status", "--porcelain"]) else ""),
    }


def run_measured(cmd: list[str], stdout_path: Path, stderr_path: Path, env: dict | None = None) -> dict:
    """Run ``cmd`` as a child; wall time and that child's own rusage (peak RSS, CPU)."""
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=REPO)
        _pid, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen from waiting again
    return {
        "cmd": cmd,
        "rc": proc.returncode,
        "seconds": wall,
        "cpu_seconds": ru.ru_utime + ru.ru_stime,
        "peak_rss_mib": ru.ru_maxrss / 1024,  # Linux: KiB
    }


def warm(path: Path) -> float:
    """Read the whole file once so both tools find it in the page cache."""
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(16 << 20):
            pass
    return time.perf_counter() - start


def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- one size

def generate(n: int, workdir: Path, args) -> tuple[Path, dict, float | None]:
    pcap = workdir / f"bulk-{n}.pcap"
    manifest_path = workdir / f"bulk-{n}.manifest.json"
    if args.keep and pcap.exists() and manifest_path.exists():
        try:
            m = json.loads(manifest_path.read_text())
            if (m.get("packets", 0) >= n and m.get("seed") == args.seed and m.get("file_size") == pcap.stat().st_size
                    and abs(m.get("requested_share", -1) - args.authd_share) < 1e-9):
                print(f"reusing {pcap} ({human_size(m['file_size'])})", file=sys.stderr)
                return pcap, m, None
        except (OSError, ValueError):
            pass
    print(f"generating {n:,} packets -> {pcap}", file=sys.stderr, flush=True)
    cmd = [sys.executable, str(GENERATOR), str(pcap), "--packets", str(n), "--authd-share", str(args.authd_share),
           "--seed", str(args.seed), "--manifest", str(manifest_path), "-q"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
    gen_s = time.perf_counter() - start
    m = json.loads(manifest_path.read_text())
    m["requested_share"] = args.authd_share
    manifest_path.write_text(json.dumps(m, indent=2) + "\n")
    return pcap, m, gen_s


def check_analysis(doc: dict, m: dict) -> list[dict]:
    """Compare dissect902's JSON with the generator's ground truth."""
    sessions = doc.get("sessions", [])
    caps = doc.get("captures", [{}])
    cap = caps[0] if caps else {}
    states = Counter(s.get("state") for s in sessions)
    checks = [
        ("port-902 sessions", m["sessions_expected"], len(sessions), True),
    ]
    for state, want in m["states_expected"].items():
        checks.append((f"sessions in state {state}", want, states.get(state, 0), True))
    other = sum(v for k, v in states.items() if k not in m["states_expected"])
    checks.append(("sessions in other states", 0, other, True))
    checks.append(("packets read", m["packets"], cap.get("packets"), True))
    checks.append(("packets selected (port 902)", m["authd_packets"], cap.get("selected_packets"), False))
    checks.append(("sessions with an authd banner", m["banners_expected"], sum(1 for s in sessions if s.get("banner")),
                   False))
    tls = Counter((s.get("tls") or {}).get("version") for s in sessions if s.get("tls"))
    for version, want in m["tls_expected"].items():
        checks.append((f"sessions with {version}", want, tls.get(version, 0), False))
    hs = sum((s.get("tls") or {}).get("handshakes", 0) for s in sessions)
    checks.append(("TLS handshakes", sum(m["tls_expected"].values()), hs, False))
    weird = doc.get("weird", [])
    checks.append(("weird findings", 0, len(weird), False))
    return [{"check": c, "expected": e, "got": g, "hard": h, "ok": e == g} for c, e, g, h in checks]


def bench_size(n: int, workdir: Path, args, tshark: str | None) -> dict:
    pcap, m, gen_s = generate(n, workdir, args)
    size = pcap.stat().st_size
    warm_s = warm(pcap)
    packets = m["packets"]
    row = {"packets": packets, "file_size": size, "generator_seconds": gen_s, "warm_read_seconds": warm_s,
           "manifest": m, "runs": {}}
    out_json = workdir / f"bulk-{n}.dissect902.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("DISSECT902_PURE_PYTHON", None)
    base = [sys.executable, "-m", "dissect.port902.cli.main", "analyze", str(pcap), "--format", "json", "-q"]
    r = None
    for name, extra, pure, same_as in VARIANTS if args.variants else VARIANTS[:1]:
        out = out_json if name == "dissect902" else workdir / f"bulk-{n}.{name}.json"
        print(f"running {name} on {pcap.name}", file=sys.stderr, flush=True)
        venv = dict(env, DISSECT902_PURE_PYTHON="1") if pure else env
        v = run_measured(base + extra + ["-o", str(out)], workdir / f"bulk-{n}.{name}.stdout",
                         workdir / f"bulk-{n}.{name}.stderr", venv)
        v["pps"] = packets / v["seconds"]
        row["runs"][name] = v
        if r is None:
            r = v
        if same_as is not None and v["rc"] == 0:
            ref = out_json if same_as == "dissect902" else workdir / f"bulk-{n}.{same_as}.json"
            row.setdefault("same", []).append({"check": f"{name} JSON == {same_as} JSON", "expected": True,
                                               "got": out.read_bytes() == ref.read_bytes(), "hard": True})
        if v["rc"] != 0:
            v["error"] = tail(workdir / f"bulk-{n}.{name}.stderr")
    assert r is not None
    if r["rc"] != 0:
        r["error"] = tail(workdir / f"bulk-{n}.dissect902.stderr")
        row["checks"] = [{"check": "dissect902 exit status", "expected": 0, "got": r["rc"], "hard": True, "ok": False}]
    else:
        try:
            doc = json.loads(out_json.read_text())
            row["checks"] = check_analysis(doc, m)
            row["states_found"] = dict(Counter(s.get("state") for s in doc.get("sessions", [])))
            row["weird_kinds"] = dict(Counter(w.get("kind") for w in doc.get("weird", [])))
            for c in row.pop("same", []):
                row["checks"].append(dict(c, ok=c["got"] == c["expected"]))
        except (OSError, ValueError) as exc:
            row["checks"] = [{"check": "dissect902 JSON output", "expected": "readable", "got": str(exc), "hard": True,
                              "ok": False}]
    if tshark:
        cmd = [tshark, "-r", str(pcap), "-q", "-z", "conv,tcp"]
        print(f"running tshark on {pcap.name}", file=sys.stderr, flush=True)
        out = workdir / f"bulk-{n}.tshark.stdout"
        t = run_measured(cmd, out, workdir / f"bulk-{n}.tshark.stderr")
        t["pps"] = packets / t["seconds"]
        row["runs"]["tshark"] = t
        if t["rc"] != 0:
            t["error"] = tail(workdir / f"bulk-{n}.tshark.stderr")
        try:
            with open(out, "r", errors="replace") as f:
                convs = sum(1 for line in f if "<->" in line)
        except OSError:
            convs = None
        row["checks"].append({"check": "tshark TCP conversations", "expected": m["tcp_conversations_expected"],
                              "got": convs, "hard": False, "ok": convs == m["tcp_conversations_expected"]})
    if not args.keep:
        for p in (pcap, workdir / f"bulk-{n}.tshark.stdout"):
            try:
                p.unlink()
            except OSError:
                pass
    return row


# --------------------------------------------------------------------------- report

def print_report(facts: dict, rows: list[dict], args, workdir: Path) -> int:
    print("## Machine\n")
    print(f"- nproc: {facts['nproc']} (usable by this process: {facts['usable_cpus']}), CPU: {facts['cpu_model']}, "
          f"RAM: {facts['memory']}")
    print(f"- OS: {facts['os']}")
    print(f"- Python: {facts['python']}")
    print(f"- tshark: {facts['tshark']}")
    print(f"- dissect902: {facts['dissect902']}, git {facts['git']}")
    print("- method: each capture is generated, then read once more; nothing is dropped from the page cache, "
          "so the file is warm in cache for both tools. Each tool runs alone as a child process; seconds = "
          "wall clock from spawn to os.wait4; peak RSS = ru_maxrss of that child from os.wait4; CPU = its user+sys. "
          "dissect902 writes its JSON to a file (used for the checks below).")
    print("- commands: `python -m dissect.port902.cli.main analyze F --format json -o OUT.json -q` (dissect902; "
          "with --variants also --jobs 1, --no-diagnostics, DISSECT902_PURE_PYTHON=1)"
          + ("" if args.skip_tshark else ", `tshark -r F -q -z conv,tcp`"))
    print()
    print("## Results\n")
    print("| packets | file size | port-902 share | tool | seconds | packets/s | CPU s | peak RSS MiB | "
          "throughput vs tshark |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for row in rows:
        runs = row["runs"]
        ts = runs.get("tshark")
        for tool, r in runs.items():
            if r["rc"] != 0:
                ratio = f"failed (exit {r['rc']})"
            elif ts and ts["rc"] == 0:
                ratio = f"{r['pps'] / ts['pps']:.1f}x"
            else:
                ratio = "-"
            print(f"| {row['packets']:,} | {human_size(row['file_size'])} | "
                  f"{row['manifest']['authd_share'] * 100:.1f}% | {tool} | {r['seconds']:.1f} | {r['pps']:,.0f} | "
                  f"{r['cpu_seconds']:.1f} | {r['peak_rss_mib']:.0f} | {ratio} |")
    print()

    failed_hard = False
    print("## Checks (dissect902 vs generator ground truth)\n")
    for row in rows:
        bad = [c for c in row.get("checks", []) if not c["ok"]]
        m = row["manifest"]
        print(f"- {row['packets']:,} packets: expected {m['sessions_expected']} port-902 sessions "
              f"({', '.join(f'{k} {v}' for k, v in m['states_expected'].items())}; {m['long_sessions']} long), "
              f"{m['authd_packets']:,} port-902 packets, {m['tcp_conversations_expected']:,} TCP conversations "
              f"over {m['duration_s']:.0f} s of capture time; generated in "
              + (f"{row['generator_seconds']:.1f} s" if row["generator_seconds"] is not None else "(reused)"))
        if not bad:
            print("  - all checks passed")
        for c in bad:
            level = "FAIL" if c["hard"] else "mismatch"
            failed_hard |= c["hard"]
            print(f"  - {level}: {c['check']}: expected {c['expected']}, got {c['got']}")
        if row.get("weird_kinds"):
            print(f"  - weird kinds: {row['weird_kinds']}")
        for tool, r in row["runs"].items():
            if r["rc"] != 0:
                if tool == "dissect902":
                    failed_hard = True
                print(f"  - {tool} exited {r['rc']}:\n```\n{r.get('error', '')}\n```")
    print()

    print("## Targets\n")
    ok_rows = [r for r in rows if r["runs"]["dissect902"]["rc"] == 0]
    for row in ok_rows:
        d, t = row["runs"]["dissect902"], row["runs"].get("tshark")
        if t and t["rc"] == 0:
            for name, target in TARGETS.items():
                v = row["runs"].get(name)
                if v is None or v["rc"] != 0:
                    continue
                ratio = v["pps"] / t["pps"]
                print(f"- {row['packets']:,} packets: {name} throughput {ratio:.1f}x tshark "
                      f"(target >= {target:.0f}x): {'met' if ratio >= target else 'NOT met'}")
            for name, one in (("dissect902", "jobs1"), ("no-diag", "no-diag-jobs1"), ("pure", "pure-jobs1")):
                a, b = row["runs"].get(name), row["runs"].get(one)
                if a and b and a["rc"] == 0 and b["rc"] == 0:
                    print(f"- {row['packets']:,} packets: {name} (automatic --jobs) {b['seconds'] / a['seconds']:.2f}x "
                          f"the speed of --jobs 1")
        print(f"- {row['packets']:,} packets: dissect902 peak RSS {d['peak_rss_mib']:.0f} MiB "
              f"(target < {TARGET_RSS_MIB:.0f}): {'met' if d['peak_rss_mib'] < TARGET_RSS_MIB else 'NOT met'}")
    if len(ok_rows) >= 2:
        a, b = ok_rows[0], ok_rows[-1]
        ra, rb = a["runs"]["dissect902"]["peak_rss_mib"], b["runs"]["dissect902"]["peak_rss_mib"]
        growth = b["packets"] / a["packets"]
        print(f"- memory flatness: {a['packets']:,} -> {b['packets']:,} packets ({growth:.1f}x): "
              f"dissect902 peak RSS {ra:.0f} -> {rb:.0f} MiB ({rb / ra:.2f}x)")
    if args.keep:
        print(f"\ncaptures, manifests and outputs kept in {workdir}")
    return 1 if failed_hard else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--packets", type=int, nargs="+", default=[1_000_000, 5_000_000], metavar="N",
                    help="capture sizes in packets (default: 1000000 5000000)")
    ap.add_argument("--keep", metavar="DIR", help="generate into DIR and keep captures and outputs (re-used on the "
                                                  "next run when size, seed and share match)")
    ap.add_argument("--skip-tshark", action="store_true", help="only time dissect902 (machines without tshark)")
    ap.add_argument("--authd-share", type=float, default=0.03, help="port-902 share of packets (default 0.03)")
    ap.add_argument("--seed", type=int, default=902)
    ap.add_argument("--json", metavar="FILE", help="also write all measurements as JSON to FILE")
    ap.add_argument("--variants", action="store_true",
                    help="also time --jobs 1, --no-diagnostics (both ways) and the pure-Python engine (both ways), "
                         "checking that each --jobs pair writes the same JSON")
    args = ap.parse_args(argv)

    tshark = None
    if not args.skip_tshark:
        tshark = shutil.which("tshark")
        if tshark is None:
            print("benchmark: tshark not found on PATH; install it (Wireshark CLI) or pass --skip-tshark",
                  file=sys.stderr)
            return 2
    if args.keep:
        workdir = Path(args.keep).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        cleanup = None
    else:
        workdir = Path(tempfile.mkdtemp(prefix="bench902-"))
        cleanup = workdir
    facts = machine_facts(tshark)
    rows = []
    try:
        for n in args.packets:
            rows.append(bench_size(n, workdir, args, tshark))
        rc = print_report(facts, rows, args, workdir)
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": facts, "results": rows}, indent=2, default=str) + "\n")
    finally:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
