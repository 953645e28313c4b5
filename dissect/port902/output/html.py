"""A shareable, self-contained HTML report (issue 12): ``dissect902 report CAPTURE... -o report.html``.

Stage: output.  Input: an :class:`~dissect.port902.analysis.Analysis` (its DataFrames, its
``diagnostics`` findings) and the charts of :mod:`dissect.port902.plots`; output: one HTML file for
a reader who has neither Python nor the capture.

Self-contained: styles and the one script are inlined, charts are PNG ``data:`` images, and a
Content-Security-Policy (``default-src 'none'``, the script and the style allowed by their SHA-256
hash only) makes the browser refuse any request and any script that is not ours.  HTML-safe and
terminal-safe: every text from the capture goes through :func:`text` (control characters escaped
as with the terminal renderers, then HTML-escaped), so a banner carrying ``<script>`` is shown as
text; credentials arrive redacted from the analysis (``show_secrets`` stays off unless asked).

The sessions table sorts (click a column header) and filters (text box, feature menu); the URL
fragment ``#sort=COLUMN:asc|desc&filter=TEXT&feature=NAME`` sets both, so a sorted view can be
shared as a link.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import math
import os
from datetime import datetime, timezone
from typing import Any, Iterable, TextIO

from .. import __version__
from .render import safe, size_text

#: the table's columns: (key, heading, numeric)
COLUMNS = [
    ("n", "#", True),
    ("uid", "uid", False),
    ("start", "start (UTC)", False),
    ("client", "client", False),
    ("server", "server", False),
    ("state", "state", False),
    ("feature", "feature", False),
    ("confidence", "confidence", True),
    ("reason", "top reason", False),
    ("tls", "TLS", False),
    ("thumbprint", "server thumbprint (SHA-1)", False),
    ("c2s", "bytes c→s", True),
    ("s2c", "bytes s→c", True),
    ("duration", "duration s", True),
    ("failure", "failure", False),
]
MAX_DETAIL_SESSIONS = 500  # per-session detail blocks; the table lists every session
MAX_DIALOGUE = 200  # lines per session shown
MAX_FINGERPRINT = 240  # records per session in the record-size fingerprint
CHART_KINDS = ("timeline", "bytes", "fingerprints", "hosts")


def text(value: object) -> str:
    """Capture-derived text for HTML: control characters escaped (``\\x1b``), then HTML-escaped."""
    return html.escape(safe(value), quote=True)


def _utc(ts: Any) -> str:
    if ts is None or (isinstance(ts, float) and math.isnan(ts)):
        return "-"
    if hasattr(ts, "timestamp"):
        try:
            ts = ts.timestamp()
        except (ValueError, OverflowError):
            return "-"
    return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _num(value: Any, default: float = 0.0) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(v) else v


def _present(value: Any) -> bool:
    if value is None:
        return False
    try:
        return not (isinstance(value, float) and math.isnan(value)) and str(value) not in ("", "<NA>", "nan")
    except (TypeError, ValueError):
        return False


# -- charts ---------------------------------------------------------------------------------------

def chart_images(result, kinds: Iterable[str] = CHART_KINDS) -> list[tuple[str, str]]:
    """(kind, base64 PNG) for each chart that ``dissect902 plot`` draws."""
    from . import plots

    out = []
    for kind in kinds:
        fig = plots.plot(result, kind)
        buf = io.BytesIO()
        try:
            fig.savefig(buf, format="png", dpi=90, metadata={"Software": "dissect902 (matplotlib)"})
        finally:
            import matplotlib.pyplot as plt

            plt.close(fig)
        out.append((kind, base64.b64encode(buf.getvalue()).decode("ascii")))
    return out


def fingerprint_svg(records) -> str:
    """A record-size fingerprint: one bar per TLS record in order, client up, server down,
    height by log size.  Only numbers go into the SVG."""
    rows = list(records)[:MAX_FINGERPRINT]
    if not rows:
        return ""
    width, mid, scale = max(120, 3 * len(rows)), 60, 55 / math.log10(16384 + 1)
    bars = []
    for i, (direction, length) in enumerate(rows):
        h = max(1.0, math.log10(max(1, int(length)) + 1) * scale)
        if direction == "client_to_server":
            bars.append(f'<rect class="c" x="{3 * i}" y="{mid - h:.1f}" width="2" height="{h:.1f}"/>')
        else:
            bars.append(f'<rect class="s" x="{3 * i}" y="{mid}" width="2" height="{h:.1f}"/>')
    return (f'<svg class="fp" viewBox="0 0 {width} 120" width="{width}" height="120" role="img" '
            f'aria-label="TLS record sizes">'
            f'<line x1="0" y1="{mid}" x2="{width}" y2="{mid}" class="axis"/>{"".join(bars)}</svg>')


# -- page pieces ----------------------------------------------------------------------------------

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header,main{max-width:1400px;margin:0 auto;padding:0 20px}
header{padding-top:18px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #d5d9e0;padding-bottom:4px}
.meta{color:#5a6475;font-size:12px}
.verdict{padding:14px 18px;border-radius:6px;margin:14px 0;font-size:16px;font-weight:600}
.verdict.bad{background:#fde8e8;border:1px solid #f5b5b5;color:#8a1c1c}
.verdict.ok{background:#e6f6ea;border:1px solid #a8dcb5;color:#1c6a30}
.finding{background:#fff;border:1px solid #d5d9e0;border-left:5px solid #c0392b;border-radius:4px;padding:10px 14px;margin:10px 0}
.finding.info,.finding.note{border-left-color:#2d7dd2}.finding.warning{border-left-color:#e69500}
.finding h3{margin:0 0 6px;font-size:15px}
.finding dl{display:grid;grid-template-columns:90px 1fr;gap:3px 10px;margin:0}
.finding dt{color:#5a6475}.finding dd{margin:0}
table{border-collapse:collapse;width:100%;background:#fff;font-size:12.5px}
th,td{border:1px solid #dde1e7;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef1f5;cursor:pointer;user-select:none;white-space:nowrap;position:sticky;top:0}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.reason{max-width:420px}td.tp{word-break:break-all;font-size:11px;min-width:140px;max-width:180px}
.scroll{overflow-x:auto}
.controls{margin:8px 0;display:flex;gap:10px;align-items:center}
.controls input{padding:4px 8px;width:320px}
.feat{font-weight:600}
.MKS{color:#1f77b4}.NFC{color:#2ca02c}.SOAP{color:#9467bd}.VMXARGS{color:#8c564b}.NONE{color:#7f7f7f}.UNKNOWN{color:#d62728}.VNC{color:#e377c2}
.charts img{max-width:100%;background:#fff;border:1px solid #d5d9e0;margin:6px 0}
details{background:#fff;border:1px solid #d5d9e0;border-radius:4px;margin:6px 0;padding:6px 10px}
summary{cursor:pointer;font-weight:600}
pre{background:#f3f4f6;padding:6px 8px;overflow-x:auto;font-size:12px;margin:4px 0;white-space:pre-wrap;word-break:break-all}
svg.fp rect.c{fill:#1f77b4}svg.fp rect.s{fill:#ff7f0e}svg.fp line.axis{stroke:#999;stroke-width:.5}
.checked td:first-child{white-space:nowrap}
.muted{color:#5a6475}
footer{max-width:1400px;margin:30px auto;padding:0 20px 30px;color:#5a6475;font-size:12px}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var table = document.getElementById("sessions");
  if (!table) { return; }
  var body = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var search = document.getElementById("filter");
  var featureSel = document.getElementById("feature");
  var counter = document.getElementById("shown");
  function cellValue(row, idx, numeric) {
    var cell = row.cells[idx];
    var v = cell.getAttribute("data-v");
    if (v === null) { v = cell.textContent; }
    if (numeric) { var f = parseFloat(v); return isNaN(f) ? -Infinity : f; }
    return v.toLowerCase();
  }
  function sortBy(key, dir) {
    var idx = -1, numeric = false;
    heads.forEach(function (h, i) {
      h.classList.remove("asc", "desc");
      if (h.getAttribute("data-key") === key) { idx = i; numeric = h.getAttribute("data-num") === "1"; }
    });
    if (idx < 0) { return; }
    heads[idx].classList.add(dir);
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, idx, numeric), y = cellValue(b, idx, numeric);
      var c = x < y ? -1 : x > y ? 1 : 0;
      if (c === 0) { c = cellValue(a, 0, true) - cellValue(b, 0, true); return c; }
      return dir === "asc" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.setAttribute("data-sorted", key + ":" + dir);
  }
  function applyFilter() {
    var needle = (search.value || "").toLowerCase();
    var feat = featureSel.value;
    var shown = 0;
    Array.prototype.forEach.call(body.rows, function (r) {
      var ok = (!needle || r.textContent.toLowerCase().indexOf(needle) >= 0) &&
               (!feat || r.getAttribute("data-feature") === feat);
      r.hidden = !ok;
      if (ok) { shown += 1; }
    });
    counter.textContent = String(shown);
  }
  heads.forEach(function (h) {
    h.addEventListener("click", function () {
      var dir = h.classList.contains("asc") ? "desc" : "asc";
      sortBy(h.getAttribute("data-key"), dir);
    });
  });
  search.addEventListener("input", applyFilter);
  featureSel.addEventListener("change", applyFilter);
  function fromHash() {
    var params = {};
    (window.location.hash || "").replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i > 0) { params[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1)); }
    });
    if (params.sort) {
      var p = params.sort.split(":");
      sortBy(p[0], p[1] === "desc" ? "desc" : "asc");
    }
    if (params.filter !== undefined) { search.value = params.filter; }
    if (params.feature !== undefined) { featureSel.value = params.feature; }
    applyFilter();
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
  document.documentElement.setAttribute("data-ready", "1");
})();
"""


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy() -> str:
    return (f"default-src 'none'; img-src data:; style-src {_csp_hash(STYLE)}; "
            f"script-src {_csp_hash(SCRIPT)}; base-uri 'none'; form-action 'none'")


def _findings_html(diag, result) -> list[str]:
    out = []
    findings = list(diag.findings) if diag is not None else []
    problems = [f for f in findings if f.severity == "problem"]
    several = len(result.captures) > 1
    if diag is None:
        out.append('<div class="verdict ok" id="verdict">Diagnosis not run.</div>')
    elif problems:
        top = problems[0]
        out.append(f'<div class="verdict bad" id="verdict">{len(problems)} problem(s) found. Most likely: '
                   f'{text(top.title)} ({top.likelihood:.0%})</div>')
    else:
        out.append('<div class="verdict ok" id="verdict">No problem found: every console path seen worked.</div>')
    out.append('<h2 id="findings-h">Findings</h2>')
    if not findings:
        out.append('<p class="muted">No findings.</p>')
    for f in findings:
        where = f" in {os.path.basename(f.source)}" if several and f.source else ""
        ev = ", ".join(str(x) for x in f.evidence[:40]) + (" …" if len(f.evidence) > 40 else "")
        related = " ".join(f'<a href="#s-{text(u)}">{text(u)}</a>' for u in f.related)
        sev = f.severity if f.severity in ("problem", "warning") else "info"
        out.append(
            f'<div class="finding {sev}"><h3>{f.rank}. [{f.likelihood:.0%}] {text(f.title)} '
            f'<span class="muted">({text(f.kind)}, {text(f.severity)})</span></h3><dl>'
            f'<dt>what</dt><dd>{text(f.detail)}</dd>'
            f'<dt>do</dt><dd>{text(f.advice)}</dd>'
            f'<dt>frames</dt><dd>{text(ev or "-")}{text(where)}</dd>'
            f'<dt>hosts</dt><dd>{text(", ".join(f.hosts) or "-")}</dd>'
            f'<dt>when</dt><dd>{_utc(f.first_ts)} – {_utc(f.last_ts)} UTC</dd>'
            + (f'<dt>sessions</dt><dd>{related}</dd>' if related else "")
            + "</dl></div>")
    return out


def _tls_cell(row) -> str:
    parts = []
    if _present(row.get("tls_version")):
        parts.append(str(row["tls_version"]))
    n = int(_num(row.get("tls_handshakes")))
    if n:
        parts.append(f"×{n}")
    transport = row.get("transport")
    if _present(transport) and transport not in ("tls", "none"):
        parts.append(f"({transport})")
    return " ".join(parts) or "-"


def _sessions_table(S) -> list[str]:
    out = ['<h2 id="sessions-h">Sessions</h2>']
    features = sorted({str(f) for f in S["feature"].dropna()}) if len(S) else []
    opts = "".join(f'<option value="{text(f)}">{text(f)}</option>' for f in features)
    out.append('<div class="controls"><label>filter <input id="filter" type="search" '
               'placeholder="address, feature, reason, uid …"></label>'
               f'<label>feature <select id="feature"><option value="">all</option>{opts}</select></label>'
               f'<span><span id="shown">{len(S)}</span> of {len(S)} shown</span></div>')
    head = "".join(f'<th data-key="{k}" data-num="{1 if num else 0}">{text(h)}</th>' for k, h, num in COLUMNS)
    out.append(f'<div class="scroll"><table id="sessions"><thead><tr>{head}</tr></thead><tbody>')
    for i, row in enumerate(S.to_dict("records"), 1):
        start = row.get("start")
        start_ts = start.timestamp() if _present(start) and hasattr(start, "timestamp") else None
        client = _hostport(row.get("orig_ip"), row.get("orig_port"))
        server = _hostport(row.get("resp_ip"), row.get("resp_port"))
        feature = str(row.get("feature")) if _present(row.get("feature")) else "UNKNOWN"
        conf = _num(row.get("confidence"))
        c2s, s2c = _num(row.get("orig_bytes")), _num(row.get("resp_bytes"))
        dur = _num(row.get("duration_s"))
        uid = str(row.get("uid"))
        cells = [
            f'<td class="num" data-v="{i}">{i}</td>',
            f'<td><a href="#s-{text(uid)}">{text(uid)}</a></td>',
            f'<td data-v="{start_ts if start_ts is not None else ""}">{_utc(start_ts)}</td>',
            f"<td>{text(client)}</td>",
            f"<td>{text(server)}</td>",
            f"<td>{text(row.get('state'))}</td>",
            f'<td class="feat {text(feature)}">{text(feature)}</td>',
            f'<td class="num" data-v="{conf:.4f}">{conf:.2f}</td>',
            f'<td class="reason">{text(row.get("top_reason") if _present(row.get("top_reason")) else "")}</td>',
            f"<td>{text(_tls_cell(row))}</td>",
            f'<td class="tp">{text(row.get("server_cert_sha1") if _present(row.get("server_cert_sha1")) else "-")}</td>',
            f'<td class="num" data-v="{c2s:.0f}">{size_text(c2s)}</td>',
            f'<td class="num" data-v="{s2c:.0f}">{size_text(s2c)}</td>',
            f'<td class="num" data-v="{dur:.6f}">{dur:.1f}</td>',
            f'<td>{text(row.get("failure") if _present(row.get("failure")) else "")}</td>',
        ]
        out.append(f'<tr data-uid="{text(uid)}" data-feature="{text(feature)}">{"".join(cells)}</tr>')
    out.append("</tbody></table></div>")
    return out


def _hostport(ip, port) -> str:
    if not _present(ip):
        return "-"
    ip = str(ip)
    host = f"[{ip}]" if ":" in ip else ip
    return f"{host}:{int(_num(port))}" if _present(port) else host


def _details(result, S) -> list[str]:
    out = ['<h2 id="details-h">Per-session detail</h2>']
    D = result.dialogue_frame()
    H = result.handshakes_frame()
    R = result.tls_records_frame()
    dialogue = {u: g for u, g in D.groupby("uid", sort=False)} if len(D) else {}
    hands = {u: g for u, g in H.groupby("uid", sort=False)} if len(H) else {}
    recs = {u: g for u, g in R.groupby("uid", sort=False)} if len(R) else {}
    sessions = {s.uid: s for s in result.sessions}
    shown = 0
    for row in S.to_dict("records"):
        if shown >= MAX_DETAIL_SESSIONS:
            out.append(f'<p class="muted">… {len(S) - shown} more sessions not detailed '
                       f'(use dissect902 analyze -f json)</p>')
            break
        shown += 1
        uid = str(row["uid"])
        rec = sessions.get(uid)
        feature = str(row.get("feature")) if _present(row.get("feature")) else "UNKNOWN"
        client = _hostport(row.get("orig_ip"), row.get("orig_port"))
        server = _hostport(row.get("resp_ip"), row.get("resp_port"))
        parts = [f'<details id="s-{text(uid)}"><summary>{text(uid)} · {text(client)} → {text(server)} · '
                 f'<span class="feat {text(feature)}">{text(feature)}</span> '
                 f'{_num(row.get("confidence")):.2f}</summary>']
        facts = [("source", row.get("source")), ("state", f"{row.get('state')} ({row.get('conn_state')}, "
                                                           f"history {row.get('history')})"),
                 ("frames", f"{row.get('first_frame')}–{row.get('last_frame')}"),
                 ("product", row.get("product")), ("capabilities", row.get("capabilities")),
                 ("login", row.get("login_summary")), ("connect", row.get("connect_target")),
                 ("failure", row.get("failure_reason"))]
        parts.append("<dl>" + "".join(f"<dt>{k}</dt><dd>{text(v)}</dd>" for k, v in facts if _present(v)) + "</dl>")
        reasons = rec.reasons if rec is not None else []
        if reasons:
            parts.append("<h4>Why this feature</h4><ul>" + "".join(f"<li>{text(r)}</li>" for r in reasons) + "</ul>")
        g = dialogue.get(uid)
        if g is not None and len(g):
            lines = []
            for d in g.head(MAX_DIALOGUE).to_dict("records"):
                arrow = "C→S" if d["direction"] == "client_to_server" else "S→C"
                lines.append(f"{d['frame']:>6} {arrow} {safe(d['text'])}")
            more = f"\n… {len(g) - MAX_DIALOGUE} more" if len(g) > MAX_DIALOGUE else ""
            parts.append("<h4>Visible authd dialogue</h4><pre>" + html.escape("\n".join(lines) + more) + "</pre>")
        h = hands.get(uid)
        if h is not None and len(h):
            rows = []
            for x in h.to_dict("records"):
                cells = [x.get("index"), x.get("frame"), x.get("version"), x.get("cipher"), x.get("sni"),
                         x.get("ja4"), x.get("cert_subject"), x.get("cert_sha1")]
                rows.append("<tr>" + "".join(f"<td>{text(c) if _present(c) else '-'}</td>" for c in cells) + "</tr>")
            parts.append("<h4>TLS handshakes</h4><table><thead><tr><th>#</th><th>frame</th><th>version</th>"
                         "<th>cipher</th><th>SNI</th><th>JA4</th><th>certificate</th><th>SHA-1</th></tr></thead>"
                         "<tbody>" + "".join(rows) + "</tbody></table>")
        r = recs.get(uid)
        if r is not None and len(r):
            svg = fingerprint_svg(zip(r["direction"].astype(str), r["length"].fillna(0).astype(int)))
            parts.append(f"<h4>Record-size fingerprint</h4><p class=\"muted\">{len(r)} TLS record(s) in order; "
                         f"client up (blue), server down (orange), log scale; first {MAX_FINGERPRINT} shown</p>{svg}")
        parts.append("</details>")
        out.append("".join(parts))
    return out


def _vnc_table(result) -> list[str]:
    """Plain VNC consoles (analyzers/vnc.py), when that side analysis ran and found any."""
    vnc = result.extras.get("vnc")
    if vnc is None or not vnc.sessions:
        return []
    out = [f'<h2 id="vnc-h">Plain VNC consoles ({len(vnc.sessions)})</h2><p class="muted">RFB spoken directly '
           "to a VM's vmx VNC port: unencrypted, a port per VM, not following a vMotion (see the findings)</p>"
           '<div class="scroll"><table><thead><tr><th>uid</th><th>start (UTC)</th><th>client</th><th>server</th>'
           "<th>state</th><th>RFB</th><th>security offered</th><th>chosen</th><th>auth</th><th>desktop</th>"
           "<th>framebuffer</th><th>bytes c→s</th><th>bytes s→c</th></tr></thead><tbody>"]
    for v in vnc.sessions:
        size = f"{v.width}x{v.height}" if v.width is not None else "-"
        cells = [v.uid, _utc(v.start), v.client, v.server, v.state, v.server_version or "-",
                 ", ".join(v.security_offered) or "-", v.security_chosen or "-",
                 f"{v.authentication or '-'} / {v.auth_result or '-'}", v.desktop_name or "-", size,
                 size_text(v.client_bytes), size_text(v.server_bytes)]
        out.append(f'<tr data-vnc="{text(v.uid)}" id="s-{text(v.uid)}">'
                   + "".join(f"<td>{text(c)}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table></div>")
    return out


def _checked(diag) -> list[str]:
    if diag is None:
        return []
    out = ['<h2 id="checked-h">What was checked</h2><table class="checked"><thead><tr><th>check</th>'
           '<th>observed</th><th>problems</th><th>what</th></tr></thead><tbody>']
    for c in diag.checked:
        out.append(f"<tr><td>{text(c['check'])}</td><td>{text(c['observed'])}</td><td>{text(c['problems'])}</td>"
                   f"<td>{text(c['what'])}</td></tr>")
    out.append("</tbody></table>")
    return out


def render_html(result, out: TextIO, *, charts: bool = True, title: str | None = None) -> None:
    """Write the report of *result* (an Analysis; its diagnosis, when it ran, comes first)."""
    diag = result.extras.get("diagnostics")
    S = result.sessions_frame()
    caps = result.captures
    title = title or "dissect902 report: " + ", ".join(os.path.basename(c.path) for c in caps)
    body: list[str] = []
    body.append(f"<header><h1>{text(title)}</h1><div class=\"meta\">dissect902 {text(__version__)} · generated "
                f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} · "
                + " · ".join(text(f"{os.path.basename(c.path)}: {c.format}, {c.packets} packets, "
                                  f"{_utc(c.first_ts)} to {_utc(c.last_ts)} UTC") for c in caps)
                + f" · {len(S)} session(s)</div></header><main>")
    body.extend(_findings_html(diag, result))
    body.extend(_sessions_table(S))
    if charts:
        body.append('<h2 id="charts-h">Charts</h2><div class="charts">')
        for kind, png in chart_images(result):
            body.append(f'<figure><img alt="{text(kind)} chart" data-kind="{text(kind)}" '
                        f'src="data:image/png;base64,{png}"><figcaption class="muted">{text(kind)}'
                        f"</figcaption></figure>")
        body.append("</div>")
    body.extend(_vnc_table(result))
    body.extend(_details(result, S))
    body.extend(_checked(diag))
    weird = result.weird
    if weird:
        body.append(f'<h2 id="weird-h">Weird ({len(weird)})</h2><ul>')
        for w in weird[:200]:
            body.append(f"<li>{text(w.kind)} at frame {text(w.frame)}: {text(w.detail)}</li>")
        body.append("</ul>")
    body.append("</main><footer>Credentials (PASS arguments, tickets) are redacted. Made by "
                "<code>dissect902 report</code>; no network access needed to read this file.</footer>")
    out.write("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
              f"<meta http-equiv=\"Content-Security-Policy\" content=\"{content_security_policy()}\">"
              "<meta name=\"referrer\" content=\"no-referrer\">"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
              f"<title>{text(title)}</title><style>{STYLE}</style></head><body>")
    out.write("\n".join(body))
    out.write(f"<script>{SCRIPT}</script></body></html>\n")
