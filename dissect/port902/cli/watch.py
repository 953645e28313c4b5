"""``dissect902 watch``: port-902 sessions live, from an interface or a stream (stage: cli).

The capture comes from ``tcpdump -U -w -`` run as a child process (``-i IFACE``, with a BPF filter
for what the analysis reads), or from ``-r FILE|-`` (a capture file, a FIFO, ``tcpdump -w - |``).
It goes through the same pipeline as ``analyze``: a line is printed as each session ends, with
the verdict the classifier gives it then; a diagnosis finding is printed once its evidence is
settled (``infer.diagnose.live``: a snapshot of the checks every few capture seconds over what is
kept, each finding once, by its key); on a terminal a status line shows what is open and the
rate; on Ctrl-C (or at the end of a file) the capture is read to its end, hand-offs and the
diagnosis are worked out on what was kept, the findings not printed yet are printed, and a
summary is printed.

Memory is bounded over a day-long run: finished records are kept for the summary only up to
``--keep`` (the counts cover every session), the connection and side-analysis tables have their
own caps, and idle connections expire on capture time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, deque
from typing import TextIO

from ..output.render import size_text

# what the analysis reads: authd (902, 903, Workstation 912), the console paths beside it (ESXi
# and vCenter 443, vCenter's relay 7331/7343), plain VNC, DNS, vpxa heartbeats on UDP 902 and
# ICMP errors; tcpdump's port primitives match IPv4 and IPv6, "vlan" repeats them on 802.1Q
BASE_FILTER = ("tcp port 902 or tcp port 903 or tcp port 912 or tcp port 443 or tcp port 7331 or tcp port 7343 "
               "or tcp portrange 5900-5999 or udp port 53 or udp port 902 or icmp or icmp6")
DEFAULT_FILTER = f"({BASE_FILTER}) or (vlan and ({BASE_FILTER}))"
CLOSE_LINGER_S = 5.0  # a closed connection's line comes this long (capture time) after its last packet
KEEP = 10_000  # finished records kept for the summary (hand-offs, diagnosis)
STATUS_EVERY_S = 0.5
SUMMARY_FINDINGS = 10

WATCH_EPILOG = f"""\
what it prints:
  one line per session as it ends (5 s of capture time after its FIN/RST, to catch late segments;
  so at the first packet after that, or at Ctrl-C on a quiet link), with the verdict analyze
  gives it (a classic-ESX 903 leg inherits its console's feature only at the end): time, client -> server, the verdict (MKS, NFC, SOAP, VMXARGS,
  NONE) with its confidence, duration, bytes each way, TCP state, why it failed (if it did).
  one line per diagnosis finding (the ones `dissect902 doctor` reports), once: when its evidence is
  settled (the sessions it names have ended; an unanswered attempt after 120 s without a packet, a
  DNS failure 60 s after that name's last query or answer), checked every 2 s of capture time
  (and in at most 10% of watch's CPU time); what is still open prints at the end, before the summary. A
  finding that grows later (more attempts of the same group) is not printed again: the summary
  shows its end state. Line: time, FINDING, severity and likelihood, title, kind and frames.
  -f jsonl: one JSON object per session ("record_type": "session", the fields of analyze's JSON)
  and per finding ("record_type": "finding", "phase": "live" or "end", doctor's fields), then the
  summary, hand-offs, findings ("phase": "summary", "printed": when it was printed) and damage
  found in the input (weird) as records of their own.
  On a terminal, a status line: sessions open, finished by feature, packets and bytes per second.
  Ctrl-C stops the capture; the rest is read, then the summary (counts by feature, hand-offs, the
  diagnosis' findings with their frames). A second Ctrl-C quits at once.

capture:
  -i IFACE runs `tcpdump -i IFACE -U -w - FILTER` (root or CAP_NET_RAW); the default filter is
    {BASE_FILTER}
    (and the same inside 802.1Q VLAN tags); --filter replaces it.
  -r FILE|- reads a capture file, FIFO or standard input instead (tcpdump -w - | dissect902 watch -r -).
  Frame numbers count from the first packet watch saw.

examples:
  sudo dissect902 watch -i eth0
  sudo dissect902 watch -i eth0 -f jsonl | jq 'select(.record_type=="session" and .feature=="MKS")'
  tcpdump -i eth0 -U -w - port 902 | dissect902 watch -r -
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``watch`` on an ``argparse`` sub-parser collection; returns its parser."""
    p = subparsers.add_parser(
        "watch",
        help="follow port-902 sessions live (an interface via tcpdump, or a stream)",
        description="Print port-902 sessions as they end and the console diagnosis' findings as they "
        "become certain, live, with a summary when stopped (Ctrl-C).",
        epilog=WATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-i", "--interface", metavar="IFACE", help="capture on IFACE with tcpdump")
    src.add_argument("-r", "--read", metavar="FILE", help="read a capture file, FIFO or - (standard input)")
    p.add_argument("--filter", metavar="BPF", help="tcpdump filter instead of the default (see below)")
    p.add_argument("-f", "--format", choices=["table", "jsonl"], default="table", help="output format (default: table)")
    p.add_argument("--keep", type=int, default=KEEP, metavar="N",
                   help=f"finished sessions kept for the summary and the diagnosis (default: {KEEP:,})")
    p.add_argument("--show-secrets", action="store_true", help="show PASS arguments and tickets instead of <redacted>")
    p.add_argument("--tcpdump", default="tcpdump", metavar="PATH", help="the tcpdump to run (default: from PATH)")
    p.add_argument("-q", "--quiet", action="store_true", help="no status line, no notes on stderr")
    p.set_defaults(func=run)
    return p


class Watcher:
    """Counts and prints what the analysis reports while it reads (``analysis.SessionEvents``),
    and the findings ``live`` (``infer.diagnose.live.LiveFindings``) says are settled."""

    def __init__(self, out: TextIO, fmt: str, status: TextIO | None, live=None, source: str = "",
                 keep: int = KEEP) -> None:
        self.out, self.fmt, self.status = out, fmt, status
        self.live, self.source = live, source
        self.kept: deque = deque(maxlen=keep)  # classified records the live diagnosis reads
        self.open: dict[str, object] = {}  # uid -> connection still open (its start and last packet)
        self.now: float | None = None  # capture time: the latest packet seen by an event
        self.opened_count = 0
        self.finished_count = 0
        self.features: Counter[str] = Counter()
        self.bytes_read = 0
        self.started = time.monotonic()
        self._last_status = 0.0
        self._rate_mark = (self.started, 0)
        self._rate = 0.0

    # -- analysis.SessionEvents ----------------------------------------------------------------------
    def opened(self, conn) -> None:
        self.opened_count += 1
        self.open[conn.uid] = conn
        if self.now is None or conn.start > self.now:
            self.now = conn.start
        self.tick()  # no snapshot here: the connection table may be about to finish sessions (a sweep)

    def finished(self, record) -> None:
        from ..analysis import judge

        rec = judge(record)  # the verdict analyze gives it (a 903 leg's inherited feature comes at the end)
        self.finished_count += 1
        self.features[rec.feature] += 1
        self.open.pop(rec.uid, None)
        if self.now is None or rec.end > self.now:
            self.now = rec.end
        self._clear_status()
        if self.fmt == "jsonl":
            self.out.write(json.dumps({"record_type": "session", **rec.to_dict()}, ensure_ascii=True,
                                      default=str) + "\n")
        else:
            self.out.write(session_line(rec) + "\n")
        self.out.flush()
        if self.live is not None:
            self.kept.append(rec)
            self.live.session_ended()
            self.check()
        self.tick(force=True)

    # -- findings ------------------------------------------------------------------------------------
    def check(self) -> None:
        """Print the findings settled by now (a snapshot only when one is due: ``LiveFindings.due``)."""
        live = self.live
        now = max((t for t in (self.now, live.diag.last_ts) if t is not None), default=None)
        if not live.due(now):
            return
        t0 = time.process_time()
        for c in self.open.values():  # the latest packet of a connection still open
            now = max(now, c.end)
        live.spent_s += time.process_time() - t0  # counted in the snapshots' share of the CPU time
        starts: dict[str, list[float]] | None = None

        def open_starts(ip: str) -> list[float]:
            nonlocal starts
            if starts is None:
                from ..net.flows import fmt_ip

                starts = {}
                for c in self.open.values():
                    starts.setdefault(fmt_ip(c.orig_ip), []).append(c.start)
            return starts.get(ip, [])

        pairs: set[tuple[str, str]] | None = None

        def closing(client: str, server: str) -> bool:
            nonlocal pairs
            if pairs is None:
                from ..net.flows import fmt_ip

                pairs = {(fmt_ip(c.orig_ip), fmt_ip(c.resp_ip)) for c in self.open.values() if c.closed}
            return (client, server) in pairs

        for f in live.poll(lambda: _linked(self.kept), now, [self.source], open_starts, force=True,
                           closing=closing):
            self.finding(f, "live", now)

    def finding(self, f, phase: str, now: float | None) -> None:
        self._clear_status()
        if self.fmt == "jsonl":
            self.out.write(json.dumps({"record_type": "finding", "phase": phase, "settled_ts": now,
                                       "key": list(f.key or ()), **f.to_dict()}, ensure_ascii=True,
                                      default=str) + "\n")
        else:
            self.out.write(finding_line(f, now) + "\n")
        self.out.flush()
        self.tick(force=True)

    # -- progress ------------------------------------------------------------------------------------
    def progress(self, n: int) -> None:
        self.bytes_read = n
        if self.live is not None:
            self.check()
        self.tick()

    def tick(self, force: bool = False) -> None:
        if self.status is None:
            return
        now = time.monotonic()
        if not force and now - self._last_status < STATUS_EVERY_S:
            return
        t0, b0 = self._rate_mark
        if now - t0 >= 1.0:
            self._rate = (self.bytes_read - b0) / (now - t0)
            self._rate_mark = (now, self.bytes_read)
        self._last_status = now
        feats = " ".join(f"{k} {v}" for k, v in sorted(self.features.items())) or "none yet"
        line = (f"open {self.opened_count - self.finished_count} · finished {self.finished_count} ({feats}) · "
                f"{size_text(self.bytes_read)} read, {size_text(self._rate)}/s")
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.status.write("\r\x1b[K" + line[:width])
        self.status.flush()

    def _clear_status(self) -> None:
        if self.status is not None:
            self.status.write("\r\x1b[K")
            self.status.flush()


def session_line(rec) -> str:
    from ..model.timefmt import utc_text
    from ..output.render import safe

    conf = "" if rec.confidence is None else f" {rec.confidence:.2f}"
    failure = f"  {rec.failure.kind} (frame {rec.failure.frame})" if rec.failure else ""
    text = (f"{utc_text(rec.start)}  {rec.client} -> {rec.server}  {rec.feature}{conf}  {rec.duration_s:.1f} s  "
            f"{size_text(rec.bytes[0])} / {size_text(rec.bytes[1])}  {rec.state}{failure}  {rec.uid}")
    return safe(text)


def finding_line(f, now: float | None) -> str:
    """One finding, on one terminal-safe line: when, severity and likelihood, title, kind, frames."""
    from ..model.timefmt import utc_text
    from ..output.render import safe

    when = now if now is not None else f.last_ts
    frames = ", ".join(str(x) for x in f.evidence[:8]) + (" ..." if len(f.evidence) > 8 else "")
    text = (f"{utc_text(when) if when is not None else '-'}  FINDING {f.severity} {f.likelihood:.0%}  {f.title}  "
            f"({f.kind}; frames {frames or '-'})")
    return safe(text)


def _linked(kept) -> list:
    """The kept records as the end of the run would see them: a classic-ESX 903 leg takes the
    feature of the 902 session it handed over to (``analysis.inherit_handoff_features``)."""
    from ..analysis import Analysis, inherit_handoff_features
    from ..infer.links import find_handoffs

    sessions = list(kept)
    view = Analysis(sessions=sessions, handoffs=find_handoffs(sessions))
    if view.handoffs:
        inherit_handoff_features(view)
    return view.sessions


class _Named:
    """tcpdump's stdout under the name results give it as their source (not a file descriptor)."""

    def __init__(self, fh, name: str) -> None:
        self._fh, self.name = fh, name

    def read(self, n: int = -1) -> bytes:
        return self._fh.read(n)

    def read1(self, n: int = -1) -> bytes:
        return self._fh.read1(n)

    def fileno(self) -> int:
        return self._fh.fileno()

    def close(self) -> None:
        self._fh.close()


class Tcpdump:
    """``tcpdump -U --immediate-mode -w -`` on the interface, in a session of its own (our Ctrl-C
    handler decides when it stops, so its last packets are flushed); its stderr ("listening on
    ...", "N packets captured", errors) is relayed, made terminal-safe, unless quiet."""

    def __init__(self, args) -> None:
        import threading

        from ..output.sink import OutputError

        exe = shutil.which(args.tcpdump) or (args.tcpdump if os.path.isfile(args.tcpdump) else None)
        if exe is None:
            raise OutputError(f"cannot capture: {args.tcpdump} not found (install tcpdump, or use -r FILE|-)")
        cmd = [exe, "-i", args.interface, "-U", "--immediate-mode", "-w", "-", "-s", "0", "-n",
               args.filter or DEFAULT_FILTER]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.stdout = _Named(self.proc.stdout, f"tcpdump -i {args.interface}")
        self.lines: list[str] = []
        self._quiet = args.quiet
        self._relay = threading.Thread(target=self._read_stderr, daemon=True)
        self._relay.start()

    def _read_stderr(self) -> None:
        from ..output.render import safe

        for raw in self.proc.stderr:
            line = safe(raw.decode(errors="replace").rstrip("\r\n"))
            self.lines = (self.lines + [line])[-20:]
            if not self._quiet:
                sys.stderr.write(f"tcpdump: {line}\n")
                sys.stderr.flush()

    def interrupt(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # tcpdump writes what it has and ends the stream

    def stop(self) -> int:
        self.interrupt()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._relay.join(timeout=2)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not self._relay.is_alive():
                stream.close()
        return self.proc.returncode


def run(args: argparse.Namespace) -> int:
    from ..analysis import analyze, default_observers
    from ..errors import CaptureError
    from ..output.sink import OutputError

    out = sys.stdout
    if out is None:  # started with standard output closed (``watch ... >&-``)
        raise OutputError("cannot write output: standard output is closed")
    status = sys.stderr if (not args.quiet and sys.stderr is not None and sys.stderr.isatty()
                            and args.format == "table") else None
    if args.keep < 1:
        raise OutputError("--keep must be at least 1")
    from ..infer.diagnose.live import LiveFindings
    from ..io.source import source_name

    dump = Tcpdump(args) if args.interface else None
    observers = default_observers(args.show_secrets)
    diag = next(o for o in observers if o.name == "diagnostics")
    source = dump.stdout if dump is not None else args.read
    watcher = Watcher(out, args.format, status, live=LiveFindings(diag), source=source_name(source),
                      keep=args.keep)
    stopping = {"count": 0}

    def on_signal(signum, frame):
        stopping["count"] += 1
        if stopping["count"] > 1:
            raise KeyboardInterrupt
        if dump is not None:
            dump.interrupt()
        elif args.read != "-" and not _is_fifo(args.read):
            raise KeyboardInterrupt  # a regular file: nothing upstream to stop, quit now
        # a pipe: the writer upstream got the terminal's Ctrl-C too; read what it still sends

    previous = signal.signal(signal.SIGINT, on_signal), signal.signal(signal.SIGTERM, on_signal)
    try:
        try:
            result = analyze([source], show_secrets=args.show_secrets,
                             progress=watcher.progress, observers=observers,
                             events=watcher, retain=args.keep, close_linger=CLOSE_LINGER_S)
        except CaptureError as exc:
            if dump is not None:
                code = dump.stop()
                why = dump.lines[-1] if dump.lines else ""
                if code or not watcher.bytes_read:
                    raise OutputError(f"tcpdump on {args.interface} failed" + (f": {why}" if why else "")) from None
            raise OutputError(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
        code = dump.stop() if dump is not None else 0
    watcher._clear_status()
    if dump is not None and code not in (0, -signal.SIGINT):
        why = dump.lines[-1] if dump.lines else f"exit status {code}"
        if not watcher.bytes_read:
            raise OutputError(f"tcpdump on {args.interface} failed: {why}")
        sys.stderr.write(f"dissect902 watch: tcpdump ended early: {why}\n")
    diagnosis = result.diagnostics
    for f in watcher.live.at_end(diagnosis.findings if diagnosis is not None else []):
        watcher.finding(f, "end", None)
    watcher._clear_status()
    summarize(result, watcher, out, args.format)
    return 0


def _is_fifo(path: str) -> bool:
    import stat

    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def summarize(result, watcher: Watcher, out: TextIO, fmt: str) -> None:
    """Counts over every session seen; hand-offs and findings over the sessions kept."""
    from ..output.render import safe

    diag = result.diagnostics
    findings = list(diag.findings) if diag is not None else []
    kept = len(result.sessions)
    summary = {
        "sessions": watcher.finished_count,
        "sessions_kept": kept,
        "by_feature": dict(sorted(watcher.features.items())),
        "handoffs": len(result.handoffs),
        "bytes_read": watcher.bytes_read,
        "packets": sum(c.packets for c in result.captures),
        "seconds": round(time.monotonic() - watcher.started, 3),
        "findings": len(findings),
    }
    live = watcher.live
    gone = live.gone(findings) if live is not None else []
    if live is not None:
        phases = Counter(phase for _f, phase in live.printed.values())
        summary.update({"findings_printed_live": phases["live"], "findings_printed_at_end": phases["end"],
                        "findings_live_not_final": len(gone), "findings_over_live_cap": len(live.not_printed),
                        "diagnosis_snapshots": live.snapshots, "diagnosis_snapshots_skipped": live.skipped})
    damage = [w for w in result.capture_weird]  # truncated or corrupt input, unreadable files, ...
    summary["capture_weird"] = len(damage)
    if fmt == "jsonl":
        out.write(json.dumps({"record_type": "summary", **summary}, ensure_ascii=True) + "\n")
        for w in damage:
            out.write(json.dumps({"record_type": "weird", "kind": w.kind, "detail": w.detail, "frame": w.frame,
                                  "offset": w.offset, "source": w.source}, ensure_ascii=True, default=str) + "\n")
        for h in result.handoffs:
            out.write(json.dumps({"record_type": "handoff", **h.to_dict()}, ensure_ascii=True, default=str) + "\n")
        for f in findings:
            out.write(json.dumps({"record_type": "finding", "phase": "summary",
                                  "printed": live.phase(f) if live is not None else None, "key": list(f.key or ()),
                                  **f.to_dict()}, ensure_ascii=True, default=str) + "\n")
        out.flush()
        return
    feats = ", ".join(f"{k} {v}" for k, v in summary["by_feature"].items()) or "none"
    out.write(f"\n{summary['sessions']} session(s) ({feats}); {summary['packets']:,} packets, "
              f"{size_text(summary['bytes_read'])} in {summary['seconds']:.1f} s\n")
    for w in damage:
        where = f" (byte {w.offset})" if w.offset is not None else (f" (frame {w.frame})" if w.frame else "")
        out.write(safe(f"note: {w.kind}{where}: {w.detail}") + "\n")
    if kept < summary["sessions"]:
        out.write(f"hand-offs and diagnosis over the last {kept:,} sessions (--keep)\n")
    for h in result.handoffs:
        out.write(safe(f"hand-off {h.client}: {h.from_server} (frame {h.from_frame}) -> {h.to_server} "
                       f"(frame {h.to_frame})") + "\n")
    if not findings:
        out.write("diagnosis: no problem found\n")
    elif live is not None:
        out.write(f"diagnosis: {len(findings)} finding(s), {summary['findings_printed_live']} of them printed while "
                  "the capture ran (* below)\n")
    for f in findings[:SUMMARY_FINDINGS]:
        frames = ", ".join(str(x) for x in f.evidence[:8])
        mark = "*" if live is not None and live.phase(f) == "live" else " "
        out.write(safe(f" {mark}[{f.likelihood:.0%}] {f.title} ({f.kind}; frames {frames or '-'})") + "\n")
    if len(findings) > SUMMARY_FINDINGS:
        out.write(f"  ... {len(findings) - SUMMARY_FINDINGS} more (dissect902 doctor on a saved capture)\n")
    if gone:
        out.write(f"note: {len(gone)} finding(s) printed live are not in the final diagnosis (later evidence "
                  "changed them, or their sessions are beyond --keep)\n")
    if live is not None and live.not_printed:
        from ..infer.diagnose.findings import MAX_FINDINGS_PER_KIND

        out.write(f"note: {len(live.not_printed)} more finding(s) not printed live (at most "
                  f"{MAX_FINDINGS_PER_KIND} per kind)\n")
    out.flush()
