"""Plain VNC consoles (issue 12): the RFB handshake parser on byte literals, and real x11vnc on Xvfb
(with -rfbauth and without a password) reached by a real client (vncdotool), captured by tcpdump on
loopback, read by ``analyze`` and ``doctor`` and checked against the runs and against tshark's VNC
dissector."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from localports import free_port, wait_port

from dissect.port902.lab.livestack import free_display

from dissect.port902 import analyze
from dissect.port902.analyzers.vnc import HINT_PORTS, parse_handshake
from dissect.port902.cli.main import main

# -- the parser ------------------------------------------------------------------------------------


def _server_init(w, h, name: bytes) -> bytes:
    return w.to_bytes(2, "big") + h.to_bytes(2, "big") + bytes(16) + len(name).to_bytes(4, "big") + name


def test_rfb38_vnc_auth_ok():
    server = b"RFB 003.008\n" + b"\x01\x02" + bytes(16) + b"\0\0\0\0" + _server_init(1024, 768, b"vm1")
    client = b"RFB 003.008\n" + b"\x02" + bytes(16) + b"\x01"
    hs = parse_handshake(server, client)
    assert hs["server_version"] == "003.008" and hs["client_version"] == "003.008"
    assert hs["offered"] == ["VNC Authentication"] and hs["chosen"] == "VNC Authentication"
    assert hs["authentication"] == "vnc" and hs["result"] == "ok"
    assert hs["server_init"]["width"] == 1024 and hs["server_init"]["name"] == "vm1"


def test_rfb38_auth_failed_with_reason():
    server = b"RFB 003.008\n\x01\x02" + bytes(16) + b"\0\0\0\x01" + b"\0\0\0\x0dauth rejected"
    client = b"RFB 003.008\n\x02" + bytes(16)
    hs = parse_handshake(server, client)
    assert hs["result"] == "failed" and hs["reason"] == "auth rejected" and hs["server_init"] is None


def test_rfb37_none_has_no_security_result():
    server = b"RFB 003.007\n\x02\x01\x02" + _server_init(640, 480, b"x")
    client = b"RFB 003.007\n\x01\x00"
    hs = parse_handshake(server, client)
    assert hs["offered"] == ["None", "VNC Authentication"] and hs["authentication"] == "none"
    assert hs["result"] is None and hs["server_init"]["height"] == 480


def test_rfb33_server_decides():
    server = b"RFB 003.003\n\0\0\0\x01" + _server_init(800, 600, b"old")
    client = b"RFB 003.003\n\x01"
    hs = parse_handshake(server, client)
    assert hs["chosen"] == "None" and hs["server_init"]["name"] == "old"


def test_not_rfb_and_truncated():
    assert parse_handshake(b"220 VMware Authentication Daemon", b"") is None
    assert parse_handshake(b"RFB 003.00", b"") is None
    hs = parse_handshake(b"RFB 003.008\n\x01", b"RFB 003.008\n")
    assert hs["offered"] == [] and hs["chosen"] is None  # count byte without its list
    hs = parse_handshake(b"RFB 003.008\n\x00\0\0\0\x04nope", b"RFB 003.008\n")
    assert hs["authentication"] == "failed_negotiation" and hs["reason"] == "nope"
    hs = parse_handshake(b"RFB 003.008\n\x01\x13", b"RFB 003.008\n\x13")
    assert hs["authentication"] == "encrypted" and hs["chosen"] == "VeNCrypt"


# -- real x11vnc, real client -------------------------------------------------------------------------

PASSWORD = "Vm0ware8"


def _vncdo(port: int, password: str | None, out: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("vncdo")
    cmd = [str(exe), "-s", f"127.0.0.1::{port}", "-t", "15"]
    if password is not None:
        cmd += ["-p", password]
    cmd += ["capture", str(out)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """Two x11vnc servers on one Xvfb desktop: one with -rfbauth (port A), one without a password
    (port B); three client runs: right password, wrong password (both A), none (B)."""
    d = tmp_path_factory.mktemp("vnc")
    display = free_display(60)
    ports = sorted(HINT_PORTS)
    port_a = free_port(ports[31:])
    port_b = free_port(p for p in ports[31:] if p != port_a)
    procs = []

    def start(cmd, **kw):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, **kw)
        procs.append(p)
        return p

    try:
        start(["Xvfb", f":{display}", "-screen", "0", "800x600x24", "-nolisten", "tcp"])
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{display}").exists():
            assert time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.1)
        pwfile = d / "passwd"
        subprocess.run(["x11vnc", "-storepasswd", PASSWORD, str(pwfile)], capture_output=True, check=True, timeout=30)
        start(["x11vnc", "-display", f":{display}", "-rfbport", str(port_a), "-rfbauth", str(pwfile), "-forever",
               "-shared", "-localhost", "-desktop", "db01 console", "-quiet", "-nevershared", "-noxdamage"])
        start(["x11vnc", "-display", f":{display}", "-rfbport", str(port_b), "-nopw", "-forever", "-shared",
               "-localhost", "-desktop", "web02 console", "-quiet", "-noxdamage"])
        wait_port(port_a)
        wait_port(port_b)
        cap = d / "vnc.pcap"
        dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-n", "-w", str(cap),
                                 f"tcp port {port_a} or tcp port {port_b}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(dump)
        time.sleep(1.5)  # tcpdump's filter is in place
        runs = {
            "right": _vncdo(port_a, PASSWORD, d / "a.png"),
            "wrong": _vncdo(port_a, "wrongpw1", d / "b.png"),
            "none": _vncdo(port_b, None, d / "c.png"),
        }
        time.sleep(1.0)
        dump.send_signal(signal.SIGINT)
        dump.wait(20)
        yield {"capture": cap, "port_a": port_a, "port_b": port_b, "runs": runs, "dir": d}
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()


live_test = pytest.mark.tools("Xvfb", "x11vnc", "tcpdump", "tshark")


@live_test
def test_clients_did_what_the_test_says(live):
    runs = live["runs"]
    assert runs["right"].returncode == 0, runs["right"].stderr[-2000:]
    assert runs["none"].returncode == 0, runs["none"].stderr[-2000:]
    assert runs["wrong"].returncode != 0
    assert (live["dir"] / "a.png").stat().st_size > 0 and (live["dir"] / "c.png").stat().st_size > 0


@live_test
def test_analyze_reads_the_real_handshakes(live):
    result = analyze(str(live["capture"]))
    assert result.sessions == []  # VNC is not authd: no port-902 sessions invented
    vnc = result.extras["vnc"]
    by_port: dict[int, list] = {}
    for s in vnc.sessions:
        by_port.setdefault(s.server_port, []).append(s)
    a, b = by_port[live["port_a"]], by_port[live["port_b"]]
    assert len(a) == 2 and len(b) == 1
    right, wrong = sorted(a, key=lambda s: s.start)
    for s in (right, wrong):
        assert s.authentication == "vnc" and "VNC Authentication" in s.security_offered
        assert s.security_chosen == "VNC Authentication"
    assert right.auth_result == "ok" and right.desktop_name == "db01 console"
    assert (right.width, right.height) == (800, 600)
    assert wrong.auth_result == "failed" and wrong.desktop_name is None
    (none,) = b
    assert none.authentication == "none" and none.security_chosen == "None"
    assert none.desktop_name == "web02 console" and (none.width, none.height) == (800, 600)
    for s in vnc.sessions:
        assert s.feature == "VNC" and s.confidence >= 0.9 and s.server_version == s.client_version == "003.008"
        assert s.client.startswith("127.0.0.1:") and s.server == f"127.0.0.1:{s.server_port}"
    doc = result.to_dict()
    assert [v["uid"] for v in doc["vnc"]] == [s.uid for s in vnc.sessions]
    json.dumps(doc)


@live_test
def test_matches_tshark_vnc_dissector(live):
    cap = live["capture"]
    fields = ["tcp.stream", "tcp.srcport", "tcp.dstport", "vnc.server_proto_ver", "vnc.client_proto_ver",
              "vnc.security_type", "vnc.client_security_type", "vnc.auth_result", "vnc.width", "vnc.height",
              "vnc.desktop_name"]
    cmd = ["tshark", "-n", "-r", str(cap), "-d", f"tcp.port=={live['port_a']},vnc",
           "-d", f"tcp.port=={live['port_b']},vnc", "-T", "fields", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    streams: dict[str, dict] = {}
    for line in out.splitlines():
        row = dict(zip(fields, line.split("\t")))
        st = streams.setdefault(row["tcp.stream"], {"ports": {row["tcp.srcport"], row["tcp.dstport"]}})
        for f in fields[3:]:
            if row.get(f):
                st.setdefault(f, row[f])
    # connections whose opening the capture missed (the readiness probes closing) carry no RFB
    streams = {k: v for k, v in streams.items() if "vnc.server_proto_ver" in v}
    ours = analyze(str(cap)).extras["vnc"].sessions
    assert len(streams) == len(ours) == 3
    names = {1: "None", 2: "VNC Authentication"}
    for s in ours:
        client_port = s.client.rsplit(":", 1)[1]
        (t,) = [t for t in streams.values() if client_port in t["ports"]]
        assert t["vnc.server_proto_ver"] == s.server_version
        assert t["vnc.client_proto_ver"] == s.client_version
        assert names[int(t["vnc.client_security_type"])] == s.security_chosen
        if s.auth_result is not None:
            assert (t["vnc.auth_result"] in ("0", "False")) == (s.auth_result == "ok")
        if s.width is not None:
            assert (int(t["vnc.width"]), int(t["vnc.height"])) == (s.width, s.height)
            assert t["vnc.desktop_name"] == s.desktop_name


@live_test
def test_doctor_flags_plain_vnc(live, capsys):
    code = main(["doctor", str(live["capture"]), "-f", "json"])
    doc = json.loads(capsys.readouterr().out)
    findings = doc["diagnostics"]["findings"]
    kinds = [f["kind"] for f in findings]
    assert kinds.count("vnc_console") == 1  # one host
    console = next(f for f in findings if f["kind"] == "vnc_console")
    assert str(live["port_a"]) in console["title"] and str(live["port_b"]) in console["title"]
    assert "not encrypted" in console["detail"] and "8 characters" in console["detail"]
    assert "902" in console["advice"]
    assert console["severity"] == "warning"
    no_auth = [f for f in findings if f["kind"] == "vnc_no_auth"]
    assert len(no_auth) == 1 and str(live["port_b"]) in no_auth[0]["detail"]
    assert code == 1  # a console without authentication is a problem
    checked = {c["check"]: c for c in doc["diagnostics"]["checked"]}
    assert checked["plain_vnc"]["observed"] == 3
    # the table output names them too, escaped
    assert main(["analyze", str(live["capture"])]) == 0
    out = capsys.readouterr().out
    assert "plain VNC consoles (3" in out and "web02 console" in out


# -- a VNC console that did not follow its VM (synthetic capture, real byte layouts) ------------------

def _vnc_then_902(tmp_path, reset: bool = True):
    from dissect.port902.lab.pcapwriter import CaptureWriter
    from dissect.port902.lab.tcp import TcpConversation

    t0 = 1_715_677_200.0
    v = TcpConversation("10.1.1.5", 50000, "10.0.0.11", 5901, t0)
    v.open()
    v.server_send(b"RFB 003.008\n")
    v.client_send(b"RFB 003.008\n")
    v.server_send(b"\x01\x02")
    v.client_send(b"\x02")
    v.server_send(bytes(range(16)))
    v.client_send(bytes(range(16, 32)))
    v.server_send(b"\0\0\0\0")
    v.client_send(b"\x01")
    v.server_send(_server_init(1280, 800, b"db01 <b>console</b>"))
    v.client_send(b"\x03\x00\x00\x00\x00\x00\x05\x00\x03\x20")
    v.server_send(b"\x00\x00\x00\x01" + bytes(2000), at=t0 + 5)
    if reset:
        v.reset(at=t0 + 10, by="server")
    else:
        v.close(at=t0 + 10)
    m = TcpConversation("10.1.1.5", 50001, "10.0.0.12", 902, t0 + 13)
    m.open()
    m.server_send(b"220 VMware Authentication Daemon Version 1.10: SSL Required, ServerDaemonProtocol:SOAP, "
                  b"MKSDisplayProtocol:VNC , VMXARGS supported, NFCSSL supported/t\r\n")
    m.close(at=t0 + 14)
    path = tmp_path / "vnc-then-902.pcap"
    packets = sorted(p for c in (v, m) for p in c.packets())
    with CaptureWriter(str(path)) as w:
        for ts, pkt in packets:
            w.write(ts, pkt)
    return path


def test_vnc_console_that_did_not_follow(tmp_path, capsys):
    path = _vnc_then_902(tmp_path)
    result = analyze(str(path))
    (v,) = result.extras["vnc"].sessions
    assert v.state == "reset" and v.desktop_name == "db01 <b>console</b>" and (v.width, v.height) == (1280, 800)
    assert [s.server_port for s in result.sessions] == [902]
    kinds = {f.kind: f for f in result.diagnostics.findings}
    f = kinds["vnc_no_follow"]
    assert f.severity == "problem" and "10.0.0.12" in f.title and v.uid in f.related
    assert result.sessions[0].uid in f.related
    assert main(["doctor", str(path)]) == 1
    out = capsys.readouterr().out
    assert "did not follow the VM to 10.0.0.12" in out


def test_no_follow_needs_another_host(tmp_path):
    """The same capture without the 902 session: no vnc_no_follow (the finding can fail)."""
    path = _vnc_then_902(tmp_path)
    only = tmp_path / "only-vnc.pcap"
    from dissect.port902.io.capture import CaptureReader, Selection

    with CaptureReader(str(path), Selection(tcp_ports={5901}, detect_greeting=False)) as r:
        frames = {p.frame for p in r}
    import scapy.all as scapy  # dependency of the project

    pkts = [p for i, p in enumerate(scapy.rdpcap(str(path)), 1) if i in frames]
    scapy.wrpcap(str(only), pkts)
    result = analyze(str(only))
    assert len(result.extras["vnc"].sessions) == 1 and result.sessions == []
    assert "vnc_no_follow" not in {f.kind for f in result.diagnostics.findings}
    assert "vnc_console" in {f.kind for f in result.diagnostics.findings}


def test_report_lists_vnc_findings_escaped(tmp_path):
    path = _vnc_then_902(tmp_path)
    out = tmp_path / "r.html"
    assert main(["report", str(path), "-o", str(out), "-q", "--no-charts"]) == 0
    text = out.read_text()
    assert "vnc_no_follow" in text and "db01 &lt;b&gt;console&lt;/b&gt;" in text and "<b>console" not in text
    assert 'id="vnc-h"' in text and text.count("<tr data-vnc=") == 1


# -- the bundled sample (lab: samples/plain-vnc.pcap) against its labels -----------------------------

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "plain-vnc.pcap"


def test_bundled_sample_matches_labels():
    labels = json.loads(SAMPLE.with_name("plain-vnc.labels.json").read_text())
    result = analyze(str(SAMPLE))
    vnc = {s.client: s for s in result.extras["vnc"].sessions}
    wanted = [c for c in labels["connections"] if c["service"] == "vnc"]
    assert len(vnc) == len(wanted) == 3
    for c in wanted:
        s = vnc[f"{c['client']['ip']}:{c['client']['port']}"]
        rfb = c["related"]["rfb"]
        events = {e["what"]: e["frame"] for e in c["events"]}
        assert s.server == f"{c['server']['ip']}:{c['server']['port']}"
        assert s.server_version == rfb["version"] and s.security_chosen == rfb["security"]
        assert s.auth_result == rfb["auth_result"]
        assert (s.desktop_name, s.width, s.height) == (rfb["desktop"], rfb["width"], rfb["height"])
        assert s.version_frame == events["rfb_version"] and s.security_frame == events["rfb_security"]
        assert s.server_init_frame == events.get("rfb_server_init")
        assert s.state == c["outcome"]
    kinds = [f.kind for f in result.diagnostics.findings]
    assert kinds.count("vnc_no_follow") == 1 and kinds.count("vnc_no_auth") == 1 and kinds.count("vnc_console") == 1
    follow = next(f for f in result.diagnostics.findings if f.kind == "vnc_no_follow")
    mks = [s for s in result.sessions if s.feature == "MKS"]
    assert len(mks) == 1 and follow.related == [vnc["10.30.5.23:" + str(wanted[0]["client"]["port"])].uid, mks[0].uid]


# -- RFB on any port, by content (both capture engines) ------------------------------------------------

@pytest.mark.parametrize("engine", ["c", "python"])
def test_rfb_on_an_unusual_port_by_content(tmp_path, engine, monkeypatch):
    from dissect.port902.io import native
    from dissect.port902.io.capture import CaptureReader, Selection
    from dissect.port902.lab.pcapwriter import CaptureWriter
    from dissect.port902.lab.tcp import TcpConversation

    if engine == "c" and native._fastscan is None:
        pytest.skip("C engine not built")
    t0 = 1_715_677_200.0
    convs = []
    v = TcpConversation("10.1.1.5", 50010, "10.0.0.11", 7777, t0)  # not a hint port
    v.open()
    v.server_send(b"RFB 003.008\n")
    v.client_send(b"RFB 003.008\n")
    v.server_send(b"\x01\x01")
    v.client_send(b"\x01")
    v.server_send(b"\0\0\0\0")
    v.client_send(b"\x01")
    v.server_send(_server_init(640, 480, b"odd-port vm"))
    v.close(at=t0 + 3)
    convs.append(v)
    other = TcpConversation("10.1.1.5", 50011, "10.0.0.11", 8888, t0 + 4)  # not RFB: never reported
    other.open()
    other.server_send(b"SSH-2.0-OpenSSH_9.2\r\n")
    other.close(at=t0 + 5)
    convs.append(other)
    path = tmp_path / "odd.pcap"
    with CaptureWriter(str(path)) as w:
        for ts, pkt in sorted(p for c in convs for p in c.packets()):
            w.write(ts, pkt)
    if engine == "python":
        monkeypatch.setenv("DISSECT902_PURE_PYTHON", "1")
    assert native.default_engine() == engine
    result = analyze(str(path))
    (s,) = result.extras["vnc"].sessions
    assert s.server == "10.0.0.11:7777" and s.desktop_name == "odd-port vm" and s.authentication == "none"
    assert s.first_frame > 1  # learnt from the server's greeting: the handshake before it is not kept
    assert result.sessions == []  # not an authd session
    sel = Selection()
    with CaptureReader(str(path), sel, engine=engine) as r:
        list(r)
    assert 7777 in sel.observer_tcp_ports and 8888 not in sel.tcp_ports
