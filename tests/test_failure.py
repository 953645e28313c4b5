"""The session's ``failure`` (issue 8, item 6): one kind, the evidence frame and a reason.

Every kind from a capture built with the lab's TCP model (and real TLS from ``lab.tlsbio``
where a handshake is needed); the evidence frames come from the generator's marks.
"""

from __future__ import annotations

import io
import json

import pytest

from dissect.port902.analysis import analyze
from dissect.port902.lab.certs import host_cert
from dissect.port902.lab.pcapwriter import CaptureWriter
from dissect.port902.lab.tcp import TcpConversation
from dissect.port902.lab.tlsbio import TlsPair
from dissect.port902.output.render import render_table
from dissect.port902.model.records import FAILURES, failure_of

T0 = 1_700_000_000.0
PLAIN = b"220 VMware Authentication Daemon Version 1.00\r\n"
SSL = b"220 VMware Authentication Daemon Version 1.10: SSL Required, ServerDaemonProtocol:SOAP\r\n"
ALERT_PROTOCOL_VERSION = bytes.fromhex("1503010002") + bytes([2, 70])
ALERT_UNKNOWN_CA = bytes.fromhex("1503030002") + bytes([2, 48])
CLOSE_NOTIFY_CLEAR = bytes.fromhex("1503030002") + bytes([1, 0])


def conversation():
    return TcpConversation("10.0.0.1", 40000, "10.0.0.2", 902, T0)


def write(path, c):
    """The capture and {mark: frame number}."""
    records = c.records()
    with CaptureWriter(str(path)) as w:
        for ts, pkt, _ in records:
            w.write(ts, pkt)
    return analyze(path), {mark: n for n, (_, _, mark) in enumerate(records, 1) if mark}


def plain_login(c, reply: bytes, user=b"root"):
    c.open()
    c.server_send(PLAIN)
    c.client_send(b"USER " + user + b"\r\n")
    c.server_send(b"331 Password required for " + user + b".\r\n")
    c.client_send(b"PASS x\r\n")
    c.server_send(reply, mark="reply")


def only(result):
    (s,) = result.sessions
    return s


def test_no_answer(tmp_path):
    c = conversation()
    c.syn_unanswered(mark="syn")
    result, m = write(tmp_path / "n.pcap", c)
    f = only(result).failure
    assert (f.kind, f.frame) == ("no_answer", m["syn"]) and "4 SYN(s)" in f.reason


def test_refused(tmp_path):
    c = conversation()
    c.refuse(mark="syn")
    result, m = write(tmp_path / "r.pcap", c)
    s = only(result)
    assert s.failure.kind == "refused" and s.failure.frame == s.rst_frame == m["syn"] + 1


def test_tls_alert_before_server_hello(tmp_path):
    """A fatal alert answering the ClientHello: filed by the session under
    tls.alerts_without_handshake, and now named on the session as its failure."""
    c = conversation()
    c.open()
    c.server_send(SSL)
    c.client_send(TlsPair(host_cert("esxi.test"), "1.0").handshake()[0][1])
    c.server_send(ALERT_PROTOCOL_VERSION, mark="alert")
    c.close(by="server")
    result, m = write(tmp_path / "a.pcap", c)
    s = only(result)
    d = result.to_dict()["sessions"][0]
    assert d["tls"]["alerts_without_handshake"]  # where the alert is filed
    assert (d["failure"], d["failure_frame"]) == ("tls_alert", m["alert"])
    assert d["failure_reason"] == "the server sent a fatal TLS alert protocol_version before the ServerHello"
    assert s.failure.kind == "tls_alert"


def test_tls_alert_after_the_certificate(tmp_path):
    c = conversation()
    c.open()
    c.server_send(SSL)
    flights = TlsPair(host_cert("esxi.test"), "1.2").handshake()
    c.client_send(flights[0][1])
    c.server_send(flights[1][1])
    c.client_send(ALERT_UNKNOWN_CA, mark="alert")
    c.close()
    result, m = write(tmp_path / "c.pcap", c)
    f = only(result).failure
    assert (f.kind, f.frame) == ("tls_alert", m["alert"])
    assert f.reason == "the client sent a fatal TLS alert unknown_ca during the handshake"


def test_a_warning_alert_is_not_a_failure(tmp_path):
    c = conversation()
    c.open()
    c.server_send(SSL)
    flights = TlsPair(host_cert("esxi.test"), "1.2").handshake()
    c.client_send(flights[0][1])
    c.server_send(flights[1][1])
    c.client_send(CLOSE_NOTIFY_CLEAR)
    c.close()
    result, _ = write(tmp_path / "w.pcap", c)
    assert only(result).failure is None


def test_login_rejected(tmp_path):
    c = conversation()
    plain_login(c, b"530 Login incorrect.\r\n")
    c.close()
    result, m = write(tmp_path / "l.pcap", c)
    f = only(result).failure
    assert (f.kind, f.frame) == ("login_rejected", m["reply"])
    assert f.reason == "1 of 1 login(s) rejected (530), none accepted"


def test_login_rejected_explains_the_reset_after_it(tmp_path):
    c = conversation()
    plain_login(c, b"530 Login incorrect.\r\n")
    c.reset(by="server")
    result, m = write(tmp_path / "lr.pcap", c)
    s = only(result)
    assert s.state == "reset" and (s.failure.kind, s.failure.frame) == ("login_rejected", m["reply"])


def test_a_later_accepted_login_is_no_failure(tmp_path):
    c = conversation()
    plain_login(c, b"530 Login incorrect.\r\n")
    c.client_send(b"USER root\r\n")
    c.server_send(b"331 Password required for root.\r\n")
    c.client_send(b"PASS y\r\n")
    c.server_send(b"230 User root logged in.\r\n")
    c.close()
    result, _ = write(tmp_path / "ok.pcap", c)
    assert only(result).failure is None


@pytest.mark.parametrize("end", ["close", "reset"])
def test_connect_rejected(tmp_path, end):
    c = conversation()
    plain_login(c, b"230 User root logged in.\r\n")
    c.client_send(b"CONNECT /vmfs/volumes/ds1/web01/web01.vmx mks\r\n", mark="connect")
    c.server_send(b"553 No such virtual machine.\r\n", mark="error")
    c.reset(by="server") if end == "reset" else c.close(by="server")
    result, m = write(tmp_path / "x.pcap", c)
    s = only(result)
    assert (s.failure.kind, s.failure.frame) == ("connect_rejected", m["error"])
    assert s.failure.reason == "the mks request for /vmfs/volumes/ds1/web01/web01.vmx was answered 553 (NOSUCHVM)"
    assert (s.connect_frame, s.connect_reply_frame, s.connect_code) == (m["connect"], m["error"], 553)
    auth = result.to_dict()["sessions"][0]["auth"]
    assert auth["connect"] == {"kind": "mks", "target": "/vmfs/volumes/ds1/web01/web01.vmx", "ok": False,
                               "code": 553, "frame": m["connect"], "reply_frame": m["error"]}


def test_proxy_rejected(tmp_path):
    c = conversation()
    c.open()
    c.server_send(PLAIN)
    c.client_send(b"SESSION 52cdebc5-b7ee-359a-1dec-76f0bc105ac5\r\nPROXY vpxa-nfc\r\n")
    c.server_send(b"554 No such service.\r\n", mark="error")
    c.close()
    result, m = write(tmp_path / "p.pcap", c)
    f = only(result).failure
    assert (f.kind, f.frame) == ("connect_rejected", m["error"]) and "proxy request for vpxa-nfc" in f.reason


def test_reset_midstream(tmp_path):
    c = conversation()
    plain_login(c, b"230 User root logged in.\r\n")
    c.reset(by="server", mark="rst")
    result, m = write(tmp_path / "rst.pcap", c)
    f = only(result).failure
    assert (f.kind, f.frame) == ("reset", m["rst"]) and f.reason.startswith("the server reset the connection after")


def test_clean_session_has_no_failure_and_every_output_says_so(tmp_path):
    c = conversation()
    plain_login(c, b"230 User root logged in.\r\n")
    c.close()
    result, _ = write(tmp_path / "clean.pcap", c)
    assert only(result).failure is None
    d = result.to_dict()["sessions"][0]
    assert (d["failure"], d["failure_frame"], d["failure_reason"]) == (None, None, None)
    sf = result.sessions_frame()
    assert sf["failure"].isna().all() and sf["failure_frame"].isna().all()


def test_failure_in_json_frame_and_table(tmp_path):
    c = conversation()
    plain_login(c, b"530 Login incorrect.\r\n")
    c.close()
    result, m = write(tmp_path / "t.pcap", c)
    sf = result.sessions_frame()
    assert str(sf["failure"].dtype) == "category" and str(sf["failure_frame"].dtype) == "Int64"
    assert (sf.loc[0, "failure"], sf.loc[0, "failure_frame"]) == ("login_rejected", m["reply"])
    assert sf.loc[0, "failure_reason"].startswith("1 of 1 login(s) rejected")
    out = io.StringIO()
    render_table(result, out)
    text = out.getvalue()
    assert "failure" in text.splitlines()[3]  # the table header
    assert f"#1 login_rejected (frame {m['reply']}): 1 of 1 login(s) rejected" in text
    assert json.loads(json.dumps(result.to_dict()))["sessions"][0]["failure"] == "login_rejected"


def test_inferred_login_is_a_one_line_hook(tmp_path):
    """Logins inside TLS have no visible reply: an outcome inferred elsewhere (record sizes)
    turns into login_rejected; a visible accepted login is not overruled by it."""
    c = conversation()
    c.open()
    c.server_send(SSL)
    flights = TlsPair(host_cert("esxi.test"), "1.2").handshake()
    for side, data in flights:
        (c.client_send if side == "C" else c.server_send)(data)
    c.close()
    result, _ = write(tmp_path / "tls.pcap", c)
    s = only(result)
    assert s.failure is None and not s.logins
    f = failure_of(s, inferred_login="rejected", inferred_frame=12)
    assert (f.kind, f.frame) == ("login_rejected", 12) and "inferred" in f.reason
    assert failure_of(s, inferred_login="accepted") is None
    c2 = conversation()
    plain_login(c2, b"230 User root logged in.\r\n")
    c2.close()
    visible, _ = write(tmp_path / "v.pcap", c2)
    assert failure_of(only(visible), inferred_login="rejected") is None


def test_every_kind_is_documented():
    assert set(FAILURES) == {"no_answer", "refused", "tls_alert", "login_rejected", "connect_rejected", "reset"}
