"""A new user's first hour (issue 14): every command fails in one line with exit 2, writes where a
user expects, analyses the readable captures among unreadable ones, and the doctor never gives a
false all-clear."""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from dissect.port902.analysis import analyze
from dissect.port902.cli.main import main
from dissect.port902.lab.ip import pack_address, udp_packet
from dissect.port902.lab.pcapwriter import CaptureWriter
from dissect.port902.output import sink

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SMALL = SAMPLES / "doctor" / "refused.pcap"      # one refused attempt: a problem
CLEAN = SAMPLES / "doctor" / "clean.pcap"        # a console that opened
MIXED = SAMPLES / "mixed-esxi.pcap"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, prog: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def records(path: Path) -> list[tuple[int, int]]:
    """(offset, captured length) of every record of a little-endian pcap."""
    data = path.read_bytes()
    out, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        out.append((off, incl))
        off += 16 + incl
    return out


# -- output paths ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["analyze"], ["analyze", "-f", "json"], ["analyze", "-f", "csv"],
                                     ["doctor"], ["doctor", "-f", "json"]])
def test_output_onto_a_directory_is_one_line(capsys, tmp_path, command):
    code, out, err = run(capsys, *command, SMALL, "-o", tmp_path)
    assert code == 2 and out == ""
    assert "is a directory" in one_error_line(err, f"dissect902 {command[0]}")


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet"])
def test_output_path_ending_in_a_slash_names_a_directory(capsys, tmp_path, fmt):
    """`-o out/` that does not exist yet is a folder the user meant, not a file named out."""
    code, out, err = run(capsys, "analyze", SMALL, "-f", fmt, "-o", f"{tmp_path}/new/")
    assert code == 2 and "is a directory" in one_error_line(err, "dissect902 analyze")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", [["analyze", "-f", "json"], ["doctor"]])
def test_output_into_missing_directories_creates_them(capsys, tmp_path, command):
    target = tmp_path / "new" / "deeper" / "out.txt"
    code, _out, err = run(capsys, *command, SMALL, "-o", target)
    assert code in (0, 1) and "error" not in err
    assert target.stat().st_size > 0


@pytest.mark.parametrize("place", ["/proc/dissect902-test/out.json", "/proc/dissect902-test.json"])
def test_unwritable_places_are_one_line(capsys, place):
    for command in ("analyze", "doctor"):
        code, out, err = run(capsys, command, SMALL, "-o", place)
        assert code == 2 and out == ""
        assert "/proc/dissect902-test" in one_error_line(err, f"dissect902 {command}")


def test_write_error_while_writing_is_one_line(capsys):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    code, _out, err = run(capsys, "analyze", SMALL, "-f", "json", "-o", "/dev/full")
    assert code == 2 and "No space left" in one_error_line(err, "dissect902 analyze")


def test_output_under_a_file_is_refused_before_the_analysis(capsys, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ran = []
    monkeypatch.setattr("dissect.port902.cli.runner.analyze", lambda *a, **k: ran.append(1))
    code, _out, err = run(capsys, "analyze", SMALL, "-o", blocker / "out.json")
    assert code == 2 and not ran
    assert "not a directory" in one_error_line(err, "dissect902 analyze")


@pytest.mark.parametrize("sub", ["generate", "scenario"])
def test_lab_onto_an_existing_file_is_refused(capsys, tmp_path, sub):
    blocker = tmp_path / "lab.txt"
    blocker.write_text("keep me")
    argv = ["lab", "generate", "-n", "1"] if sub == "generate" else ["lab", "scenario", "unanswered_syn"]
    code, out, err = run(capsys, *argv, "-o", blocker)
    assert code == 2 and blocker.read_text() == "keep me"
    assert "not a directory" in one_error_line(err, f"dissect902 lab {sub}")


def test_lab_scenario_accepts_what_a_user_types(capsys, tmp_path):
    code, out, err = run(capsys, "lab", "scenario", "Unanswered-SYN.pcap", "-o", tmp_path / "new")
    assert code == 0, err
    assert Path(json.loads(out)["file"]).name == "unanswered-syn.pcap"


def test_lab_scenario_without_a_name_says_so(capsys):
    code, _out, err = run(capsys, "lab", "scenario")
    assert code == 2 and "mixed_esxi" in one_error_line(err, "dissect902 lab scenario")


def test_plot_creates_parent_directories(capsys, tmp_path):
    target = tmp_path / "charts" / "site.png"
    code, out, err = run(capsys, "plot", CLEAN, "--feature", "mks", "-o", target)
    assert code == 0, err
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_onto_a_directory_is_one_line(capsys, tmp_path):
    (tmp_path / "x.png").mkdir()
    code, _out, err = run(capsys, "plot", CLEAN, "-o", tmp_path / "x.png")
    assert code == 2 and "is a directory" in one_error_line(err, "dissect902 plot")


def test_open_output_names_the_file_the_os_refused(tmp_path):
    target = tmp_path / "ro" / "out.txt"
    target.parent.mkdir()
    target.parent.chmod(0o500)
    try:
        if os.access(target.parent, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(sink.OutputError, match="Permission denied"):
            sink.output_file(target)
    finally:
        target.parent.chmod(0o700)


# -- parquet without pyarrow -------------------------------------------------------------------------------------

def test_parquet_without_pyarrow_names_the_extra(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    ran = []
    monkeypatch.setattr("dissect.port902.cli.runner.analyze", lambda *a, **k: ran.append(1))
    code, _out, err = run(capsys, "analyze", SMALL, "-f", "parquet", "-o", tmp_path / "x.parquet")
    assert code == 2 and not ran
    assert "pip install 'dissect902[parquet]'" in one_error_line(err, "dissect902 analyze")
    assert not (tmp_path / "x.parquet").exists()


def test_write_parquet_without_pyarrow_raises_missing_extra(tmp_path, monkeypatch):
    from dissect.port902.errors import MissingExtra
    from dissect.port902.output.render import write_parquet

    result = analyze(SMALL, observers=[])
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtra, match=r"dissect902\[parquet\]"):
        write_parquet(result, str(tmp_path / "x.parquet"))
    with pytest.raises(ImportError):  # still an ImportError to code that knows nothing of us
        write_parquet(result, str(tmp_path / "x.parquet"))


def test_readme_mentions_the_parquet_extra():
    assert "dissect902[parquet]" in (ROOT / "README.md").read_text()


# -- one unreadable capture among several ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_readable_captures_are_analysed_beside_an_unreadable_one(capsys, tmp_path, fmt):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture at all")
    alone = json.loads(run(capsys, "analyze", SMALL, "-f", "json")[1])
    code, out, err = run(capsys, "analyze", bad, SMALL, "-f", fmt)
    assert code == 2
    assert one_error_line(err.replace("dissect902: 1 weird finding(s); see the 'weird' list\n", ""),
                          "dissect902 analyze").endswith("(it starts with text 'this is not a ca')")
    if fmt == "json":
        doc = json.loads(out)
        sessions, weird = doc["sessions"], doc["weird"]
    else:
        rows = [json.loads(line) for line in out.splitlines()]
        sessions = [r for r in rows if r["record_type"] == "session"]
        weird = [r for r in rows if r["record_type"] == "weird"]
    assert [s["uid"] for s in sessions] == [s["uid"] for s in alone["sessions"]] and sessions
    unreadable = [w for w in weird if w["kind"] == "unreadable_capture"]
    assert len(unreadable) == 1 and unreadable[0]["source"] == str(bad)


def test_only_unreadable_captures_give_no_output(capsys, tmp_path):
    paths = [tmp_path / "a.pcap", tmp_path / "b.pcap"]
    paths[0].write_bytes(b"")
    paths[1].write_bytes(b"\x1f\x8b garbage")
    code, out, err = run(capsys, "analyze", *paths)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 2


def test_doctor_frames_stay_with_their_capture_beside_an_unreadable_one(capsys, tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"garbage!" * 4)
    code, out, err = run(capsys, "doctor", bad, SMALL, "-f", "json")
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2
    sources = {f["source"] for f in doc["diagnostics"]["findings"]}
    assert sources == {str(SMALL)}


# -- doctor: no false all-clear ----------------------------------------------------------------------------------

def cut(src: Path, dst: Path, size: int) -> Path:
    dst.write_bytes(src.read_bytes()[:size])
    return dst


def test_doctor_on_a_clean_capture_still_gives_the_all_clear(capsys):
    code, out, _err = run(capsys, "doctor", CLEAN)
    assert code == 0 and "No problem found." in out


def test_doctor_on_a_truncated_capture_is_capture_damaged(capsys, tmp_path):
    half = cut(CLEAN, tmp_path / "half.pcap", CLEAN.stat().st_size // 2 + 7)
    code, out, _err = run(capsys, "doctor", half)
    assert code == 3
    assert "No problem found" not in out and "Capture damaged" in out and "no all-clear" in out
    doc = json.loads(run(capsys, "doctor", half, "-f", "json")[1])
    assert doc["verdict"] == "capture_damaged" and doc["exit_code"] == 3
    assert doc["damage"][0]["kind"] == "truncated_file" and doc["damage"][0]["offset"] > 0


def test_doctor_on_a_corrupt_record_midway_is_capture_damaged(capsys, tmp_path):
    recs = records(CLEAN)
    middle = len(recs) // 2
    data = bytearray(CLEAN.read_bytes())
    struct.pack_into("<I", data, recs[middle][0] + 8, 0x7FFFFFFF)
    bad = tmp_path / "corrupt.pcap"
    bad.write_bytes(bytes(data))
    doc = json.loads(run(capsys, "doctor", bad, "-f", "json")[1])
    assert doc["verdict"] == "capture_damaged" and doc["exit_code"] == 3
    assert doc["damage"][0]["frame"] == middle + 1
    assert doc["captures"][0]["packets"] == middle


def test_doctor_on_a_cut_short_gzip_is_capture_damaged(capsys, tmp_path):
    packed = gzip.compress(CLEAN.read_bytes())
    gz = tmp_path / "cut.pcap.gz"
    gz.write_bytes(packed[: len(packed) * 2 // 3])
    code, out, _err = run(capsys, "doctor", gz)
    assert code == 3 and "No problem found" not in out


def test_doctor_with_problems_and_damage_reports_both(capsys, tmp_path):
    recs = records(SMALL)
    short = cut(SMALL, tmp_path / "refused-cut.pcap", recs[-1][0] + 20)
    code, out, _err = run(capsys, "doctor", short)
    assert code == 1 and "problem(s) found" in out and "Beware, capture damaged" in out


def test_doctor_on_nothing_relevant_is_nothing_to_check(capsys, tmp_path):
    path = tmp_path / "one-udp.pcap"
    with CaptureWriter(str(path)) as w:
        w.write(1_700_000_000.0, udp_packet(pack_address("10.0.0.1"), pack_address("10.0.0.2"), 5000, 6000, b"hello"))
    code, out, _err = run(capsys, "doctor", path)
    assert code == 4 and "Nothing to check" in out and "No problem found" not in out
    assert json.loads(run(capsys, "doctor", path, "-f", "json")[1])["verdict"] == "nothing_to_check"


def test_doctor_help_documents_every_exit_code(capsys):
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("0 no problem found", "1 problems found", "2 bad usage", "3 capture damaged",
                   "4 nothing to check"):
        assert phrase in text


def test_doctor_wraps_at_the_terminal_width(capsys, monkeypatch):
    widths = {}
    for columns in ("70", "150"):
        monkeypatch.setenv("COLUMNS", columns)
        _code, out, _err = run(capsys, "doctor", SMALL)
        widths[columns] = max(len(line) for line in out.splitlines() if not line.startswith(str(SMALL)))
    assert widths["70"] <= 70 < widths["150"] <= 150


# -- pipes -------------------------------------------------------------------------------------------------------

class ClosedPipe(io.StringIO):
    """Standard output whose reader went away after ``keep`` characters (``| head``)."""

    def __init__(self, keep: int):
        super().__init__()
        self.keep = keep

    def write(self, text: str) -> int:
        if self.tell() + len(text) > self.keep:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


@pytest.mark.parametrize("capture, expected", [(SMALL, 1), (CLEAN, 0)])
def test_doctor_exit_code_survives_a_closed_pipe(monkeypatch, capture, expected):
    monkeypatch.setattr(sys, "stdout", ClosedPipe(40))
    assert main(["doctor", str(capture)]) == expected


def test_a_closed_pipe_leaves_no_traceback():
    script = ("import sys; from dissect.port902.cli.main import main; "
              f"sys.exit(main(['analyze', {str(MIXED)!r}, '-f', 'jsonl', '--records']))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["bash", "-c", f'{sys.executable} -c "{script}" | head -c 10 >/dev/null; '
                           'echo ${PIPESTATUS[0]}'], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "0", done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


# -- uids come from the connection -------------------------------------------------------------------------------

def test_uids_do_not_depend_on_the_file_name_or_compression(tmp_path):
    plain = tmp_path / "x.pcap"
    plain.write_bytes(SMALL.read_bytes())
    packed = tmp_path / "elsewhere" / "renamed.pcap.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(SMALL.read_bytes()))
    first = [s.uid for s in analyze(plain, observers=[]).sessions]
    assert first and first == [s.uid for s in analyze(packed, observers=[]).sessions]
    assert first == [s.uid for s in analyze(SMALL, observers=[]).sessions]


def test_uids_are_unique_within_a_run(tmp_path):
    copies = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        copies.append(tmp_path / folder / "same.pcap")
        copies[-1].write_bytes(MIXED.read_bytes())
    result = analyze(copies, observers=[])
    uids = [s.uid for s in result.sessions]
    assert len(uids) == len(set(uids)) and len(uids) % 2 == 0
    assert uids[: len(uids) // 2] == [s.uid for s in analyze(MIXED, observers=[]).sessions]


def test_uids_differ_for_connections_that_differ_only_in_isn():
    from dissect.port902.net.flows import connection_uid

    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    assert connection_uid(a, 5000, b, 902, 1.0, 1) != connection_uid(a, 5000, b, 902, 1.0, 2)
    assert connection_uid(a, 5000, b, 902, 1.0, 1) != connection_uid(a, 5000, b, 902, 1.000001, 1)


# -- the analyze table fits the terminal -------------------------------------------------------------------------

@pytest.mark.parametrize("width", [60, 80, 100, 132])
def test_session_table_fits_the_width(width):
    from dissect.port902.output.render import render_table

    result = analyze(MIXED, observers=[])
    full, fitted = io.StringIO(), io.StringIO()
    render_table(result, full, width=None)
    render_table(result, fitted, width=width)
    grid = fitted.getvalue().split(" session(s)\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert max(len(line) for line in grid[:-1]) <= width
    assert max(len(line) for line in full.getvalue().splitlines()) > width
    header = grid[0].split()
    for kept in ("client", "server", "state", "feature"):
        assert kept in header
    assert "hidden to fit" in grid[-1]
    assert all(f"\n{i}  " in "\n" + fitted.getvalue() or f"\n{i} " in "\n" + fitted.getvalue()
               for i in range(1, len(result.sessions) + 1))


def test_session_table_in_a_pipe_keeps_every_column():
    from dissect.port902.output.render import render_table

    out = io.StringIO()
    render_table(analyze(MIXED, observers=[]), out)
    assert "auth" in out.getvalue().split(" session(s)\n", 1)[1].splitlines()[0]
    assert "hidden to fit" not in out.getvalue()


# -- doctor arithmetic and wording at scale ----------------------------------------------------------------------

def test_doctor_headline_counts_what_the_cap_left_out(capsys, tmp_path):
    from dissect.port902.lab.tcp import TcpConversation

    packets = []
    for i in range(60):  # 60 clients, each refused by its own host: 60 findings of one kind
        conv = TcpConversation(f"10.1.0.{i + 1}", 40000 + i, f"10.2.0.{i + 1}", 902, 1000.0 + i)
        conv.refuse()
        packets += conv.packets()
    path = tmp_path / "flood.pcap"
    with CaptureWriter(str(path)) as w:
        for ts, pkt in sorted(packets, key=lambda p: p[0]):
            w.write(ts, pkt)
    code, out, _err = run(capsys, "doctor", path)
    doc = json.loads(run(capsys, "doctor", path, "-f", "json")[1])
    listed = len([f for f in doc["diagnostics"]["findings"] if f["severity"] == "problem"])
    hidden = next(c["problems"] for c in doc["diagnostics"]["checked"] if c["check"] == "suppressed")
    assert code == 1 and listed + hidden == 60 and hidden > 0
    assert f"{listed} problem(s) found ({hidden} more of the same kinds not listed" in out
    checked = out.split("Checked:\n", 1)[1]
    row = next(line for line in checked.splitlines() if line.strip().startswith("suppressed"))
    assert "not listed" in row and f"{hidden} similar" in row  # never "…problem(s)35 similar…"
    for line in checked.splitlines():
        assert "problem(s)" not in line or " problem(s) " in line + " "


def test_reconnect_gap_is_never_negative():
    from dissect.port902.infer.diagnose.checks.reconnect import _later

    assert _later(2.5) == "2.5 s later"
    assert "-" not in _later(-0.6) and "0.6 s before" in _later(-0.6)


# -- doctor and generic TLS clients ------------------------------------------------------------------------------

BANNER_SSL = (b"220 VMware Authentication Daemon Version 1.10: SSL Required, ServerDaemonProtocol:SOAP, "
              b"MKSDisplayProtocol:VNC , VMXARGS supported, NFCSSL supported/t\r\n")
BANNER_PLAIN = b"220 VMware Authentication Daemon Version 1.0, ServerDaemonProtocol:SOAP, MKSDisplayProtocol:VNC\r\n"


def generic_tls_client(path: Path, *, banner: bytes, hello_first: bool, delay: float = 0.2,
                       server_answers_tls: bool = True, rtt: float = 0.02) -> Path:
    """A client that sends a ClientHello at once (``hello_first``) or ``delay`` s after the greeting,
    and hangs up after the server's flight without a word (what openssl s_client does)."""
    from dissect.port902.lab.certs import host_cert
    from dissect.port902.lab.tcp import TcpConversation
    from dissect.port902.lab.tlsbio import TlsPair

    pair = TlsPair(host_cert("esx-gen.lab"), "1.2")
    flights = pair.handshake()
    conv = TcpConversation("10.7.0.9", 50123, "10.7.0.1", 902, 1_700_000_000.0, rtt=rtt)
    t = conv.open()
    if hello_first:
        t = conv.client_send(flights[0][1], at=t)
        t = conv.server_send(banner, at=t + 0.001)
    else:
        t = conv.server_send(banner, at=t + 0.001)
        t = conv.client_send(flights[0][1], at=t + delay)
    if server_answers_tls:
        t = conv.server_send(flights[1][1], at=t + 0.002)
    else:
        t = conv.server_send(b"530 Please login with USER and PASS.\r\n", at=t + 0.002)
    conv.close(at=t + 0.0005, by="client")
    with CaptureWriter(str(path)) as w:
        for ts, pkt in conv.packets():
            w.write(ts, pkt)
    return path


def doctor_kinds(capsys, path: Path) -> list[str]:
    doc = json.loads(run(capsys, "doctor", path, "-f", "json")[1])
    return [f["kind"] for f in doc["diagnostics"]["findings"] if f["severity"] == "problem"]


def test_tls_before_the_greeting_is_not_a_rejected_certificate(capsys, tmp_path):
    early = generic_tls_client(tmp_path / "early.pcap", banner=BANNER_SSL, hello_first=True)
    assert doctor_kinds(capsys, early) == ["tls_before_greeting"]
    _code, out, _err = run(capsys, "doctor", early)
    assert "before the authd greeting" in out and "certificate was not the problem" in out
    # the same client reading the greeting first and hanging up after the certificate: a rejection
    late = generic_tls_client(tmp_path / "late.pcap", banner=BANNER_SSL, hello_first=False)
    assert doctor_kinds(capsys, late) == ["certificate_rejected"]


def test_a_hello_right_on_the_heels_of_the_greeting_is_doubted(capsys, tmp_path):
    # on a LAN (the 5 ms window): the ClientHello 0.2 ms after the greeting reached the client
    racing = generic_tls_client(tmp_path / "race.pcap", banner=BANNER_SSL, hello_first=False, delay=0.0002,
                                rtt=0.001)
    doc = json.loads(run(capsys, "doctor", racing, "-f", "json")[1])
    (finding,) = [f for f in doc["diagnostics"]["findings"] if f["severity"] == "problem"]
    assert finding["kind"] == "certificate_rejected" and finding["likelihood"] == 0.5
    assert "never read the greeting" in finding["detail"]


def test_tls_offered_to_a_daemon_without_ssl(capsys, tmp_path):
    path = generic_tls_client(tmp_path / "plain.pcap", banner=BANNER_PLAIN, hello_first=False,
                              server_answers_tls=False)
    assert doctor_kinds(capsys, path) == ["tls_to_plain_daemon"]
    _code, out, _err = run(capsys, "doctor", path)
    assert "530 Please login" in out and "No problem found" not in out


# -- doctor on several captures ----------------------------------------------------------------------------------

DNS_NO_ADDRESS = SAMPLES / "doctor" / "dns-no-address.pcap"


def console_from(path: Path, client: str, at: float) -> Path:
    from dissect.port902.lab.tcp import TcpConversation

    conv = TcpConversation(client, 51000, "10.40.0.99", 902, at)
    conv.syn_unanswered(retries=(1.0,))
    with CaptureWriter(str(path)) as w:
        for ts, pkt in conv.packets():
            w.write(ts, pkt)
    return path


def dns_finding(capsys, *paths):
    doc = json.loads(run(capsys, "doctor", *paths, "-f", "json")[1])
    return next(f for f in doc["diagnostics"]["findings"] if f["kind"] == "dns_no_address")


def test_lookups_are_not_merged_across_captures(capsys, tmp_path):
    alone = dns_finding(capsys, DNS_NO_ADDRESS)
    other = tmp_path / "other.pcap"
    other.write_bytes(DNS_NO_ADDRESS.read_bytes())  # the same lookups, in another file
    both = dns_finding(capsys, DNS_NO_ADDRESS, other)
    assert both["evidence_frames"] == alone["evidence_frames"]
    assert both["detail"] == alone["detail"]


def test_correlation_across_captures_only_where_they_overlap(capsys, tmp_path):
    alone = dns_finding(capsys, DNS_NO_ADDRESS)
    client = alone["hosts"][0]
    t0 = alone["first_ts"]
    same_time = console_from(tmp_path / "esxi-side.pcap", client, t0 + 0.5)  # inside the DNS capture's span
    next_day = console_from(tmp_path / "next-day.pcap", client, t0 + 86400.0)
    near = dns_finding(capsys, DNS_NO_ADDRESS, same_time)
    assert "in esxi-side.pcap, which covers the same time" in near["detail"]
    assert near["likelihood"] < alone["likelihood"]
    far = dns_finding(capsys, DNS_NO_ADDRESS, next_day)
    assert far["detail"] == alone["detail"] and far["likelihood"] == alone["likelihood"]


# -- what was found instead of a capture, in words ---------------------------------------------------------------

@pytest.mark.parametrize("content, words", [
    (b"", "the file is empty (0 bytes)"),
    (gzip.compress(b"hello, this is text and not a capture"), "gzip-compressed, but what it holds is not a pcap"),
    (gzip.compress(b""), "gzip-compressed, but it holds nothing"),
    (b"\x1f\x8b\x08" + b"\x00" * 5 + b"garbage that does not inflate", "gzip-compressed, but the compressed data "
                                                                        "is damaged"),
    (b"\x00\x01\x02\x03garbage", "not a pcap or pcapng capture (it starts with bytes 00010203)"),
])
def test_unreadable_files_say_what_they_are(capsys, tmp_path, content, words):
    path = tmp_path / "input.pcap"
    path.write_bytes(content)
    code, _out, err = run(capsys, "analyze", path)
    assert code == 2 and words in one_error_line(err, "dissect902 analyze")


def test_a_damaged_gzip_names_real_offsets(tmp_path):
    packed = gzip.compress(CLEAN.read_bytes())
    cut_at = len(packed) // 2
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(packed[:cut_at])
    weird = [w for w in analyze(path, observers=[]).weird if "gzip" in w.detail]
    assert len(weird) == 1
    w = weird[0]
    assert 0 < w.offset < CLEAN.stat().st_size
    assert f"after {w.offset} decompressed bytes" in w.detail and f"byte {cut_at} of {cut_at}" in w.detail


def test_feature_counts_are_integers_like_the_sessions_frame():
    result = analyze(MIXED, observers=[])
    feats, sessions = result.features_frame(), result.sessions_frame()
    for col in ("handshakes", "tls1_client_msgs", "later_client_msgs", "c2s_bytes", "s2c_bytes"):
        assert str(feats[col].dtype) == "Int64", col
    assert feats["c2s_bytes"].tolist() == sessions["orig_bytes"].tolist()
    assert str(sessions["orig_bytes"].dtype) == "Int64"
    assert str(feats["later_client_regularity"].dtype) == "float64"  # shares and rates stay floats


def test_a_line_in_clear_to_an_ssl_daemon_is_a_finding(capsys, tmp_path):
    from dissect.port902.lab.tcp import TcpConversation

    conv = TcpConversation("10.8.0.6", 40002, "10.8.0.1", 902, 1_700_000_000.0, rtt=0.01)
    t = conv.open()
    t = conv.server_send(BANNER_SSL, at=t)
    t = conv.client_send(b"AUTH TLS\r\n", at=t + 0.01)
    conv.close(at=t + 0.05, by="server")
    path = tmp_path / "auth-tls.pcap"
    with CaptureWriter(str(path)) as w:
        for ts, pkt in conv.packets():
            w.write(ts, pkt)
    assert doctor_kinds(capsys, path) == ["clear_to_ssl_daemon"]
    (finding,) = json.loads(run(capsys, "doctor", path, "-f", "json")[1])["diagnostics"]["findings"]
    assert finding["likelihood"] == 0.80 and "probe" not in finding["detail"]
    _code, out, _err = run(capsys, "doctor", path)
    assert "'AUTH TLS' in clear" in " ".join(out.split())


def test_a_hang_up_cites_the_fin_not_the_last_ack(capsys, tmp_path):
    late = generic_tls_client(tmp_path / "late.pcap", banner=BANNER_SSL, hello_first=False)
    result = analyze(late, observers=[])
    s = result.sessions[0]
    fin = s.fin_frames[0]
    assert fin is not None and fin < s.last_frame  # the server's FIN/ACK and the last ACK come after
    doc = json.loads(run(capsys, "doctor", late, "-f", "json")[1])
    (finding,) = [f for f in doc["diagnostics"]["findings"] if f["kind"] == "certificate_rejected"]
    assert f"FIN from the client in frame {fin}," in finding["detail"]


def test_logins_rejected_inside_tls_are_a_finding_naming_the_replies(capsys):
    """On an SSL daemon the 530s are encrypted: the doctor reports the rejections the record sizes
    show, names the reply records, and calls five or more guesses password guessing (0.30). The
    sessions it names are those the capture's labels say failed to log in."""
    doc = json.loads(run(capsys, "doctor", MIXED, "-f", "json")[1])
    (login,) = [f for f in doc["diagnostics"]["findings"] if f["kind"] == "login_rejected"]
    labels = json.loads(MIXED.with_name("mixed-esxi.labels.json").read_text())
    failed = {(c["client"]["ip"], c["client"]["port"]) for c in labels["connections"]
              if c.get("expected", {}).get("login") == "failed" and c["transport"] == "tls"}
    sessions = {s["uid"]: s for s in json.loads(run(capsys, "analyze", MIXED, "-f", "json")[1])["sessions"]}
    named = {tuple(sessions[u]["client"].rsplit(":", 1)) for u in login["related_uids"]}
    assert {(ip, int(port)) for ip, port in named} == failed
    assert login["likelihood"] == 0.30 and "password guessing" in login["title"]
    assert "inside TLS" in login["detail"] and login["evidence_frames"]


def test_a_line_in_clear_from_a_client_that_speaks_tls_is_a_probe(capsys):
    """10.50.66.6 sends 'TEST' in clear to an SSL daemon after TLS logins elsewhere: a scanner's
    probe, ranked as one (0.30), not a client that cannot start TLS (0.80, as for AUTH TLS alone)."""
    doc = json.loads(run(capsys, "doctor", MIXED, "-f", "json")[1])
    (clear,) = [f for f in doc["diagnostics"]["findings"] if f["kind"] == "clear_to_ssl_daemon"]
    assert clear["likelihood"] == 0.30 and "is a probe" in clear["detail"]
