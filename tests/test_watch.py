"""``dissect902 watch`` (issue 10): live sessions from tcpdump in a namespace of the test's own, and
from files and pipes; the live verdicts are the ones ``analyze`` gives; memory kept is bounded by
``--keep``; Ctrl-C gives the summary and the diagnosis."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dissect.port902.analysis import analyze
from dissect.port902.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples").glob("*.pcap*")) + sorted((ROOT / "samples" / "doctor").glob("*.pcap*"))
SAMPLES = [p for p in SAMPLES if not p.name.endswith(".json")]


def watch_jsonl(capsys, *args) -> list[dict]:
    assert main(["watch", *map(str, args), "-q", "-f", "jsonl"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_live_lines_carry_the_verdicts_analyze_gives(capsys, sample):
    """Every session analyze reports is printed once, with the feature analyze gives it (the 903
    leg of a hand-off excepted: it inherits its feature from the 902 session that follows)."""
    records = watch_jsonl(capsys, "-r", sample)
    sessions = [r for r in records if r["record_type"] == "session"]
    (summary,) = [r for r in records if r["record_type"] == "summary"]
    result = analyze(sample)
    assert sorted(s["uid"] for s in sessions) == sorted(s.uid for s in result.sessions)
    inherited = {h.from_session for h in result.handoffs}
    for s in sessions:
        rec = result.session(s["uid"])
        assert s["failure"] == (rec.failure.kind if rec.failure else None), s["uid"]  # inferred ones too
        if s["uid"] not in inherited:
            assert (s["feature"], s["confidence"], s["reasons"]) == (rec.feature, rec.confidence, rec.reasons)
    assert summary["sessions"] == len(result.sessions) == summary["sessions_kept"]
    assert summary["handoffs"] == len(result.handoffs)
    findings = [r["kind"] for r in records if r["record_type"] == "finding" and r["phase"] == "summary"]
    assert findings == [f.kind for f in result.diagnostics.findings]


def test_keep_bounds_what_is_kept_not_what_is_counted(capsys):
    sample = ROOT / "samples" / "mixed-esxi.pcap"
    records = watch_jsonl(capsys, "-r", sample, "--keep", "3")
    (summary,) = [r for r in records if r["record_type"] == "summary"]
    total = len(analyze(sample).sessions)
    assert summary["sessions"] == total > 3 and summary["sessions_kept"] == 3
    assert sum(summary["by_feature"].values()) == total
    assert len([r for r in records if r["record_type"] == "session"]) == total


def test_a_pipe_on_stdin(tmp_path):
    sample = ROOT / "samples" / "mixed-esxi.pcap"
    with open(sample, "rb") as fh:
        r = subprocess.run([sys.executable, "-m", "dissect.port902", "watch", "-r", "-", "-q"], stdin=fh,
                           capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert len(re.findall(r" -> \S+:902 ", text)) == len(analyze(sample).sessions)
    assert "session(s) (" in text


@pytest.mark.tools("tcpdump")
def test_a_missing_interface_is_one_line_exit_2(capsys):
    code = main(["watch", "-i", "nonexistent0", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "nonexistent0" in err[0]


def test_damaged_input_is_said(capsys, tmp_path):
    cut = tmp_path / "cut.pcap"
    cut.write_bytes((ROOT / "samples" / "mixed-esxi.pcap").read_bytes()[:5000])
    records = watch_jsonl(capsys, "-r", cut)
    (weird,) = [r for r in records if r["record_type"] == "weird"]
    assert weird["kind"] == "truncated_file" and weird["offset"] is not None
    assert main(["watch", "-r", str(cut), "-q"]) == 0
    assert "note: truncated_file" in capsys.readouterr().out


def test_hostile_text_on_the_live_line(capsys, tmp_path):
    from dissect.port902.lab.pcapwriter import CaptureWriter
    from dissect.port902.lab.tcp import TcpConversation

    c = TcpConversation("10.0.0.1", 40000, "10.0.0.2", 902, 1_700_000_000.0)
    c.open()
    c.server_send(b"220 VMware Authentication Daemon Version 1.0\x1b[2J\x1b]0;x\x07\r\n")
    c.client_send(b"USER \x1b[31mroot\r\n")
    c.close()
    path = tmp_path / "h.pcap"
    with CaptureWriter(str(path)) as w:
        for ts, pkt in c.packets():
            w.write(ts, pkt)
    assert main(["watch", "-r", str(path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "10.0.0.2:902" in out


# -- live, in a network namespace --------------------------------------------------------------------

def _require(reason: str):
    if os.environ.get("DISSECT902_REQUIRE_TOOLS"):
        pytest.fail(f"DISSECT902_REQUIRE_TOOLS is set but {reason}")
    pytest.skip(reason)


class Reader(threading.Thread):
    """Collects a subprocess' output lines as they come."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.lines = stream, []
        self.start()

    def run(self):
        for raw in self.stream:
            self.lines.append(raw.decode(errors="replace"))

    def wait_for(self, pred, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.lines):
                return True
            time.sleep(0.05)
        return False


@pytest.mark.live
@pytest.mark.tools("tcpdump", "hydra", "openssl")
def test_watch_a_live_interface(authd_server, tmp_path):
    """tcpdump on the namespace's loopback; the lab daemon; a connection to 912 where nothing listens
    (refused), hydra guessing passwords over TLS and an openssl s_client. Session lines and the
    diagnosis' findings (the refused attempt, the rejected logins) come while the capture runs
    (before Ctrl-C), one line per connection the server logged; Ctrl-C ends it with the summary,
    which lists the same findings as printed live."""
    if os.geteuid() != 0:
        _require("network namespaces and tcpdump need root")
    ns = f"d902w{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        inns = ("ip", "netns", "exec", ns)
        from dissect.port902.lab.certs import host_cert

        cert = host_cert("esx-watch.lab.local")
        (tmp_path / "rui.crt").write_bytes(cert.cert_pem)
        (tmp_path / "rui.key").write_bytes(cert.key_pem)
        watch = subprocess.Popen([*inns, sys.executable, "-m", "dissect.port902", "watch", "-i", "lo", "-f", "jsonl"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        out, err = Reader(watch.stdout), Reader(watch.stderr)
        try:
            assert err.wait_for(lambda ls: any("listening on lo" in x for x in ls), 20), err.lines
            server = authd_server("--listen", "127.0.0.1:902", "--cert", tmp_path / "rui.crt", "--key",
                                  tmp_path / "rui.key", "--users", "root:Esx!Root902", "--persona", "esxi8",
                                  "--tls-max", "1.2", "--idle-timeout", "1", prefix=inns)
            refused = subprocess.run([*inns, sys.executable, "-c", "import socket\ntry:\n"
                                      "    socket.create_connection(('127.0.0.1', 912), timeout=5)\n"
                                      "except ConnectionRefusedError:\n    print('refused')"],
                                     capture_output=True, timeout=20)
            assert refused.stdout.strip() == b"refused", refused
            (tmp_path / "u").write_text("root\nadmin\n")
            (tmp_path / "p").write_text("wrong-1\nwrong-2\n")
            hydra = subprocess.run([*inns, "hydra", "-L", str(tmp_path / "u"), "-P", str(tmp_path / "p"), "-s", "902",
                                    "-t", "1", "-I", "-w", "5", "127.0.0.1", "vmauthd"], capture_output=True,
                                   timeout=60)
            assert hydra.returncode == 0, hydra.stdout + hydra.stderr
            subprocess.run([*inns, "timeout", "5", "openssl", "s_client", "-connect", "127.0.0.1:902"],
                           input=b"", capture_output=True, timeout=20)
            time.sleep(5.5)  # past the close linger; one more connection makes the next sweep happen
            subprocess.run([*inns, "timeout", "5", "openssl", "s_client", "-connect", "127.0.0.1:902"],
                           input=b"", capture_output=True, timeout=20)
            logged = server.wait_records(3)
            early = len(logged) - 1  # every connection but the last has been closed for 5 s
            assert out.wait_for(lambda ls: sum('"record_type": "session"' in x for x in ls) >= early, 20), \
                (out.lines, err.lines)


            def live_kinds(lines) -> set:
                docs = (json.loads(x) for x in lines if '"record_type": "finding"' in x)
                return {d["kind"] for d in docs if d["phase"] == "live"}

            deadline = time.monotonic() + 30
            while not {"refused", "login_rejected"} <= live_kinds(out.lines) and time.monotonic() < deadline:
                # packets move capture time on (snapshots and sweeps run on it): a short connection a second
                subprocess.run([*inns, "timeout", "5", "openssl", "s_client", "-connect", "127.0.0.1:902"],
                               input=b"", capture_output=True, timeout=20)
                time.sleep(1)
            assert {"refused", "login_rejected"} <= live_kinds(out.lines), (out.lines[-5:], err.lines)
            assert not any('"record_type": "summary"' in x for x in out.lines)  # still running
            watch.send_signal(signal.SIGINT)
            assert watch.wait(timeout=30) == 0, err.lines
            records = server.stop()
        finally:
            if watch.poll() is None:
                watch.kill()
        out.join(5)
        err.join(5)
        watch.stdout.close()
        watch.stderr.close()
        docs = [json.loads(x) for x in out.lines]
        sessions = [d for d in docs if d["record_type"] == "session"]
        (summary,) = [d for d in docs if d["record_type"] == "summary"]
        authd = [s for s in sessions if s["server"].endswith(":902")]
        assert sorted(int(s["client"].rsplit(":", 1)[1]) for s in authd) == sorted(r["client_port"] for r in records)
        assert [s["state"] for s in sessions if s["server"].endswith(":912")] == ["refused"]
        assert summary["sessions"] == len(records) + 1  # the refused attempt to 912 is not the server's
        assert all(s["feature"] == "NONE" for s in sessions)
        failed = sum(r["logins_failed"] for r in records)
        assert failed >= 2
        final = [d for d in docs if d["record_type"] == "finding" and d["phase"] == "summary"]
        assert {"refused", "login_rejected"} <= {d["kind"] for d in final}, docs[-5:]
        shown = [d for d in docs if d["record_type"] == "finding" and d["phase"] in ("live", "end")]
        assert sorted(map(tuple, (d["key"] for d in shown))) == sorted(map(tuple, (d["key"] for d in final)))
        assert summary["findings_live_not_final"] == 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
