"""Secrets never reach any output (issue 13): not the secret, not a fragment of it.

The strongest form of that claim is non-interference: two captures that differ only in the
secret bytes (same length, so TCP sequence numbers and byte counts agree) must give identical
output in every format.  A redaction that searched text for the secret would fail it (the
marker lands inside ordinary words where the secret happens to occur), and so would one that
let the tail of a long or cut PASS line through.  ``--show-secrets`` must break the identity,
which shows the comparison can see a difference at all.

Captures are built with the lab's TCP model (``lab.tcp.TcpConversation``) on a plaintext
(non-SSL, banner B1) daemon, where the whole dialogue is visible.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import re
import time

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from dissect.port902.output import plots
from dissect.port902.analysis import analyze
from dissect.port902.proto.authd import MAX_LINE, REDACTED, Dialogue, LineBuffer
from dissect.port902.cli.main import main
from dissect.port902.proto.http import redact_target
from dissect.port902.model.schema import FRAME_TABLES as SCHEMAS
from dissect.port902.lab.pcapwriter import CaptureWriter
from dissect.port902.lab.tcp import TcpConversation
from dissect.port902.output.render import render_csv, render_json, render_jsonl, render_table, write_parquet

T0 = 1_700_000_000.0
BANNER = b"220 VMware Authentication Daemon Version 1.00\r\n"
TICKET = "52cf8c64-9343-7cb7-d151-1bfc481bb7d5"
OTHER_TICKET = "52aa0000-1111-2222-3333-444455556666"
COMMON = ["or", "e", "root", "1", "Login"]  # secrets that are substrings of ordinary reply text


def write_capture(path, script, *, mss=None, snaplen=262144, end="close"):
    """One plaintext authd connection: banner, then ``script`` as ("C"|"S", bytes) writes."""
    c = TcpConversation("10.0.0.1", 40000, "10.0.0.2", 902, T0, mss=mss)
    c.open()
    c.server_send(BANNER)
    for side, data in script:
        (c.client_send if side == "C" else c.server_send)(data)
    if end == "reset":
        c.reset(by="server")
    else:
        c.close()
    with CaptureWriter(str(path), snaplen=snaplen) as w:
        for ts, pkt in c.packets():
            w.write(ts, pkt)
    return path


def login_script(password: str, ticket: str = TICKET, token: str = "AAAAAAAAAAAAAAAA", sep: str = " "):
    """Logins whose replies contain the common secrets as ordinary words, a ticket login, a token."""
    p = password.encode("latin-1")
    s = sep.encode()
    t = ticket.encode()
    return [
        ("C", b"USER root\r\n"), ("S", b"331 Password required for root.\r\n"),
        ("C", b"PASS" + s + p + b"\r\n"), ("S", b"530 Login incorrect.\r\n"),
        ("C", b"USER administrator\r\n"), ("S", b"331 Password required for administrator.\r\n"),
        ("C", b"PASS" + s + p + b"\r\n"), ("S", b"230 User administrator logged in.\r\n"),
        ("C", b"USER " + t + b"\r\n"), ("S", b"331 Password required for " + t + b".\r\n"),
        ("C", b"PASS " + t + b"\r\n"), ("S", b"230 User " + t + b" logged in.\r\n"),
        ("C", b"SESSION " + t + b"\r\n"),
        ("C", b"THUMBPRINT " + token.encode() + b"\r\n"), ("S", b"200 C5:50:62:9F\r\n"),
        ("C", b"CONNECT /vmfs/volumes/ds1/Login or root 1/vm.vmx mks\r\n"),
        ("S", b"200 Connect /vmfs/volumes/ds1/Login or root 1/vm.vmx\r\n"),
    ]


def every_output(path, tmp_path, show_secrets=False) -> dict[str, object]:
    """Everything a user can get out of a capture: analyze in every format and table, doctor,
    the DataFrames, plots' text."""
    result = analyze(path, show_secrets=show_secrets)
    out: dict[str, object] = {}
    for name, render in (("table", render_table), ("json", render_json), ("jsonl", render_jsonl)):
        buf = io.StringIO()
        render(result, buf)
        out[name] = buf.getvalue()
    for table in SCHEMAS:
        buf = io.StringIO()
        render_csv(result, buf, table)
        out[f"csv:{table}"] = buf.getvalue()
        pq = tmp_path / f"{table}.parquet"
        write_parquet(result, str(pq), table)
        out[f"parquet:{table}"] = pd.read_parquet(pq).to_json(orient="split", date_format="iso")
    out["findings"] = result.findings_frame().to_json(orient="split", date_format="iso")
    for kind in ("fingerprints", "session_timeline"):
        fig = getattr(plots, kind)(result)
        out[f"plot:{kind}"] = "\n".join(t.get_text() for t in fig.findobj(
            lambda a: hasattr(a, "get_text") and callable(a.get_text)))
    args = ["--show-secrets"] if show_secrets else []
    for fmt in ("table", "json"):
        doc = tmp_path / f"doctor.{fmt}"
        main(["doctor", str(path), "-q", "-f", fmt, "-o", str(doc), *args])
        out[f"doctor:{fmt}"] = doc.read_text()
    return out


def assert_same(a: dict, b: dict) -> None:
    for key in a:
        assert a[key] == b[key], f"{key} depends on the secret"


def no_marker_inside_words(text: str) -> None:
    """The marker replaces whole arguments: it never sits inside a word."""
    assert not re.search(r"[A-Za-z0-9]<redacted>|<redacted>[A-Za-z0-9]", text), text


def other(secret: str) -> str:
    """A different secret of the same length, of characters that appear in no reply."""
    return "".join("qxzjkQXZJK"[i % 10] for i in range(len(secret)))


@pytest.mark.parametrize("secret", COMMON)
def test_common_substring_secrets_do_not_leak(tmp_path, secret):
    path = tmp_path / "c.pcap"
    write_capture(path, login_script(secret))
    a = every_output(path, tmp_path)
    write_capture(path, login_script(other(secret), ticket=OTHER_TICKET, token="BBBBBBBBBBBBBBBB"))
    b = every_output(path, tmp_path)
    assert_same(a, b)
    for text in a.values():
        no_marker_inside_words(str(text))
    doc = json.loads(a["json"])
    (s,) = doc["sessions"]
    texts = [d["text"] for d in s["dialogue"]]
    assert "331 Password required for root." in texts  # ordinary words stay whole
    assert "331 Password required for administrator." in texts
    assert f"331 Password required for {REDACTED}." in texts and f"230 User {REDACTED} logged in." in texts
    assert texts.count(f"PASS {REDACTED}") == 3 and f"THUMBPRINT {REDACTED}" in texts
    assert "CONNECT /vmfs/volumes/ds1/Login or root 1/vm.vmx mks" in texts  # not a secret: shown as sent


def test_show_secrets_breaks_the_identity(tmp_path):
    """The comparison above can see a difference: with --show-secrets the outputs differ."""
    path = tmp_path / "c.pcap"
    write_capture(path, login_script("or"))
    a = every_output(path, tmp_path, show_secrets=True)
    write_capture(path, login_script("qz"))
    b = every_output(path, tmp_path, show_secrets=True)
    differ = [k for k in a if a[k] != b[k]]
    assert {"json", "jsonl", "csv:dialogue", "parquet:dialogue"} <= set(differ)
    assert "PASS or" in a["json"] and "PASS qz" in b["json"]


@pytest.mark.parametrize("sep", ["\t", "  ", "\t \x0b", "\x00"])
def test_pass_with_other_whitespace_is_pass(tmp_path, sep):
    path = tmp_path / "c.pcap"
    write_capture(path, login_script("hunter2", sep=sep))
    a = every_output(path, tmp_path)
    write_capture(path, login_script("qxzjkQX", sep=sep))
    b = every_output(path, tmp_path)
    assert_same(a, b)
    s = json.loads(a["json"])["sessions"][0]
    passes = [d for d in s["dialogue"] if d["text"].startswith("PASS")]
    assert [d["command"] for d in passes] == ["PASS"] * 3
    assert s["auth"]["outcome"] == "accepted" and len(s["auth"]["attempts"]) == 3


@pytest.mark.parametrize("length", [1100, 3000, 9000])
def test_long_pass_in_many_segments_shows_no_tail(tmp_path, length):
    """A PASS argument over MAX_LINE arriving in 3+ segments: the line is cut and its rest
    swallowed up to the newline, so no later "line" starts inside the password."""
    secret = "".join(chr(97 + (i * 7) % 26) for i in range(length))
    script = [("C", b"USER root\r\n"), ("S", b"331 Password required for root.\r\n"),
              ("C", b"PASS " + secret.encode() + b"\r\n"), ("S", b"530 Login incorrect.\r\n"),
              ("C", b"USER admin\r\n"), ("S", b"331 Password required for admin.\r\n")]
    path = tmp_path / "c.pcap"
    write_capture(path, script, mss=536)
    result = analyze(path)
    (s,) = result.sessions
    assert s.packets[0] >= 5  # the PASS line really came in 3+ segments
    texts = [ln.text for ln in s.dialogue if ln.from_client]
    assert texts == ["USER root", f"PASS {REDACTED}", "USER admin"]
    assert [(a.user, a.outcome) for a in s.logins] == [("root", "rejected")]
    a = every_output(path, tmp_path)
    alt = secret[::-1]
    write_capture(path, [(side, data.replace(secret.encode(), alt.encode())) for side, data in script], mss=536)
    assert_same(a, every_output(path, tmp_path))


def test_long_pass_cut_by_snaplen_shows_no_tail(tmp_path):
    """Segments cut by the snapshot length leave holes.  The tail of a PASS line whose start was
    seen is swallowed across every hole until a newline is captured -- here the PASS line's own
    newline fell into a hole, so the next client line goes too (the price of never guessing
    where a secret ends); the server's lines are untouched and the skip is reported."""
    secret = "s" * 1400
    script = [("C", b"PASS " + secret.encode() + b"\r\n"), ("S", b"530 Login incorrect.\r\n"),
              ("C", b"USER admin\r\n"), ("S", b"331 Password required for admin.\r\n"),
              ("C", b"USER bob\r\n")]
    path = tmp_path / "c.pcap"
    write_capture(path, script, mss=536, snaplen=200)
    result = analyze(path)
    (s,) = result.sessions
    assert s.gap_bytes[0] > 1000  # really cut
    assert [ln.text for ln in s.dialogue if ln.from_client] == [f"PASS {REDACTED}", "USER bob"]
    assert [ln.text for ln in s.dialogue if not ln.from_client][1:] == [
        "530 Login incorrect.", "331 Password required for admin."]
    assert "line_resync" in {w.kind for w in s.weird}
    a = every_output(path, tmp_path)
    write_capture(path, [(side, data.replace(secret.encode(), b"t" * 1400)) for side, data in script],
                  mss=536, snaplen=200)
    assert_same(a, every_output(path, tmp_path))


def test_line_after_a_cut_banner_is_read(tmp_path):
    """A banner cut by the snapshot length is not a secret: the line after the hole is read."""
    c = TcpConversation("10.0.0.1", 40000, "10.0.0.2", 902, T0)
    c.open()
    c.server_send(b"220 VMware Authentication Daemon Version 1.0, ServerDaemonProtocol:SOAP, "
                  b"MKSDisplayProtocol:VNC , ,\r\n")
    c.client_send(b"USER root\r\n")
    c.server_send(b"331 Password required for root.\r\n")
    c.close()
    path = tmp_path / "b.pcap"
    with CaptureWriter(str(path), snaplen=100) as w:
        for ts, pkt in c.packets():
            w.write(ts, pkt)
    (s,) = analyze(path).sessions
    texts = [ln.text for ln in s.dialogue]
    assert texts[0].startswith("220 VMware") and len(texts[0]) < 40  # the cut banner
    assert texts[1:] == ["USER root", "331 Password required for root."]


def test_linebuffer_swallows_the_rest_of_an_overlong_line():
    lb = LineBuffer()
    out = []
    for chunk in (b"PASS " + b"a" * 600, b"b" * 600, b"c" * 600, b"d\r\nUSER x\r\n"):
        out += lb.feed(chunk, 0.0, 1)
    assert [(raw[:5], trunc) for raw, _, _, trunc in out] == [(b"PASS ", True), (b"USER ", False)]
    assert len(out[0][0]) == MAX_LINE and out[1][0] == b"USER x" and lb.skipped == 5 + 1800 + 3 - MAX_LINE


def test_linebuffer_after_a_gap_reads_a_new_line_but_not_a_tail():
    lb = LineBuffer()
    lb.gap()
    assert lb.feed(b"USER root\r\n", 0, 1) == [(b"USER root", 0, 1, False)]
    lb.gap()
    assert lb.feed(b"cret\r\nUSER x\r\n", 0, 2) == [(b"USER x", 0, 2, False)]
    assert lb.resyncs == [6]
    lb.gap(discard=True)  # the cut line was a PASS: even a line-like tail is swallowed
    assert lb.feed(b"USER y\r\nQUIT\r\n", 0, 3) == [(b"QUIT", 0, 3, False)]


def test_cut_lines_that_may_carry_a_secret():
    d = Dialogue()
    assert d.tail_may_be_secret(True, b"PASS hun")
    assert d.tail_may_be_secret(True, b"PA")  # the verb itself may be cut
    assert d.tail_may_be_secret(True, b"USER 52cf8c64-93")
    assert not d.tail_may_be_secret(True, b"CONNECT /vmfs/volumes/ds1/vm")
    assert not d.tail_may_be_secret(False, b"220 VMware Authentication Daemon Version 1.0, Server")
    d.client_line(f"USER {TICKET}".encode(), 0, 1)
    assert d.tail_may_be_secret(False, b"331 Password required for 52cf")


def test_cut_user_ticket_is_redacted():
    d = Dialogue()
    ln = d.client_line(b"USER 52cf8c64-93", 0, 1, truncated=True)
    assert ln.text == f"USER {REDACTED}"
    reply = d.server_line(b"331 Password required for 52cf8c64-93.", 0, 2)
    assert reply.text == f"331 Password required for {REDACTED}."


def test_echo_is_redacted_only_at_the_grammar_position():
    d = Dialogue()
    d.client_line(b"USER e", 0, 1)
    assert d.server_line(b"331 Password required for e.", 0, 2).text == "331 Password required for e."
    d.client_line(b"PASS e", 0, 3)
    assert d.server_line(b"230 User e logged in.", 0, 4).text == "230 User e logged in."
    d.client_line(f"USER {TICKET}".encode(), 0, 5)
    # a reply to a ticket USER in an unknown grammar keeps only its code: the ticket may be anywhere
    assert d.server_line(f"331 Ticket {TICKET} needs a password".encode(), 0, 6).text == f"331 {REDACTED}"
    d.client_line(b"PASS x", 0, 7)
    assert d.server_line(b"530 Login incorrect.", 0, 8).text == "530 Login incorrect."


def test_http_lines_on_902_are_redacted_by_place():
    d = Dialogue()
    assert d.client_line(b"GET /ticket/52cf8c6493437cb7?x=1 HTTP/1.1", 0, 1).text == \
        f"GET /ticket/{REDACTED}?x=1 HTTP/1.1"
    assert d.client_line(b"Cookie: vmware_soap_session=\"52ab\"", 0, 2).text == f"Cookie: {REDACTED}"
    assert d.client_line(b"Host: esxi", 0, 3).text == "Host: esxi"
    body = b"<Login><userName>root</userName><password>or</password></Login>"
    assert d.client_line(body, 0, 4).text == f"<Login><userName>root</userName><password>{REDACTED}</password></Login>"
    assert d.server_line(b"Set-Cookie: vmware_soap_session=\"52ab\"; Path=/", 0, 5).text == f"Set-Cookie: {REDACTED}"


@pytest.mark.parametrize("target, shown", [
    ("/ticket/52cf8c6493437cb7", f"/ticket/{REDACTED}"),
    ("/console/?vmId=vm-42&sessionTicket=cst-VCT-1&thumbprint=AA:BB",
     f"/console/?vmId=vm-42&sessionTicket={REDACTED}&thumbprint=AA:BB"),
    ("https://root:or@esxi/ticket/abc?x=1", f"https://{REDACTED}@esxi/ticket/{REDACTED}?x=1"),
    ("/a;jsessionid=XYZ/b?session%54icket=cst-1#token=zz", f"/a;jsessionid={REDACTED}/b?session%54icket={REDACTED}#token={REDACTED}"),
    ("/sdk?vmId=ticket", "/sdk?vmId=ticket"),  # a value that reads "ticket" is not a name
    ("/sdk", "/sdk"),
])
def test_redact_target_by_place(target, shown):
    assert redact_target(target) == shown


def _redaction_time(n: int) -> float:
    """Best of five, in CPU time of this process with the collector off (other load on the
    machine does not count): feeding n login attempts with distinct passwords and replies."""
    lines = []
    for i in range(n):
        lines += [(True, b"USER admin"), (False, b"331 Password required for admin."),
                  (True, f"PASS pw{i:06d}".encode()), (False, b"530 Login incorrect.")]
    best = float("inf")
    gc.disable()
    try:
        for _ in range(5):
            d = Dialogue()
            t = time.process_time()
            for frame, (client, raw) in enumerate(lines):
                (d.client_line if client else d.server_line)(raw, 0.0, frame)
            best = min(best, time.process_time() - t)
    finally:
        gc.enable()
    return best


def test_redaction_time_is_linear():
    """Doubling the dialogue at most ~2.5x the time (the substring redaction was quadratic:
    2k/4k/8k PASS lines took 0.8/3.1/14.8 s)."""
    for _ in range(3):  # measured again after a round over the bound: load comes in bursts, a quadratic cost stays
        small, big = _redaction_time(5000), _redaction_time(10000)
        if big / small <= 2.5:
            break
    assert big / small <= 2.5, (small, big)


# -- CSV formula injection ---------------------------------------------------------------------------------

HOSTILE_BANNER = b"220 VMware Authentication Daemon Version 1.10, =HYPERLINK(\"http://x\"), ServerDaemonProtocol:SOAP\r\n"


def test_csv_cells_that_would_run_as_formulas_are_neutralised(tmp_path, capsys):
    c = TcpConversation("10.0.0.1", 40000, "10.0.0.2", 902, T0)
    c.open()
    c.server_send(HOSTILE_BANNER)
    c.client_send(b"USER =cmd|' /C calc'!A0\r\n")
    c.server_send(b"331 Password required for =cmd|' /C calc'!A0.\r\n")
    c.client_send(b"PASS x\r\n")
    c.server_send(b"230 User =cmd|' /C calc'!A0 logged in.\r\n")
    c.client_send(b"CONNECT @SUM(1+1)*cmd|' /C calc'!A0 mks\r\n")
    c.server_send(b"553 No such virtual machine.\r\n")
    c.close()
    path = tmp_path / "h.pcap"
    with CaptureWriter(str(path)) as w:
        for ts, pkt in c.packets():
            w.write(ts, pkt)
    assert main(["analyze", str(path), "-f", "csv", "-q"]) == 0
    (row,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row["user"] == "'=cmd|' /C calc'!A0"
    assert row["connect_target"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert row["capabilities"].startswith("'=HYPERLINK(")
    assert row["login_outcome"] == "accepted" and row["orig_port"] == "40000"  # plain cells untouched
    assert main(["analyze", str(path), "-f", "csv", "--table", "logins", "-q"]) == 0
    (login,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert login["user"] == "'=cmd|' /C calc'!A0" and login["code"] == "230"
    for cell in [v for r in (row, login) for v in r.values()]:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


class _Frames:
    """Just enough of an Analysis for render_csv: one frame with text and numeric columns."""

    def sessions_frame(self):
        return pd.DataFrame({"gap_s": pd.array([-1.5, 2.0], dtype="float64"),
                             "delta": pd.array([-3, None], dtype="Int64"),
                             "flag": pd.array([True, None], dtype="boolean"),
                             "text": pd.array(["-1+cmd", "\tTAB"], dtype="string"),
                             "cr": pd.array(["\rCR", "+x"], dtype="string")})


def test_csv_numbers_stay_numbers_and_every_formula_start_is_guarded():
    buf = io.StringIO()
    render_csv(_Frames(), buf, "sessions")
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows[1][:3] == ["-1.5", "-3", "True"] and rows[2][:3] == ["2.0", "", ""]
    assert rows[1][3:] == ["'-1+cmd", "'\\rCR"] and rows[2][3:] == ["'\\tTAB", "'+x"]


def test_analyze_help_says_csv_is_guarded(capsys):
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    out = capsys.readouterr().out
    assert "formula" in out and "= + - @ TAB or CR" in out


# -- property: the dialogue's output never depends on a secret -----------------------------------------------

SEPARATORS = [" ", "\t", "  ", " \t", "\x00", "\x0b"]
_word = st.text(st.characters(min_codepoint=33, max_codepoint=255, blacklist_characters="\x7f\x85\xa0"),
                min_size=1, max_size=12)
secret_text = st.one_of(_word, st.sampled_from(COMMON), _word.map(lambda s: s + " " + s[::-1]))  # inner blanks too
steps = st.lists(st.tuples(st.sampled_from(["user", "ticket_user", "odd_user", "odd_ticket_user", "pass", "xpas",
                                            "session", "thumbprint", "connect_vpxa", "r331", "r230", "r530",
                                            "r200", "r221"]),
                           st.sampled_from(SEPARATORS)), min_size=1, max_size=30)


def _play(script, secrets: dict[str, str]) -> list:
    """A dialogue from ``script``.  A USER step is the USER line and the server's answer to it
    (the 331 grammar, or an unknown one); other replies may answer a pending command or
    nothing.  A server repeats the last user name, never a password."""
    d = Dialogue()
    user = "root"
    n = 0

    def send(client: bool, text: str) -> None:
        nonlocal n
        (d.client_line if client else d.server_line)(text.encode("latin-1"), float(n), n)
        n += 1

    for step, sep in script:
        if step.endswith("user"):
            user = secrets["ticket"] if "ticket" in step else "root"
            send(True, f"USER{sep}{user}")
            send(False, f"331 ticket {user} ok" if step.startswith("odd") else f"331 Password required for {user}.")
            continue
        client = {
            "pass": f"PASS{sep}{secrets['pass']}", "xpas": f"XPAS{sep}{secrets['pass']}",
            "session": f"SESSION{sep}{secrets['ticket']}", "thumbprint": f"THUMBPRINT{sep}{secrets['token']}",
            "connect_vpxa": f"CONNECT_VPXA{sep}{secrets['ticket']}",
        }.get(step)
        if client is not None:
            send(True, client)
            continue
        send(False, {"r331": f"331 Password required for {user}.", "r230": f"230 User {user} logged in.",
                     "r530": "530 Login incorrect.", "r200": "200 C5:50", "r221": f"221 Goodbye {user}"}[step])
    return ([(ln.text, ln.verb, ln.code) for ln in d.lines], [a.to_dict() for a in d.attempts],
            d.user, d.login_summary, d.connect_target, d.commands)


@settings(max_examples=300, deadline=None)
@given(steps, secret_text, secret_text)
def test_dialogue_output_is_independent_of_the_secrets(script, pw1, pw2):
    a = _play(script, {"pass": pw1, "ticket": TICKET, "token": "AAAAAAAAAAAAAAAA"})
    b = _play(script, {"pass": pw2, "ticket": OTHER_TICKET, "token": "BBBBBBBBBBBBBBBB"})
    assert a == b
    for text, _, _ in a[0]:
        no_marker_inside_words(text)
