"""``dissect902 report``: a self-contained HTML file, checked as a file and in real headless Chromium
(DevTools protocol): it renders, the table sorts on a real click, filters, no console errors, no
request leaves the file, hostile banners stay text, credentials stay redacted."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dissect.port902 import analyze
from dissect.port902.cli.main import main
from dissect.port902.lab.pcapwriter import CaptureWriter
from dissect.port902.lab.tcp import TcpConversation
from dissect.port902.output import html as report_html

ROOT = Path(__file__).resolve().parent.parent
MIXED = ROOT / "samples" / "mixed-esxi.pcap"
LOGIN_530 = ROOT / "samples" / "doctor" / "login-530.pcap"
T0 = 1_700_000_000.0
SECRET = "hunter2-Secret"
HOSTILE_BANNER = (b"220 VMware Authentication Daemon Version 1.0, ServerDaemonProtocol:SOAP, "
                  b"<script>window.__pwned=1</script>, <img src=x onerror=\"window.__pwned=2\">, "
                  b"\x1b]0;owned\x07\x1b[2J MKSDisplayProtocol:VNC , ,\r\n")


def write_conversations(path, convs):
    packets = sorted(p for c in convs for p in c.packets())
    with CaptureWriter(str(path)) as w:
        for ts, pkt in packets:
            w.write(ts, pkt)
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    c = TcpConversation("10.0.0.1", 40000, "10.0.0.2", 912, T0)
    c.open()
    c.server_send(HOSTILE_BANNER)
    c.client_send(b"USER <b>root</b>\r\n")
    c.server_send(b"331 Password required for <b>root</b>.\r\n")
    c.client_send(f"PASS {SECRET}\r\n".encode())
    c.server_send(b"530 Login incorrect.\r\n")
    c.close()
    return write_conversations(tmp_path_factory.mktemp("hostile") / "hostile.pcap", [c])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["report", str(MIXED), str(LOGIN_530), "-o", str(out), "-q"]) == 0
    return out


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags_of(text: str) -> list[tuple[str, dict]]:
    p = _Tags()
    p.feed(text)
    return p.tags


def test_file_is_self_contained(report):
    text = report.read_text()
    tags = tags_of(text)
    for tag, attrs in tags:
        for name in ("src", "href", "action", "data", "poster"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("data:", "#")), (tag, name, value[:80])
        assert tag not in ("link", "iframe", "object", "embed", "base")
        if tag == "script":
            assert "src" not in attrs
    csp = [a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0] and "'unsafe-inline'" not in csp[0]
    assert not re.search(r"url\(\s*['\"]?(?!data:)", text)  # no CSS fetches either


def test_content_follows_the_analysis(report):
    text = report.read_text()
    result = analyze([str(MIXED), str(LOGIN_530)])
    S = result.sessions_frame()
    assert text.count("<tr data-uid=") == len(S)
    for uid in S["uid"]:
        assert f'id="s-{uid}"' in text
    findings = result.diagnostics.findings
    assert text.count('<div class="finding') == len(findings)
    problems = [f for f in findings if f.severity == "problem"]
    assert ('class="verdict bad"' in text) == bool(problems)
    assert text.index('id="verdict"') < text.index('id="sessions"')  # the verdict comes first
    for c in result.diagnostics.checked:
        assert f"<td>{c['check']}</td>" in text
    assert text.count('<img alt="') == len(report_html.CHART_KINDS)


def test_escape_and_redaction(hostile, tmp_path):
    out = tmp_path / "hostile.html"
    assert main(["report", str(hostile), "-o", str(out), "-q"]) == 0
    text = out.read_text()
    assert "<script>window.__pwned" not in text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    assert "<img src=x" not in text and "<b>" not in text
    assert "\x1b" not in text and "\x07" not in text and "\\x1b" in text
    assert SECRET not in text
    assert text.count("<script>") == 1  # ours


def test_show_secrets_is_a_choice(hostile, tmp_path):
    out = tmp_path / "shown.html"
    assert main(["report", str(hostile), "-o", str(out), "-q", "--show-secrets", "--no-charts"]) == 0
    assert SECRET in out.read_text()


def test_not_a_capture_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"not a capture at all")
    assert main(["report", str(bad), "-o", str(tmp_path / "r.html")]) == 2
    assert not (tmp_path / "r.html").exists()


# -- in a real browser -------------------------------------------------------------------------------

browser_test = pytest.mark.tools("chromium")


@pytest.fixture(scope="module")
def browser():
    from chromium import Browser

    b = Browser()
    yield b
    b.close()


def _column(browser, key):
    return browser.evaluate(
        "(function(){var t=document.getElementById('sessions');var i=[].findIndex.call(t.tHead.rows[0].cells,"
        f"function(c){{return c.getAttribute('data-key')==='{key}';}});"
        "return [].filter.call(t.tBodies[0].rows,function(r){return !r.hidden;})"
        ".map(function(r){return parseFloat(r.cells[i].getAttribute('data-v'));});})()")


@browser_test
def test_detects_console_errors_and_requests(browser, tmp_path):
    """The checks below can fail: a page that logs an error and fetches from the network is caught."""
    page = tmp_path / "control.html"
    page.write_text("<!DOCTYPE html><html><body><img src='http://127.0.0.1:9/x.png'>"
                    "<script>console.error('boom')</script></body></html>")
    browser.load(page.as_uri())
    assert any("boom" in m for m in browser.console_messages())
    assert any(u.startswith("http://127.0.0.1:9/") for u in browser.requests())


@browser_test
def test_renders_sorts_filters_offline(browser, report, tmp_path):
    browser.load(report.as_uri())
    assert browser.evaluate("document.documentElement.getAttribute('data-ready')") == "1"
    assert browser.console_messages() == []
    assert all(u.startswith(("file://", "data:")) for u in browser.requests()), browser.requests()
    result = analyze([str(MIXED), str(LOGIN_530)])
    S = result.sessions_frame()
    assert browser.evaluate("document.querySelectorAll('#sessions tbody tr').length") == len(S)
    # the charts decoded
    assert browser.evaluate("[].every.call(document.images,function(i){return i.complete&&i.naturalWidth>100;})")
    assert browser.evaluate("document.images.length") == len(report_html.CHART_KINDS)
    # a real click on the header sorts ascending, a second one descending
    expected = sorted(float(x) for x in S["resp_bytes"])
    browser.click("th[data-key=s2c]")
    assert _column(browser, "s2c") == expected
    browser.click("th[data-key=s2c]")
    assert _column(browser, "s2c") == expected[::-1]
    browser.click("th[data-key=confidence]")
    assert _column(browser, "confidence") == sorted(round(float(x), 4) for x in S["confidence"])
    # filter by typing
    browser.type_text("#filter", "10.50.66.6")
    shown = browser.evaluate("[].filter.call(document.querySelectorAll('#sessions tbody tr'),"
                             "function(r){return !r.hidden;}).length")
    assert shown == int((S["orig_ip"] == "10.50.66.6").sum()) > 0
    assert browser.evaluate("document.getElementById('shown').textContent") == str(shown)
    # a shared link sorts and filters by its fragment
    browser.load(report.as_uri() + "#sort=c2s:desc&feature=NFC")
    nfc = S[S["feature"] == "NFC"]
    assert _column(browser, "c2s") == sorted((float(x) for x in nfc["orig_bytes"]), reverse=True)
    assert browser.console_messages() == []
    shot = browser.screenshot(tmp_path / "shot.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@browser_test
def test_hostile_banner_stays_text_in_the_browser(browser, hostile, tmp_path):
    out = tmp_path / "hostile.html"
    assert main(["report", str(hostile), "-o", str(out), "-q", "--no-charts"]) == 0
    browser.load(out.as_uri())
    browser.evaluate("document.querySelectorAll('details').forEach(function(d){d.open=true;})")
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    body = browser.evaluate("document.body.innerText")
    assert "<script>window.__pwned=1</script>" in body
    assert '<img src=x onerror="window.__pwned=2">' in body
    assert browser.evaluate("document.querySelectorAll('script').length") == 1
    assert browser.evaluate("document.querySelectorAll('main img').length") == 0
    assert SECRET not in body
    assert browser.console_messages() == []


def test_docs_screenshot_is_kept():
    shot = ROOT / "docs" / "report-sample.png"
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
