"""The command line as a user meets it: formats, exit codes, hostile and broken input, secrets."""

import csv
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dissect.port902.cli.main import main
from dissect.port902.lab.pcapwriter import CaptureWriter
from dissect.port902.lab.tcp import TcpConversation

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CONSOLE = SAMPLES / "esxi8-console.pcap"
LEGACY = SAMPLES / "legacy-login.pcap"
T0 = 1_700_000_000.0


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_conversations(path, convs):
    packets = sorted(p for c in convs for p in c.packets())
    with CaptureWriter(str(path)) as w:
        for ts, pkt in packets:
            w.write(ts, pkt)
    return path


def test_table_is_the_default(capsys):
    code, out, err = run(capsys, "analyze", CONSOLE)
    assert code == 0
    assert "1 session(s)" in out and "10.20.0.11:902" in out and "ESXi 8.x" in out
    assert err == ""


def test_json_contract(capsys):
    code, out, _ = run(capsys, "analyze", CONSOLE, "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) >= {"sessions", "handoffs", "weird"}
    (s,) = doc["sessions"]
    for field in ("uid", "client", "server", "start", "end", "duration_s", "state", "banner", "tls", "auth",
                  "feature", "bytes", "handoff"):
        assert field in s
    assert s["server"] == "10.20.0.11:902" and s["state"] == "closed"
    assert s["banner"]["version"] == "1.10" and s["banner"]["ssl_required"] is True
    assert "SHA256 supported" in s["banner"]["capabilities"]
    assert s["tls"]["version"] == "TLS 1.2" and s["tls"]["handshakes"] == 2
    assert len(s["tls"]["server_cert_sha1"]) == 59 and s["tls"]["server_cert_sha1"].isupper()
    assert set(s["bytes"]) == {"client_to_server", "server_to_client"}
    assert s["handoff"] is None
    hs = s["tls"]["handshake_details"][0]["client_hello"]
    assert len(hs["ja3_hash"]) == 32 and hs["ja4"].startswith("t1")


def test_records_flag_lists_every_tls_record(capsys):
    _, out, _ = run(capsys, "analyze", CONSOLE, "-f", "json", "--records")
    (s,) = json.loads(out)["sessions"]
    recs = s["tls_records"]
    assert len(recs) == s["tls"]["records_total"]
    assert {r["direction"] for r in recs} == {"client_to_server", "server_to_client"}
    assert all(r["length"] > 0 for r in recs)


def test_jsonl_csv_parquet(capsys, tmp_path):
    _, out, _ = run(capsys, "analyze", SAMPLES / "classic-esx-handoff.pcap", "-f", "jsonl")
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["record_type"] for x in lines].count("session") == 2
    assert [x["record_type"] for x in lines].count("handoff") == 1
    _, out, _ = run(capsys, "analyze", SAMPLES / "classic-esx-handoff.pcap", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2 and {r["resp_port"] for r in rows} == {"902", "903"}
    target = tmp_path / "r.parquet"
    assert run(capsys, "analyze", CONSOLE, "-f", "parquet", "--table", "tls_records", "-o", target)[0] == 0
    df = pd.read_parquet(target)
    assert len(df) > 100 and set(df["direction"]) == {"client_to_server", "server_to_client"}


def test_output_file(capsys, tmp_path):
    target = tmp_path / "out.json"
    code, out, _ = run(capsys, "analyze", CONSOLE, "-f", "json", "-o", target)
    assert code == 0 and out == ""
    assert json.loads(target.read_text())["sessions"]


@pytest.mark.parametrize("content", [b"", b"not a capture at all", b"\xa1\xb2"])
def test_unreadable_input_exits_2_with_one_line(capsys, tmp_path, content):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)
    code, out, err = run(capsys, "analyze", bad)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "bad.pcap" in err and "Traceback" not in err


def test_missing_file_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "analyze", tmp_path / "nope.pcap")
    assert code == 2 and "cannot open" in err


def test_no_arguments_teaches(capsys):
    code, out, _ = run(capsys)
    assert code == 2 and "analyze" in out


def test_help_has_examples():
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "--help"])
    assert exc.value.code == 0


def test_describe_lists_columns(capsys):
    code, out, _ = run(capsys, "analyze", "--describe", "sessions")
    assert code == 0 and "conn_state" in out and "handoff_gap_s" in out


def test_secrets_redacted_unless_asked(capsys):
    _, plain, _ = run(capsys, "analyze", LEGACY, "-f", "json")
    _, shown, _ = run(capsys, "analyze", LEGACY, "-f", "json", "--show-secrets")
    hidden = [d["text"] for s in json.loads(plain)["sessions"] for d in s["dialogue"] if d["command"] == "PASS"]
    revealed = [d["text"] for s in json.loads(shown)["sessions"] for d in s["dialogue"] if d["command"] == "PASS"]
    assert hidden and all(t == "PASS <redacted>" for t in hidden)
    assert all(t != "PASS <redacted>" for t in revealed) and len(revealed) == len(hidden)
    raw = LEGACY.read_bytes()
    for t in revealed:  # what --show-secrets reveals is really on the wire
        assert t.encode() in raw


HOSTILE = (b"220 VMware Authentication Daemon Version 1.10: SSL Required\x1b[2J\x1b[31m, "
           b"\x1b]0;owned\x07MKSDisplayProtocol:VNC \x9b1m\xe2\x80\xae\r\n")


def hostile_capture(tmp_path):
    c = TcpConversation("10.0.0.1", 40000, "10.0.0.2", 902, T0)
    c.open()
    c.server_send(HOSTILE)
    c.client_send(b"USER \x1b[5mroot\r\n")
    c.server_send(b"331 \x1b[8mPassword required\r\n")
    c.close()
    return write_conversations(tmp_path / "hostile.pcap", [c])


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "jsonl"])
def test_hostile_banner_cannot_reach_the_terminal_raw(capsys, tmp_path, fmt):
    path = hostile_capture(tmp_path)
    code, out, err = run(capsys, "analyze", path, "-f", fmt)
    assert code == 0
    for ch in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert ch not in out and ch not in err
    if fmt == "csv":
        assert "\\x1b[5mroot" in out  # the USER argument, shown escaped
    if fmt == "json":
        s = json.loads(out)["sessions"][0]
        assert s["banner"]["text"].startswith("220 VMware") and "\x1b" in s["banner"]["text"]  # data intact


def test_garbage_on_902_is_weird_not_a_crash_and_strict_exits_1(capsys, tmp_path):
    rnd = random.Random(7)
    c = TcpConversation("10.0.0.1", 40001, "10.0.0.2", 902, T0)
    c.open()
    c.server_send(bytes(rnd.getrandbits(8) for _ in range(3000)))
    c.client_send(bytes(rnd.getrandbits(8) for _ in range(500)))
    c.close()
    path = write_conversations(tmp_path / "garbage.pcap", [c])
    code, out, err = run(capsys, "analyze", path, "-f", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["sessions"][0]["state"] == "closed" and doc["weird"]
    assert run(capsys, "analyze", path, "--strict")[0] == 1
    assert run(capsys, "analyze", CONSOLE, "--strict")[0] == 0


def test_truncated_capture_reports_offset_and_keeps_the_rest(capsys, tmp_path):
    data = CONSOLE.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    code, out, _ = run(capsys, "analyze", cut, "-f", "json")
    assert code == 0
    doc = json.loads(out)
    (w,) = [w for w in doc["weird"] if w["kind"] == "truncated_file"]
    assert 0 < w["offset"] < len(data) * 2 // 3
    (s,) = doc["sessions"]
    assert s["banner"] and s["tls"]["handshakes"] == 2  # everything before the cut is analysed


def test_many_flows_stay_sessions(tmp_path):
    """20k unanswered SYNs (a scan of 902) become 20k no_answer sessions, nothing lost."""
    import struct

    from dissect.port902.analysis import analyze

    path = tmp_path / "scan.pcap"
    with CaptureWriter(str(path)) as w:
        for i in range(20_000):
            src = bytes([10, 1, (i >> 8) & 255, i & 255])
            tcp = struct.pack("!HHIIBBHHH", 30000 + i % 30000, 902, i, 0, 0x50, 0x02, 1024, 0, 0)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, src, bytes([10, 2, 0, 1]))
            w.write(T0 + i * 0.001, ip + tcp)
    result = analyze(path)
    assert len(result.sessions) == 20_000
    assert {s.state for s in result.sessions} == {"no_answer"}
    assert sum(s.syn_count for s in result.sessions) == 20_000


def test_console_script_runs_when_piped(tmp_path):
    """As a user pipes it: no progress bar noise, exit 0, valid JSON on stdout."""
    proc = subprocess.run([sys.executable, "-m", "dissect.port902.cli.main", "analyze", str(CONSOLE), "-f", "json"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "80"})
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(proc.stdout)["sessions"]


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl"])
def test_closed_stdout_is_one_line_not_a_traceback(fmt):
    """``dissect902 analyze x >&-``: Python starts with sys.stdout None; every format (the streamed
    jsonl too, which writes while it reads) says so in one line and exits 2."""
    proc = subprocess.run(["sh", "-c", f'exec "$0" -m dissect.port902.cli.main analyze "$1" -f {fmt} >&-',
                           sys.executable, str(CONSOLE)], capture_output=False, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "dissect902 analyze: error: cannot write output: standard output is closed (give -o FILE)"]


def test_a_directory_of_sensors_is_read_once(tmp_path):
    """``analyze samples/``: each sensor directory's files once (the chains the command line built
    were discovered a second time, doubling every packet of samples/doctor)."""
    from dissect.port902.analysis import analyze
    from dissect.port902.archive import discover

    out = tmp_path / "a.json"
    assert main(["analyze", str(SAMPLES), "-f", "json", "-o", str(out), "-q"]) in (0, 1)
    doc = json.loads(out.read_text())
    ref = analyze(discover([str(SAMPLES)], "dir"))
    assert [(c["packets"], len(c["files"])) for c in doc["captures"]] == [
        (c.packets, len(c.files)) for c in ref.captures]
    on_disk = len(list((SAMPLES / "doctor").glob("*.pcap*")))
    assert [len(c["files"]) for c in doc["captures"] if c["path"].endswith("doctor")] == [on_disk]
    assert len(doc["sessions"]) == len(ref.sessions)


def _closed(shell: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", shell, sys.executable, str(CONSOLE)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def test_closed_stderr_or_stdout_with_an_output_file(tmp_path):
    out = tmp_path / "o.json"
    # standard error closed: the output is written and the exit code is the command's
    proc = _closed(f'exec "$0" -m dissect.port902.cli.main analyze "$1" -f json -o {out} 2>&-')
    assert proc.returncode == 0 and json.loads(out.read_text())["sessions"]
    proc = _closed('exec "$0" -m dissect.port902.cli.main doctor "$1" 2>&-')
    assert proc.returncode == 0 and "problem" in proc.stdout
    out.unlink()
    # standard output closed, the result into a file: written, exit 0, no traceback
    proc = _closed(f'exec "$0" -m dissect.port902.cli.main analyze "$1" -f json -o {out} >&-')
    assert proc.returncode == 0 and proc.stderr == "" and json.loads(out.read_text())["sessions"]
    proc = _closed('exec "$0" -m dissect.port902.cli.main watch -r "$1" >&-')
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "dissect902 watch: error: cannot write output: standard output is closed")


def test_a_usage_error_leaves_the_output_file_alone(tmp_path):
    keep = tmp_path / "keep.csv"
    keep.write_text("precious\n")
    assert main(["analyze", str(CONSOLE), "-f", "csv", "--table", "findings", "--no-diagnostics",
                 "-o", str(keep)]) == 2
    assert keep.read_text() == "precious\n"
