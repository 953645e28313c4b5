"""Every login attempt, with the reply matched to it in command order (issue 8, item 5).

authd answers commands in order, like FTP.  Captures are built with the lab's TCP model on a
plaintext daemon; each client write is one segment and carries a mark, so the expected frame
numbers come from the generator, not from the parser under test.
"""

from __future__ import annotations

import io
import json

import pytest

from dissect.port902.analysis import analyze
from dissect.port902.proto.authd import REDACTED, Dialogue
from dissect.port902.cli.main import main
from dissect.port902.output.frames import LOGINS, SESSIONS, describe
from dissect.port902.lab.pcapwriter import CaptureWriter
from dissect.port902.lab.tcp import TcpConversation
from dissect.port902.output.render import render_table

T0 = 1_700_000_000.0
BANNER = b"220 VMware Authentication Daemon Version 1.00\r\n"
TICKET = "52cf8c64-9343-7cb7-d151-1bfc481bb7d5"


def capture(path, script):
    """Banner, then ``script`` as (side, bytes, mark) writes; returns (path, {mark: frame})."""
    c = TcpConversation("10.0.0.1", 40000, "10.0.0.2", 902, T0)
    c.open()
    c.server_send(BANNER)
    for side, data, mark in script:
        (c.client_send if side == "C" else c.server_send)(data, mark=mark)
    c.close()
    records = c.records()
    with CaptureWriter(str(path)) as w:
        for ts, pkt, _ in records:
            w.write(ts, pkt)
    return path, {mark: n for n, (_, _, mark) in enumerate(records, 1) if mark}


def login(user: str, password: str, reply: bytes | None, n: int):
    steps = [("C", f"USER {user}\r\n".encode(), f"user{n}"),
             ("S", f"331 Password required for {user}.\r\n".encode(), None),
             ("C", f"PASS {password}\r\n".encode(), f"pass{n}")]
    if reply is not None:
        steps.append(("S", reply, f"reply{n}"))
    return steps


OK = b"230 User {u} logged in.\r\n"
NO = b"530 Login incorrect.\r\n"


def ok(user: str) -> bytes:
    return OK.replace(b"{u}", user.encode())


def test_accepted_then_rejected_reports_every_attempt(tmp_path):
    """root accepted, then admin and vmware rejected, one connection: the session is accepted
    as root (it used to say user=vmware, outcome=accepted)."""
    path, frames = capture(tmp_path / "c.pcap", login("root", "a", ok("root"), 1) + login("admin", "b", NO, 2)
                           + login("vmware", "c", NO, 3))
    result = analyze(path)
    (s,) = result.sessions
    assert [(a.user, a.code, a.outcome) for a in s.logins] == [
        ("root", 230, "accepted"), ("admin", 530, "rejected"), ("vmware", 530, "rejected")]
    assert [(a.user_frame, a.pass_frame, a.reply_frame) for a in s.logins] == [
        (frames[f"user{n}"], frames[f"pass{n}"], frames[f"reply{n}"]) for n in (1, 2, 3)]
    assert (s.user, s.login_outcome, s.login_attempts, s.logins_failed) == ("root", "accepted", 3, 2)
    assert s.login_summary == "accepted as root after 0 failures; 2 rejected"
    assert s.failure is None
    auth = result.to_dict()["sessions"][0]["auth"]
    assert auth["user"] == "root" and auth["outcome"] == "accepted" and auth["failed"] == 2
    assert [a["outcome"] for a in auth["attempts"]] == ["accepted", "rejected", "rejected"]
    assert auth["attempts"][1] == {"user": "admin", "user_frame": frames["user2"], "pass_ts": s.logins[1].pass_ts,
                                   "pass_frame": frames["pass2"], "code": 530, "reply_ts": s.logins[1].reply_ts,
                                   "reply_frame": frames["reply2"], "outcome": "rejected"}
    lf = result.logins_frame()
    assert list(lf.columns) == list(LOGINS) and len(lf) == 3
    assert lf["attempt"].tolist() == [1, 2, 3] and lf["outcome"].astype(str).tolist() == ["accepted", "rejected", "rejected"]
    assert lf["reply_frame"].tolist() == [frames["reply1"], frames["reply2"], frames["reply3"]]
    sf = result.sessions_frame()
    assert sf.loc[0, "user"] == "root" and sf.loc[0, "logins_failed"] == 2
    assert sf.loc[0, "login_summary"] == "accepted as root after 0 failures; 2 rejected"
    out = io.StringIO()
    render_table(result, out)
    assert "accepted as root after 0 failures; 2 rejected" in out.getvalue()


def test_pipelined_530_is_matched_to_its_pass(tmp_path):
    """USER a, PASS x, USER b leave the client before the 530 arrives: the 530 still answers the
    PASS (it used to be lost and the outcome was none)."""
    script = [("C", b"USER a\r\n", "user1"), ("C", b"PASS x\r\n", "pass1"), ("C", b"USER b\r\n", "user2"),
              ("S", b"331 Password required for a.\r\n", None), ("S", NO, "reply1"),
              ("S", b"331 Password required for b.\r\n", None),
              ("C", b"PASS y\r\n", "pass2"), ("S", ok("b"), "reply2")]
    path, frames = capture(tmp_path / "p.pcap", script)
    (s,) = analyze(path).sessions
    assert [(a.user, a.code, a.outcome, a.pass_frame, a.reply_frame) for a in s.logins] == [
        ("a", 530, "rejected", frames["pass1"], frames["reply1"]),
        ("b", 230, "accepted", frames["pass2"], frames["reply2"])]
    assert s.login_summary == "accepted as b after 1 failure; 1 rejected" and s.user == "b"


def test_whole_dialogue_pipelined():
    """Every command sent before any reply: replies are taken in command order."""
    d = Dialogue()
    for n, raw in enumerate([b"USER a", b"PASS x", b"USER b", b"PASS y", b"USER c", b"PASS z"]):
        d.client_line(raw, 0.0, n)
    for n, raw in enumerate([b"331 Password required for a.", b"530 Login incorrect.",
                             b"331 Password required for b.", b"530 Login incorrect.",
                             b"331 Password required for c.", b"230 User c logged in."], 10):
        d.server_line(raw, 0.0, n)
    assert [(a.user, a.reply_frame, a.outcome) for a in d.attempts] == [
        ("a", 11, "rejected"), ("b", 13, "rejected"), ("c", 15, "accepted")]
    assert d.login_summary == "accepted as c after 2 failures; 2 rejected"


def test_silent_failure_then_rejection(tmp_path):
    """Workstation may leave a wrong password unanswered (protocol.md §3.3): the next 331 answers
    the next USER, so the silent PASS is 'unanswered' and the later 530 is not shifted onto it."""
    script = login("a", "x", None, 1) + login("b", "y", NO, 2)
    path, frames = capture(tmp_path / "s.pcap", script)
    (s,) = analyze(path).sessions
    assert [(a.user, a.code, a.outcome, a.reply_frame) for a in s.logins] == [
        ("a", None, "unanswered", None), ("b", 530, "rejected", frames["reply2"])]
    assert s.login_outcome == "rejected" and s.user == "b"
    assert s.login_summary == "rejected: 2 attempts (a, b); 1 unanswered"
    assert s.failure.kind == "login_rejected" and s.failure.frame == frames["reply2"]


def test_all_unanswered(tmp_path):
    path, _ = capture(tmp_path / "u.pcap", login("a", "x", None, 1))
    (s,) = analyze(path).sessions
    assert (s.login_outcome, s.login_summary, s.failure) == ("unanswered", "no reply to 1 attempt (a)", None)


def test_ticket_user_is_redacted_in_every_attempt_field(tmp_path):
    path, _ = capture(tmp_path / "t.pcap", login(TICKET, TICKET, ok(TICKET), 1))
    result = analyze(path)
    (s,) = result.sessions
    assert [(a.user, a.outcome) for a in s.logins] == [(REDACTED, "accepted")] and s.user == REDACTED
    text = json.dumps(result.to_dict()) + result.logins_frame().to_csv() + result.sessions_frame().to_csv()
    assert TICKET not in text and TICKET[:8] not in text
    shown = analyze(path, show_secrets=True).sessions[0]
    assert shown.logins[0].user == TICKET


def test_connect_reply_is_the_one_to_the_connect():
    """A THUMBPRINT answered 200 before the CONNECT's own 553: the CONNECT failed."""
    d = Dialogue()
    d.client_line(b"THUMBPRINT AAAAAAAAAAAAAAAA", 0, 1)
    d.client_line(b"CONNECT /vmfs/volumes/ds/vm.vmx mks", 0, 2)
    d.server_line(b"200 C5:50", 0, 3)
    assert d.connect_ok is None
    d.server_line(b"553 No such virtual machine.", 0, 4)
    assert (d.connect_ok, d.connect_code, d.connect_frame, d.connect_reply_frame) == (False, 553, 2, 4)


def test_session_gets_no_reply_of_its_own():
    """SESSION is not answered (protocol.md §3.3): the 220 after BANNER answers BANNER."""
    d = Dialogue()
    d.client_line(f"SESSION {TICKET}".encode(), 0, 1)
    d.client_line(b"BANNER ", 0, 1)
    d.client_line(b"PROXY vpxa-nfcssl", 0, 2)
    d.server_line(b"220 VMware Authentication Daemon Version 1.10: SSL Required", 0, 3)
    assert d.connect_ok is None
    d.server_line(b"200 Connect ha-nfcssl", 0, 4)
    assert (d.connect_kind, d.connect_ok, d.connect_reply_frame) == ("proxy", True, 4)


def test_greeting_before_a_pipelined_user_is_not_its_answer():
    d = Dialogue()
    d.client_line(b"USER root", 0, 1)
    d.server_line(b"220 VMware Authentication Daemon Version 1.00", 0, 2)
    d.server_line(b"331 Password required for root.", 0, 3)
    d.client_line(b"PASS x", 0, 4)
    d.server_line(b"530 Login incorrect.", 0, 5)
    assert [(a.user, a.reply_frame) for a in d.attempts] == [("root", 5)]


def test_describe_logins_and_columns(capsys):
    assert main(["analyze", "--describe", "logins"]) == 0
    out = capsys.readouterr().out
    assert "reply_frame" in out and "accepted | rejected | unanswered" in out
    for col in ("failure", "failure_frame", "failure_reason", "login_summary", "logins_failed"):
        assert col in SESSIONS and col in describe("sessions")


@pytest.mark.parametrize("n", [2, 6])
def test_brute_force_diagnosis_counts_the_attempts(tmp_path, n):
    """The doctor's login finding reads the same attempts: n rejections, every user named."""
    from dissect.port902.infer.diagnose import Diagnostics

    script = [step for i in range(n) for step in login(f"u{i}", "p", NO, i)]
    path, _ = capture(tmp_path / "b.pcap", script)
    diag = Diagnostics()
    analyze(path, observers=[diag])
    (f,) = [f for f in diag.problems if f.kind == "login_rejected"]
    assert f"{n} logins" in f.detail and all(f"u{i}" in f.detail for i in range(n))
    assert ("password guessing" in f.title) == (n >= 5)
