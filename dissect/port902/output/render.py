"""Renderers (stage 7): table, JSON, JSON lines, CSV and Parquet.

Everything that reaches a terminal goes through :func:`safe`: a capture is
attacker-controlled input, and a hostile banner must not move the cursor, change
colours or rewrite the screen.  C0/C1 control characters, DEL and Unicode
bidirectional overrides are shown escaped (``\\x1b``).  JSON is written with
``ensure_ascii`` so it is safe by construction; CSV cells are escaped the same way
as the table, and a text cell that a spreadsheet would take for a formula (it starts
with ``=``, ``+``, ``-``, ``@``, TAB or CR: SNI, user names, targets and banners are the
sender's choice) gets a leading ``'``, as spreadsheet-safe exporters do.  Numeric columns
are written as numbers.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import TextIO

from ..extras import require
from ..model.timefmt import utc_text

MAX_FAILURE_LINES = 20
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as the start of a formula
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\n\t]")


def safe(value: object) -> str:
    """Text with every control character escaped, fit for a terminal."""
    text = "" if value is None else str(value)
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _utc(ts: float | None) -> str:
    return utc_text(ts)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return str(n)


def size_text(n: float) -> str:
    """``1234567`` -> ``'1.2 MB'``: decimal units with a space (the HTML report, ``watch``)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _tls_cell(s) -> str:
    if not s.handshakes:
        return "mid-stream" if s.transport.startswith("tls") else "-"
    v = (s.tls_version or "?").replace("TLS ", "")
    extra = {"tls+tls2": " +2nd", "tls+clear": " +clear"}.get(s.transport, "")
    return f"{v} x{len(s.handshakes)}{extra}"


def _auth_cell(s) -> str:
    if not s.login_summary and not s.connect_kind:
        return "-"
    parts = []
    if s.login_summary:
        parts.append(s.login_summary)
    if s.connect_kind:
        parts.append(s.connect_kind + ("" if s.connect_ok is not False else f" {s.connect_code}"))
    return ", ".join(parts)


def _feature_cell(s) -> str:
    if s.confidence is None:
        return s.feature
    if getattr(s, "feature_inferred", None) and s.feature_inferred != s.feature:  # decrypted, and the classifier erred
        return f"{s.feature} {s.confidence:.2f} (inferred {s.feature_inferred})"
    return f"{s.feature} {s.confidence:.2f}"


def table_width(out: TextIO) -> int | None:
    """The terminal's width when ``out`` is one (``COLUMNS`` first), else None: a file or a pipe
    gets every column."""
    if not getattr(out, "isatty", lambda: False)():
        return None
    import shutil

    return shutil.get_terminal_size((200, 24)).columns


def render_table(analysis, out: TextIO, width: int | None = -1) -> None:
    """A readable summary: one line per session, then hand-offs and findings.

    ``width``: fit the session grid into so many columns (dropping and shortening the columns
    that matter least, as ``ps`` does); None for every column; -1 (default) for the terminal's
    width when ``out`` is a terminal, else every column."""
    if width == -1:
        width = table_width(out)
    caps = analysis.captures
    for c in caps:
        if c.format == "unreadable":
            out.write(safe(f"{c.path}: not read (not a capture: see the unreadable_capture row below)") + "\n")
            continue
        files = getattr(c, "files", None)  # an archive sensor (io.chain): its files as one stream
        several = f"{len(files)} file(s) as one stream, " if files is not None else ""
        out.write(safe(f"{c.path}: {several}{c.format}, {', '.join(c.link_types) or '?'}, {c.packets} packets, "
                       f"{c.selected} selected (authd, DNS, ICMP errors, console paths)") + "\n")
    sessions = analysis.sessions
    out.write(f"\n{len(sessions)} session(s)\n")
    headers = ["#", "uid", "start (UTC)", "client", "server", "state", "dur s", "banner", "tls", "auth",
               "c->s", "s->c", "feature", "failure"]
    rows = []
    for i, s in enumerate(sessions, 1):
        banner = f"{s.banner.version} {s.product}" if s.banner else "-"
        rows.append([
            str(i), s.uid[:10], _utc(s.start), s.client, s.server, s.state, f"{s.duration_s:.1f}",
            banner, _tls_cell(s), _auth_cell(s), _size(s.bytes[0]), _size(s.bytes[1]), _feature_cell(s),
            s.failure.kind if s.failure else "-",
        ])
    _write_grid(out, headers, rows, width)
    failed = [(i, s) for i, s in enumerate(sessions, 1) if s.failure]
    if failed:
        out.write(f"\nfailures ({len(failed)})\n")
        for i, s in failed[:MAX_FAILURE_LINES]:
            f = s.failure
            where = f" (frame {f.frame})" if f.frame is not None else ""
            out.write(safe(f"  #{i} {f.kind}{where}: {f.reason}") + "\n")
        if len(failed) > MAX_FAILURE_LINES:
            out.write(f"  ... {len(failed) - MAX_FAILURE_LINES} more (use --format json)\n")
    reasons = [(i, s) for i, s in enumerate(sessions, 1) if s.reasons]
    if reasons:
        out.write("\nwhy (top reason per session)\n")
        for i, s in reasons:
            out.write(safe(f"  #{i} {s.feature}: {s.reasons[0]}") + "\n")
    if analysis.handoffs:
        out.write("\n903 -> 902 hand-offs\n")
        for h in analysis.handoffs:
            out.write(safe(f"  {h.client}: {h.from_server} (frame {h.from_frame}) -> {h.to_server} "
                           f"(frame {h.to_frame}), gap {h.gap_s:.3f} s"
                           + ("" if h.same_server else ", vmkernel on another address")) + "\n")
    vnc = analysis.extras.get("vnc")
    if vnc is not None and vnc.sessions:  # plain VNC consoles (analyzers/vnc.py): not authd, listed apart
        out.write(f"\nplain VNC consoles ({len(vnc.sessions)}; feature VNC: unencrypted, see dissect902 doctor)\n")
        for v in vnc.sessions[:50]:
            size = f"{v.width}x{v.height}" if v.width is not None else "-"
            out.write(safe(f"  {v.uid}  {v.client} -> {v.server}  RFB {v.server_version}  "
                           f"security {v.security_chosen or ', '.join(v.security_offered) or '-'}  "
                           f"auth {v.authentication or '-'}/{v.auth_result or '-'}  {size}  "
                           f"'{v.desktop_name or ''}'  {v.state}") + "\n")
    diag = analysis.extras.get("diagnostics")
    if diag is not None:
        problems = diag.problems
        if problems:
            out.write(f"\ndiagnosis: {len(problems)} problem(s), most likely first (details: dissect902 doctor)\n")
            for f in problems[:5]:
                out.write(safe(f"  [{f.likelihood:.0%}] {f.title}") + "\n")
        else:
            out.write("\ndiagnosis: no problem found (details: dissect902 doctor)\n")
    weird = analysis.weird
    if weird:
        out.write(f"\n{len(weird)} weird finding(s)\n")
        for w in weird[:20]:
            where = f"frame {w.frame}" if w.frame else (f"offset {w.offset}" if w.offset is not None else "")
            out.write(safe(f"  {w.kind} {where} {w.uid[:10]}: {w.detail}") + "\n")
        if len(weird) > 20:
            out.write(f"  ... {len(weird) - 20} more (use --format json)\n")


# what goes first when the session grid is wider than the terminal: the start time is cut to
# HH:MM:SS, then columns are dropped in this order; addresses are shortened with "…" before the
# failure column goes; "#", client, server, state and feature always stay
DROP_ORDER = ("auth", "banner", "dur s", "c->s", "s->c", "tls", "uid", "start (UTC)", "failure")


def _grid_width(headers: list[str], rows: list[list[str]]) -> int:
    return sum(max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)) + 2 * (len(headers) - 1)


def _fit(headers: list[str], rows: list[list[str]], width: int) -> tuple[list[str], list[list[str]], list[str]]:
    """(headers, rows, dropped column names) that fit ``width`` columns."""
    dropped: list[str] = []
    if _grid_width(headers, rows) <= width:
        return headers, rows, dropped
    if "start (UTC)" in headers:
        i = headers.index("start (UTC)")
        headers = headers[:i] + ["start"] + headers[i + 1:]
        rows = [r[:i] + [r[i][11:19] if len(r[i]) > 19 else r[i]] + r[i + 1:] for r in rows]

    def drop(names, headers, rows):
        for name in names:
            if _grid_width(headers, rows) <= width:
                break
            key = "start" if name == "start (UTC)" else name
            if key in headers:
                i = headers.index(key)
                headers = headers[:i] + headers[i + 1:]
                rows = [r[:i] + r[i + 1:] for r in rows]
                dropped.append(name)
        return headers, rows

    def shorten(rows, floor):
        excess = _grid_width(headers, rows) - width
        for name in ("server", "client"):
            if excess <= 0 or name not in headers:
                continue
            i = headers.index(name)
            longest = max([len(r[i]) for r in rows] + [len(name)])
            keep = min(longest, max(len(name), longest - excess, floor))
            rows = [r[:i] + [r[i] if len(r[i]) <= keep else r[i][:keep - 1] + "\u2026"] + r[i + 1:] for r in rows]
            excess -= longest - keep
        return rows

    headers, rows = drop(DROP_ORDER[:-1], headers, rows)
    rows = shorten(rows, 16)
    headers, rows = drop(DROP_ORDER[-1:], headers, rows)
    rows = shorten(rows, 8)
    return headers, rows, dropped


def _write_grid(out: TextIO, headers: list[str], rows: list[list[str]], width: int | None = None) -> None:
    rows = [[safe(c) for c in r] for r in rows]
    dropped: list[str] = []
    if width is not None:
        headers, rows, dropped = _fit(headers, rows, width)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out.write(line.rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")
    if dropped:
        out.write(f"(hidden to fit {width} columns: {', '.join(dropped)}; -f json shows all)\n")


def render_json(analysis, out: TextIO, records: bool = False) -> None:
    """Indented for a person at a terminal; compact (and several times faster to write) into
    a file or a pipe."""
    indent = 2 if getattr(out, "isatty", lambda: False)() else None
    # json.dumps, not json.dump: dump always takes the pure-Python encoder, dumps the C one
    if indent is not None:  # a person reads it: small enough to build whole
        out.write(json.dumps(analysis.to_dict(records=records), ensure_ascii=True, indent=indent, default=str))
        out.write("\n")
        return
    # into a file or a pipe, the sessions are written one at a time: the same bytes as one
    # json.dumps of the whole document, without every session's dict alive at once
    doc = analysis.to_dict(records=records, sessions=False)
    head, sep, tail = json.dumps(doc, ensure_ascii=True, default=str).partition('"sessions": []')
    if not sep:
        raise AssertionError("the JSON document lost its sessions key")
    out.write(head + '"sessions": [')
    for i, s in enumerate(analysis.sessions):
        out.write((", " if i else "") + json.dumps(s.to_dict(records=records), ensure_ascii=True, default=str))
    out.write("]" + tail + "\n")


def render_jsonl(analysis, out: TextIO, records: bool = False) -> None:
    """One JSON object per line: sessions, then hand-offs, then weird findings (``record_type`` says which)."""
    for s in analysis.sessions:
        out.write(json.dumps({"record_type": "session", **s.to_dict(records=records)}, ensure_ascii=True,
                             default=str) + "\n")
    doc = analysis.to_dict(records=records, sessions=False)
    for kind, key in (("handoff", "handoffs"), ("weird", "weird")):
        for item in doc[key]:
            out.write(json.dumps({"record_type": kind, **item}, ensure_ascii=True, default=str) + "\n")


class JsonlStream:
    """``analyze -f jsonl`` written while the captures are read (``analysis.analyze(emit=...)``):
    each session as it is final, followed by its weird rows; hand-offs and the captures' own
    weird rows at the end.  The lines are those of :func:`render_jsonl`, in the order sessions
    end rather than by start, and nothing is held per session.  The output is opened at the
    first line, so a run that reads no capture leaves no file behind."""

    def __init__(self, path, records: bool = False) -> None:
        from contextlib import ExitStack

        self.path, self.records = path, records
        self._stack = ExitStack()
        self._out: TextIO | None = None
        self.sessions = self.weird = self.decrypted = 0

    def _write(self, kind: str, item: dict) -> None:
        if self._out is None:
            from .sink import open_output

            self._out = self._stack.enter_context(open_output(self.path))
        self._out.write(json.dumps({"record_type": kind, **item}, ensure_ascii=True, default=str) + "\n")

    def session(self, rec) -> None:
        self.sessions += 1
        self.decrypted += rec.decryption is not None and rec.decryption.decrypted
        self._write("session", rec.to_dict(records=self.records))
        for w in rec.weird:
            self.weird += 1
            self._write("weird", w.to_dict())

    def finish(self, analysis) -> None:
        """The run's end: hand-offs, then the weird rows that belong to no session."""
        for h in analysis.handoffs:
            self._write("handoff", h.to_dict())
        for w in analysis.weird:
            self.weird += 1
            self._write("weird", w.to_dict())
        if self._out is None:  # nothing at all: still an (empty) output, as render_jsonl gives
            from .sink import open_output

            self._out = self._stack.enter_context(open_output(self.path))

    def close(self) -> None:
        self._stack.close()


def frame_for(analysis, table: str):
    """The DataFrame of ``table``: the analysis' own tables, or the diagnosis' (findings, heartbeats,
    console_paths, dns), which exist only when the diagnosis ran."""
    from ..model.schema import DIAGNOSIS_TABLES

    if table in DIAGNOSIS_TABLES:
        diag = analysis.diagnostics
        if diag is None:
            from .sink import OutputError

            raise OutputError(f"the {table} table comes from the diagnosis: drop --no-diagnostics")
        return getattr(diag, f"{table}_frame")()
    return getattr(analysis, f"{table}_frame")()


def csv_cell(value: object) -> str:
    """A text cell for CSV: a leading ``'`` where a spreadsheet would start a formula, then the
    terminal-safe escaping of :func:`safe`."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_START):
        text = "'" + text
    return safe(text)


def render_csv(analysis, out: TextIO, table: str = "sessions") -> None:
    pd = require("pandas", "--format csv")

    df = frame_for(analysis, table)
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]  # booleans too: never formulas
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(df.columns)
    for row in df.itertuples(index=False):
        writer.writerow(["" if _isna(v) else (str(v) if num else csv_cell(v)) for v, num in zip(row, numeric)])
    out.write(buf.getvalue())


def _isna(v: object) -> bool:
    import pandas as pd

    return v is None or (pd.api.types.is_scalar(v) and bool(pd.isna(v)))


def write_parquet(analysis, path: str, table: str = "sessions") -> None:
    """One table as a Parquet file with its declared schema (``output.parquet``)."""
    from .parquet import write_parquet as write

    write(analysis, path, table)
