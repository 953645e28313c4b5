"""`dissect902 doctor` and the Diagnostics observer, proven on the lab's failure captures."""

import io
import ipaddress
import json
import os
import random
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissect.port902.analysis import Analysis, analyze
from dissect.port902.cli import doctor
from dissect.port902.infer import diagnose
from dissect.port902.infer.diagnose import (
    CONSOLE_PATHS,
    DNS_LOOKUPS,
    FINDING_KINDS,
    FINDINGS,
    HEARTBEATS,
    Diagnostics,
)
from dissect.port902.io.capture import (
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    Packet,
    Selection,
)
from dissect.port902.lab import background, failkit, failreadme, failures
from dissect.port902.lab import scenarios as S
from dissect.port902.lab.channel import CLIENT, SERVER, Step
from dissect.port902.net.flows import fmt_ip
from dissect.port902.output.render import render_json

ROOT = Path(__file__).resolve().parent.parent
DOCTOR = ROOT / "samples" / "doctor"
SAMPLES = {s.stem: s for s in failures.FAILURE_SAMPLES}
HOSTILE_CHARS = ("\x1b", "\x07", "\x9b", "\u202e", "\x80")


def labels_of(stem: str) -> dict:
    return json.loads((DOCTOR / f"{stem}.labels.json").read_text())


def diagnose_file(path, **kw):
    result = analyze(path, observers=[Diagnostics(**kw)])
    return result, result.extras["diagnostics"]


def run_doctor(capsys, *argv):
    code = doctor.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- every capture gives its findings ------------------------------------------------------------------------

@pytest.mark.parametrize("stem", list(SAMPLES))
def test_capture_gives_the_labelled_findings(stem):
    labels = labels_of(stem)["doctor"]
    _, diag = diagnose_file(DOCTOR / f"{stem}.pcap")
    problems = {f.kind for f in diag.findings if f.severity == "problem"}
    infos = {f.kind for f in diag.findings if f.severity == "info"}
    assert problems == set(labels["expected_problem_kinds"])
    assert infos == set(labels["expected_info_kinds"])
    for f in diag.findings:
        assert f.kind in FINDING_KINDS and 0.0 <= f.likelihood <= 1.0 and f.evidence and f.hosts and f.advice
        assert f.first_ts is not None and f.source and f.source.endswith(f"{stem}.pcap")


@pytest.mark.parametrize("stem", [s for s in SAMPLES if labels_of(s)["doctor"]["expected_findings"]])
def test_findings_name_the_labelled_packets_and_sessions(stem):
    labels = labels_of(stem)
    conns = {c["uid"]: c for c in labels["connections"]}
    result, diag = diagnose_file(DOCTOR / f"{stem}.pcap")
    for expected in labels["doctor"]["expected_findings"]:
        flows = [conns[u] for u in expected["uids"]]
        found = [f for f in diag.findings if f.kind == expected["kind"]]
        assert found, expected
        frames = {n for c in flows for n in range(c["frames"]["first"], c["frames"]["last"] + 1)}
        assert any(frames & set(f.evidence) for f in found), (expected, [f.evidence for f in found])
        assert any(flows[0]["client"]["ip"] in f.hosts for f in found)
        tcp_ports = {c["client"]["port"] for c in flows if c["proto"] == "tcp" and c["service"] == "authd"}
        if tcp_ports:  # the finding lists the sessions of exactly those connections
            related = {uid for f in found for uid in f.related}
            ports = {result.session(uid).client_port for uid in related}
            assert tcp_ports <= ports, (tcp_ports, ports)


@pytest.mark.parametrize("stem", list(SAMPLES))
def test_exit_code_matches_labels(capsys, stem):
    code, out, err = run_doctor(capsys, DOCTOR / f"{stem}.pcap")
    assert code == labels_of(stem)["doctor"]["exit_code"] and err == ""
    assert ("No problem found." in out) == (code == 0)
    assert "Checked:" in out


def test_clean_capture_gives_no_finding_and_says_what_was_checked(capsys):
    result, diag = diagnose_file(DOCTOR / "clean.pcap")
    assert diag.findings == [] and diag.problems == []
    checks = {c["check"]: c for c in diag.checked}
    assert set(checks) >= {"dns", "tcp_902_reachability", "tls_handshakes", "authd_logins", "authd_connect",
                           "resets", "reconnects", "console_paths", "udp_902_heartbeats"}
    assert all(c["problems"] == 0 for c in diag.checked)
    assert checks["dns"]["observed"] == 2 and checks["tcp_902_reachability"]["observed"] == 1
    assert checks["udp_902_heartbeats"]["observed"] == 2
    code, out, _ = run_doctor(capsys, DOCTOR / "clean.pcap")
    assert code == 0 and "No problem found." in out and "authd-902-mks" in out and "ESXi 8.0 Update 2" in out
    assert diag.findings_frame().empty


# -- what each finding says ---------------------------------------------------------------------------------

def only(diag, kind):
    found = [f for f in diag.findings if f.kind == kind]
    assert len(found) == 1, [f.kind for f in diag.findings]
    return found[0]


def test_dns_nxdomain_detail():
    _, diag = diagnose_file(DOCTOR / "dns-nxdomain.pcap")
    f = only(diag, "dns_nxdomain")
    (dns_flow,) = [c for c in labels_of("dns-nxdomain")["connections"] if c["service"] == "dns"]
    first, last = dns_flow["frames"]["first"], dns_flow["frames"]["last"]
    assert f.rank == 1 and f.likelihood >= 0.8 and f.evidence == list(range(first, last + 1))
    assert "esxi-07.corp.example" in f.detail and f"frames {first}, {first + 2}" in f.detail
    assert f"frames {first + 1}, {last}" in f.detail
    assert "No 902 connection" in f.detail and f.hosts == ["10.40.8.21", "10.40.0.2"]
    (lookup,) = [n for n in diag.to_json()["dns"] if n["name"] == "esxi-07.corp.example"]
    assert lookup["outcome"] == "NXDOMAIN" and lookup["failed"] and lookup["queries"] == 2


def test_dns_servfail_and_no_answer():
    _, diag = diagnose_file(DOCTOR / "dns-servfail.pcap")
    assert "SERVFAIL" in only(diag, "dns_servfail").title
    _, diag = diagnose_file(DOCTOR / "dns-no-answer.pcap")
    f = only(diag, "dns_no_answer")
    assert "never answered (3 times)" in f.detail and "10.40.0.3" in f.advice


def test_dns_no_address():
    f = only(diagnose_file(DOCTOR / "dns-no-address.pcap")[1], "dns_no_address")
    assert "without any address record" in f.detail and "add the A" in f.advice


def test_tls_version_alert():
    f = only(diagnose_file(DOCTOR / "tls-version-alert.pcap")[1], "tls_alert")
    assert "protocol_version" in f.title and "from the server" in f.detail and "offered TLS 1.0" in f.detail


def test_relay_blocked():
    f = only(diagnose_file(DOCTOR / "relay-blocked.pcap")[1], "console_path_blocked")
    assert "3 SYNs" in f.detail and "10.40.0.5:7343" in f.detail and "relay" in f.detail
    assert "Allow TCP 7343" in f.advice


def test_syn_no_answer_says_only_902_is_blocked():
    f = only(diagnose_file(DOCTOR / "syn-no-answer.pcap")[1], "syn_no_answer")
    assert "4 SYNs" in f.detail and "answered this client on 443" in f.detail and f.likelihood >= 0.85
    assert "nc -vz 10.40.0.27 902" in f.advice


def test_refused_and_icmp():
    f = only(diagnose_file(DOCTOR / "refused.pcap")[1], "refused")
    assert "3 SYNs" in f.detail and "RST" in f.detail
    result, diag = diagnose_file(DOCTOR / "icmp-prohibited.pcap")
    f = only(diag, "icmp_unreachable")
    assert "communication administratively prohibited" in f.detail and "10.40.0.1" in f.detail
    assert f.likelihood >= 0.95 and {4, 6, 8} <= set(f.evidence) and 3 in f.evidence
    assert f.related == [result.sessions[0].uid]  # the unanswered SYNs are its evidence, not another finding


def test_certificate_rejected_three_ways():
    f = only(diagnose_file(DOCTOR / "certificate-rejected.pcap")[1], "certificate_rejected")
    assert len(f.related) == 3 and "unknown_ca" in f.detail and "RST from the client" in f.detail
    assert "FIN from the client" in f.detail and failkit.ESXI_07.cert.sha1 in f.detail


def test_hanging_up_on_many_hosts_looks_like_a_probe(tmp_path):
    sc = failkit.FailureScenario("prober", 9)
    for n, host in enumerate((failkit.ESXI_A, failkit.ESXI_B, failkit.ESXI_07)):
        failkit.tls_attempt(sc, failkit.ADMIN, host, sc.at(n * 1.0), "quiet")
    sc.write(tmp_path / "prober.pcap")
    found = diagnose_file(tmp_path / "prober.pcap")[1].findings
    assert [f.kind for f in found] == ["certificate_rejected"] * 3
    assert all(f.likelihood <= 0.3 and "health check or a scanner" in f.detail for f in found)


def test_login_and_connect():
    f = only(diagnose_file(DOCTOR / "login-530.pcap")[1], "login_rejected")
    assert "530 Login incorrect." in f.detail and "root" in f.detail
    _, diag = diagnose_file(DOCTOR / "connect-failed.pcap")
    found = [f for f in diag.findings if f.kind == "connect_failed"]
    assert len(found) == 2 and "553" in found[0].detail and "VMAD_NOSUCHVM" in found[0].detail
    assert "no reply came" in found[1].detail and found[0].likelihood > found[1].likelihood
    assert not any(f.kind == "console_retry" for f in diag.findings)  # a failed CONNECT is not a working retry


def test_reset_and_retry():
    reset = only(diagnose_file(DOCTOR / "reset-midstream.pcap")[1], "reset_midstream")
    assert "reset by the server" in reset.detail and "MKS" in reset.title
    _, diag = diagnose_file(DOCTOR / "client-retry.pcap")
    again = only(diag, "reset_midstream")
    retry = only(diag, "console_retry")
    assert again.likelihood < reset.likelihood and "reconnected" in again.detail
    assert retry.severity == "info" and len(retry.related) == 2 and diag.findings[0] is again


def test_vmotion_is_a_note_naming_vcenter():
    result, diag = diagnose_file(DOCTOR / "vmotion.pcap")
    f = only(diag, "console_followed_vm")
    assert f.severity == "info" and not diag.problems
    assert "10.40.0.5:443" in f.detail and "vcenter.corp.example" in f.detail and "vMotion" in f.detail
    a, b = (result.session(u) for u in f.related)
    assert a.server_ip == "10.40.0.11" and b.server_ip == "10.40.0.12"
    assert "10.40.0.5" in f.hosts


# -- ranking ------------------------------------------------------------------------------------------------

def test_ranking_is_by_likelihood(tmp_path):
    sc = failkit.FailureScenario("combo", 7)
    failkit.dns_failure(sc, failkit.ADMIN, failkit.RESOLVER, "printer.corp.example", sc.at(0.0), 3, attempts=1)
    S.refused(sc, failkit.ADMIN, failkit.ESXI_B, sc.at(1.0))
    flow = S.unanswered(sc, failkit.ADMIN, failkit.ESXI_07, sc.at(2.0), retries=(1.0,))
    for n, (t, packet, _) in enumerate(flow.conn.records()):
        sc.inject(flow, t + 0.0004, failkit.icmp_error(failkit.FIREWALL, packet, 3, 13, ident=n))
    sc.write(tmp_path / "combo.pcap")
    _, diag = diagnose_file(tmp_path / "combo.pcap")
    assert [f.kind for f in diag.findings] == ["icmp_unreachable", "refused", "dns_nxdomain"]
    assert [f.rank for f in diag.findings] == [1, 2, 3]
    lik = [f.likelihood for f in diag.findings]
    assert lik == sorted(lik, reverse=True) and lik[-1] < 0.5  # a printer's name is not the console's problem
    df = diag.findings_frame()
    assert list(df["rank"]) == [1, 2, 3] and list(df["kind"]) == ["icmp_unreachable", "refused", "dns_nxdomain"]


# -- JSON and DataFrames --------------------------------------------------------------------------------------

def test_json_under_diagnostics_in_analyze():
    result, diag = diagnose_file(DOCTOR / "syn-no-answer.pcap")
    doc = result.to_dict()
    assert set(doc["diagnostics"]) == {"findings", "checked", "console_paths", "heartbeats", "dns"}
    (finding,) = doc["diagnostics"]["findings"]
    (syn_flow,) = [c for c in labels_of("syn-no-answer")["connections"] if c["service"] == "authd"]
    assert finding["kind"] == "syn_no_answer" and finding["rank"] == 1
    assert finding["evidence_frames"] == [syn_flow["frames"]["first"], syn_flow["frames"]["last"]]
    buf = io.StringIO()
    render_json(result, buf)
    assert json.loads(buf.getvalue())["diagnostics"]["findings"][0]["kind"] == "syn_no_answer"


def test_doctor_json_format(capsys, tmp_path):
    code, out, _ = run_doctor(capsys, DOCTOR / "vmotion.pcap", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["verdict"] == "no_problem_found" and doc["exit_code"] == 0
    assert doc["diagnostics"]["findings"][0]["kind"] == "console_followed_vm"
    target = tmp_path / "out.json"
    code, out, _ = run_doctor(capsys, DOCTOR / "refused.pcap", "-f", "json", "-o", target)
    assert code == 1 and out == "" and json.loads(target.read_text())["verdict"] == "problems_found"


@pytest.mark.parametrize("schema,method", [(FINDINGS, "findings_frame"), (HEARTBEATS, "heartbeats_frame"),
                                           (CONSOLE_PATHS, "console_paths_frame"), (DNS_LOOKUPS, "dns_frame")])
def test_empty_frames_keep_columns(schema, method):
    for diag in (Diagnostics(), diagnose_file(DOCTOR / "refused.pcap")[1]):
        df = getattr(diag, method)()
        assert list(df.columns) == list(schema)
        for col, (dtype, _) in schema.items():
            assert str(df[col].dtype) == dtype, col
    _, diag = diagnose_file(DOCTOR / "refused.pcap")
    assert diag.heartbeats_frame().empty and diag.console_paths_frame().empty


def test_frames_with_rows():
    _, diag = diagnose_file(DOCTOR / "html5-console.pcap")
    paths = diag.console_paths_frame()
    assert set(paths["kind"]) >= {"vcenter-relay", "authd-902-mks", "vcenter-https"}
    assert isinstance(paths["start"].dtype, pd.DatetimeTZDtype)
    dns_df = diag.dns_frame()
    assert list(dns_df["outcome"]) == ["resolved"] and dns_df["addresses"].iloc[0] == "10.40.0.5"


# -- hostile and broken input ----------------------------------------------------------------------------------

EVIL_LABELS = (b"\x1b[2J\x1b]0;owned\x07esx", "\u202eevil".encode(), b"\x9b1m", b"corp", b"example")


def hostile_capture(tmp_path) -> Path:
    sc = failkit.FailureScenario("hostile", 11)
    dns_flow = sc.udp(failkit.ADMIN, failkit.RESOLVER, 53, sc.at(0.0))
    query = (bytes.fromhex("4242 0100 0001 0000 0000 0000") + b"".join(bytes([len(x)]) + x for x in EVIL_LABELS)
             + b"\x00\x00\x01\x00\x01")
    dns_flow.conn.send("client", query, sc.at(0.0))
    dns_flow.conn.send("server", failkit.dns_reply(query, 3), sc.at(0.002))
    sc.label(dns_flow, feature="NONE", service="dns", transport="udp")
    flow, ch, pace, _ = sc.tcp(failkit.MAC, failkit.VCENTER.ip, 7331, sc.at(1.0))
    ch.conv.open()
    ch.play([Step(CLIENT, b"GET /console/?vmId=\x1b[31mvm\x07&sessionTicket=x HTTP/1.1\r\nUpgrade: \x1b[5m\r\n\r\n"),
             Step(SERVER, b"HTTP/1.1 400 Bad Request\r\n\r\n")])
    ch.close(CLIENT)
    sc.label(flow, feature="NONE", service="http", transport="plain")
    sc.write(tmp_path / "hostile.pcap")
    return tmp_path / "hostile.pcap"


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_hostile_names_never_reach_the_terminal_raw(capsys, tmp_path, fmt):
    path = hostile_capture(tmp_path)
    code, out, err = run_doctor(capsys, path, "-f", fmt)
    assert code == 1
    for ch in HOSTILE_CHARS:
        assert ch not in out and ch not in err
    if fmt == "json":
        doc = json.loads(out)
        (finding,) = doc["diagnostics"]["findings"]
        assert finding["kind"] == "dns_nxdomain" and "\x1b[2J" in finding["title"]  # data intact, escaped on output
        (relay,) = doc["diagnostics"]["console_paths"]
        assert "\x1b[31m" in relay["http_target"] and relay["upgrade"] == "\x1b[5m"
    else:
        assert "\\x1b[2J" in out and "vcenter-relay" in out


@pytest.mark.parametrize("content", [b"", b"not a capture", b"\xa1\xb2"])
def test_unreadable_input_exits_2(capsys, tmp_path, content):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)
    code, out, err = run_doctor(capsys, bad)
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err


def test_no_capture_is_usage_error(capsys):
    code, _, err = run_doctor(capsys)
    assert code == 2 and "give at least one capture" in err


def test_help_teaches(capsys):
    with pytest.raises(SystemExit) as exc:
        doctor.main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    for text in ("examples:", "exit codes", "7331", "NXDOMAIN", "vMotion", "heartbeats"):
        assert text in out


def test_add_parser_wires_into_a_cli():
    import argparse

    parser = argparse.ArgumentParser(prog="dissect902")
    sub = parser.add_subparsers(dest="command")
    doctor.add_parser(sub)
    args = parser.parse_args(["doctor", "x.pcap", "-f", "json"])
    assert args.func is doctor.run and args.captures == ["x.pcap"] and args.format == "json"


# -- the observer contract, bounded memory, fuzzing -------------------------------------------------------------

def test_select_widens_the_capture_selection():
    sel = Selection()
    diag = Diagnostics()
    assert diag.name == "diagnostics"
    diag.select(sel)
    assert {53, 902} <= sel.udp_ports and sel.icmp_errors and {443, 7331, 7343} <= sel.tcp_control_ports
    assert sel.tcp_ports == {902, 903, 912}


def udp(frame, src, dst, sport, dport, payload, ts=None):
    return Packet(frame, float(frame) if ts is None else ts, IPPROTO_UDP, ipaddress.ip_address(src).packed,
                  ipaddress.ip_address(dst).packed, sport, dport, 0, 0, 0, 0, payload, len(payload), 60)


def test_memory_is_bounded_on_a_dns_flood():
    diag = Diagnostics()
    diag.select(Selection())
    n = diagnose.MAX_NAMES + 500
    for i in range(n):
        q = background.dns_query(i & 0xFFFF, f"host{i}.flood.example")
        diag.packet(udp(i + 1, "10.0.0.1", "10.0.0.2", 40000 + (i % 20000), 53, q))
    assert len(diag._names) == diagnose.MAX_NAMES and len(diag._pending) <= diagnose.MAX_PENDING_DNS
    assert diag._counts["dns_names_not_kept"] == 500
    diag.finish(Analysis())
    assert len([f for f in diag.findings if f.kind == "dns_no_answer"]) == diagnose.MAX_FINDINGS_PER_KIND
    assert any(c["check"] == "suppressed" for c in diag.checked)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["dns", "hb", "icmp", "tcp"]), st.binary(max_size=120), st.booleans()),
                max_size=40))
def test_fuzz_observer(events):
    diag = Diagnostics()
    diag.select(Selection())
    for n, (kind, payload, flip) in enumerate(events, 1):
        a, b = ("10.0.0.1", "10.0.0.2") if flip else ("10.0.0.2", "10.0.0.1")
        if kind == "dns":
            diag.packet(udp(n, a, b, 53 if flip else 5353, 5353 if flip else 53, payload))
        elif kind == "hb":
            diag.packet(udp(n, a, b, 902, 902, payload))
        elif kind == "icmp":
            diag.packet(Packet(n, float(n), IPPROTO_ICMP, ipaddress.ip_address(a).packed,
                               ipaddress.ip_address(b).packed, 3, payload[0] if payload else 13, 0, 0, 0, 0,
                               payload, len(payload), 60))
        else:
            diag.packet(Packet(n, float(n), IPPROTO_TCP, ipaddress.ip_address(a).packed,
                               ipaddress.ip_address(b).packed, 50000, 443, 0, 0, payload[0] if payload else 2, 0,
                               payload, len(payload), 60))
    diag.finish(Analysis())
    json.dumps(diag.to_json())
    diag.findings_frame()
    diag.console_paths_frame()


def test_icmp_quoting_a_random_ipv4_packet():
    rng = random.Random(3)
    diag = Diagnostics()
    diag.select(Selection())
    for i in range(200):
        quoted = bytes([0x45]) + rng.randbytes(rng.randrange(0, 60))
        diag.packet(Packet(i + 1, float(i), IPPROTO_ICMP, bytes(4), bytes(4), 3, 13, 0, 0, 0, 0, quoted,
                           len(quoted), 60))
    diag.finish(Analysis())


# -- the sample folder ----------------------------------------------------------------------------------------------

def test_sample_folder_is_small_and_documented():
    files = list(DOCTOR.iterdir())
    assert sum(f.stat().st_size for f in files) < 1_000_000
    readme = (DOCTOR / "README.md").read_text()
    for sample in failures.FAILURE_SAMPLES:
        assert (DOCTOR / sample.filename).exists() and f"## {sample.filename}" in readme


def test_generator_reproduces_the_labels(tmp_path):
    for sample in failures.FAILURE_SAMPLES:
        labels = failures.write_failure_sample(sample, tmp_path)
        assert labels == labels_of(sample.stem), sample.filename
    assert failreadme.render_readme(tmp_path) == (DOCTOR / "README.md").read_text()


def test_shared_sample_with_failed_attempts():
    _, diag = diagnose_file(ROOT / "samples" / "unanswered-syn.pcap")
    assert {f.kind for f in diag.problems} == {"syn_no_answer", "refused"}
    assert os.path.basename(diag.problems[0].source) == "unanswered-syn.pcap"


# -- the fast paths give exactly what the full parse and eager findings give ------------------------------------
#
# ``Diagnostics._dns`` reads DNS through ``dns_summary`` (fast readers, memoised per payload) and
# ``finish`` renders only the findings ranking keeps.  These tests run the same captures and packet
# streams through a Diagnostics that reads every message with ``dns.parse`` instead, and rank every
# finding fully rendered as ``_rank`` did before it deferred the texts; every output must be equal.

from collections import Counter  # noqa: E402

from dissect.port902.errors import Malformed  # noqa: E402
from dissect.port902.lab.ip import udp_packet  # noqa: E402
from dissect.port902.lab.pcapwriter import CaptureWriter  # noqa: E402
from dissect.port902.lab.tcp import TcpConversation  # noqa: E402
from dissect.port902.proto import dns as dnsmod  # noqa: E402


def full_parse_summary(payload: bytes):
    """``diagnose.dns_summary`` written over ``dns.parse``'s Message."""
    try:
        msg = dnsmod.parse(payload, strict=False)
    except Malformed:
        return None
    q = msg.question
    if q is None or msg.opcode != 0:
        return ()
    tracked = q.qtype in (1, 28, 255)
    head = (q.name, q.name.lower(), q.qtype, tracked, dnsmod.type_name(q.qtype), 1 if q.qtype == 28 else 0)
    if not msg.is_response or not tracked:
        return (msg.is_response, *head, None, False, ())
    addresses = tuple(msg.addresses())
    outcome = msg.rcode_name if msg.rcode != 0 else ("NOERROR" if addresses else "no_address")
    return (True, *head, outcome, msg.tc and not addresses and msg.rcode == 0, addresses)


class FullParseDiagnostics(Diagnostics):
    """Reads every DNS message with ``dns.parse`` and keeps its books as ``Diagnostics._dns`` did
    before the fast path (no summary, no memo): the reference the fast path must equal."""

    def _dns(self, pkt: Packet) -> None:
        try:
            msg = dnsmod.parse(pkt.payload, strict=False)
        except Malformed:
            self._counts["dns_malformed"] += 1
            return
        q = msg.question
        if q is None or msg.opcode != 0:
            return
        self._counts["dns_messages"] += 1
        tracked = q.qtype in (1, 28, 255)
        if not msg.is_response:
            if pkt.dport != 53:
                return
            self._counts["dns_queries"] += 1
            key = (self._source_index, pkt.src, pkt.sport, pkt.dst, msg.id)
            pending = self._pending.get(key)
            if pending is not None:
                self._pending[key] = pending._replace(sends=pending.sends + 1)
            else:
                if len(self._pending) >= diagnose.MAX_PENDING_DNS:
                    self._expire(*self._pending.popitem(last=False), None)
                self._pending[key] = diagnose.evidence._Query(q.name, q.qtype, pkt.ts, pkt.frame)
            if tracked:
                entry = self._name_entry(pkt.src, q.name, q.name.lower(), pkt.ts, pkt.frame)
                if entry is not None:
                    entry.queries += 1
                    entry.qtypes.add(dnsmod.type_name(q.qtype))
                    entry.fam_queries[1 if q.qtype == 28 else 0] += 1
                    entry.last_ts = pkt.ts
                    if len(entry.resolvers) < 8:
                        entry.resolvers.add(fmt_ip(pkt.dst))
                    if len(entry.query_frames) < diagnose.MAX_EVIDENCE:
                        entry.query_frames.append(pkt.frame)
            return
        if pkt.sport != 53:
            return
        self._counts["dns_responses"] += 1
        self._pending.pop((self._source_index, pkt.dst, pkt.dport, pkt.src, msg.id), None)
        if not tracked:
            return
        entry = self._name_entry(pkt.dst, q.name, q.name.lower(), pkt.ts, pkt.frame)
        if entry is None:
            return
        entry.responses += 1
        entry.last_ts = pkt.ts
        addresses = msg.addresses()
        if msg.tc and not addresses and msg.rcode == 0:
            self._counts["dns_truncated"] += 1
            return
        if msg.rcode != 0:
            outcome = msg.rcode_name
        elif addresses:
            outcome = "NOERROR"
        else:
            outcome = "no_address"
        entry.outcomes[outcome] += 1
        if addresses:
            entry.ok_ts = pkt.ts
            for a in addresses:
                if a not in entry.addresses and len(entry.addresses) < 16:
                    entry.addresses.append(a)
        else:
            self._fail(entry, 1 if q.qtype == 28 else 0, pkt.ts, pkt.frame)


def eager_rank(findings: list, counts: Counter) -> list:
    """``_rank`` as it was before findings were rendered lazily: render all, then sort and cap."""
    for f in findings:
        f.likelihood = round(diagnose.findings._clamp(f.likelihood), 3)
        f.evidence = sorted({x for x in f.evidence if x is not None})
        f.hosts = list(dict.fromkeys(f.hosts))
    findings.sort(key=lambda f: (f.severity != "problem", -f.likelihood, f.first_ts or 0.0, f.kind))
    per_kind: Counter = Counter()
    kept = []
    for f in findings:
        per_kind[f.kind] += 1
        if per_kind[f.kind] > diagnose.MAX_FINDINGS_PER_KIND:
            counts["findings_suppressed"] += 1
            continue
        kept.append(f)
    for i, f in enumerate(kept, 1):
        f.rank = i
    return kept


@pytest.fixture
def checked_rank(monkeypatch):
    """Wraps ``_rank``: every candidate renders to a finding with the kind, likelihood, time and
    severity it was ranked by, and the lazy ranking equals the eager one.  Yields render counts."""
    real_rank = diagnose.rank.rank
    stats = Counter()

    def rank(candidates, counts):
        expected_counts: Counter = Counter(counts)
        rendered = []
        for c in candidates:
            f = c.render(*c.args)
            assert (f.kind, f.likelihood, f.first_ts, f.severity) == (c.kind, c.likelihood, c.first_ts, c.severity)
            rendered.append(f)
        expected = eager_rank(rendered, expected_counts)

        def counting(render):
            def wrapper(*args):
                stats["rendered"] += 1
                return render(*args)
            return wrapper

        for c in candidates:
            c.render = counting(c.render)
        stats["candidates"] += len(candidates)
        got = real_rank(candidates, counts)
        assert [f.to_dict() for f in got] == [f.to_dict() for f in expected]
        assert counts == expected_counts
        return got

    monkeypatch.setattr(diagnose.rank, "rank", rank)
    return stats


def diagnosis_outputs(diag: Diagnostics) -> tuple:
    frames = tuple((df.to_json(orient="split", date_format="iso", date_unit="ns"), df.dtypes.to_dict())
                   for df in (getattr(diag, m)() for m in ("findings_frame", "heartbeats_frame",
                                                           "console_paths_frame", "dns_frame")))
    return json.dumps(diag.to_json(), default=str), dict(diag._counts), frames


ALL_CAPTURES = sorted(DOCTOR.glob("*.pcap")) + sorted(p for p in (ROOT / "samples").iterdir()
                                                        if p.suffix in (".pcap", ".pcapng"))


@pytest.mark.parametrize("path", ALL_CAPTURES, ids=lambda p: p.name)
def test_fast_path_gives_the_full_parse_diagnosis(path, checked_rank):
    fast = analyze(path, observers=[Diagnostics()]).extras["diagnostics"]
    full = analyze(path, observers=[FullParseDiagnostics()]).extras["diagnostics"]
    assert diagnosis_outputs(fast) == diagnosis_outputs(full)
    assert checked_rank["rendered"] == len(fast.findings) * 2  # once per run, only the kept ones


def failure_flood(path: Path, n: int = 240) -> None:
    """Many failed attempts of every kind that scales with the capture: unanswered and refused
    902, blocked relays, and failing lookups, with equal timestamps and likelihoods (ties)."""
    resolver = "10.0.0.53"
    packets = []
    for i in range(n):
        client, server = f"10.1.{i // 200}.{i % 200 + 1}", f"10.2.0.{i % 40 + 1}"
        conv = TcpConversation(client, 40000 + i, server, (902, 902, 7343, 7331)[i % 4], 1000.0 + (i % 7))
        if i % 5 == 0:
            conv.refuse(retries=(1.0,) * (i % 2))
        else:
            conv.syn_unanswered(retries=() if i % 3 == 0 else (1.0, 2.0))
        packets += conv.packets()
        query = background.dns_query(i, f"esx{i % 60}.lab.example", (1, 28)[i % 2])
        packets.append((990.0 + i % 5, udp_packet(ipaddress.ip_address(client).packed,
                                                  ipaddress.ip_address(resolver).packed, 30000 + i, 53, query)))
        if i % 3:
            answer = bytearray(query)
            answer[2:4] = (0x8183 if i % 3 == 1 else 0x8182).to_bytes(2, "big")
            packets.append((990.5 + i % 5, udp_packet(ipaddress.ip_address(resolver).packed,
                                                      ipaddress.ip_address(client).packed, 53, 30000 + i,
                                                      bytes(answer))))
    packets.append((1100.0, udp_packet(bytes(4), bytes(4), 1, 53, b"")))  # the capture runs on
    packets.sort(key=lambda p: p[0])
    with CaptureWriter(str(path)) as w:
        for ts, pkt in packets:
            w.write(ts, pkt)


@pytest.mark.parametrize("stem,expected", [
    ("certificate-rejected", [("certificate_rejected", 0.9)]),
    ("client-retry", [("reset_midstream", 0.5), ("console_retry", 0.15)]),  # 0.70 - 0.20 for the retry
    ("connect-failed", [("connect_failed", 0.9), ("connect_failed", 0.7)]),
    ("dns-no-address", [("dns_no_address", 0.85)]),  # 0.40 + 0.25 no 902 after + 0.15 esx name + 0.05 twice
    ("dns-nxdomain", [("dns_nxdomain", 0.85)]),
    ("icmp-prohibited", [("icmp_unreachable", 0.95)]),
    ("login-530", [("login_rejected", 0.8)]),
    ("refused", [("refused", 0.85)]),
    ("relay-blocked", [("console_path_blocked", 0.7)]),
    ("reset-midstream", [("reset_midstream", 0.7)]),
    ("syn-no-answer", [("syn_no_answer", 0.9)]),  # 0.85 + 0.05: the host answered on 443
    ("tls-version-alert", [("tls_alert", 0.85)]),
    ("vmotion", [("console_followed_vm", 0.1)]),
])
def test_likelihoods_follow_the_documented_rules(stem, expected):
    _, diag = diagnose_file(DOCTOR / f"{stem}.pcap")
    assert [(f.kind, f.likelihood) for f in diag.findings] == expected


def test_a_flood_of_failures_renders_only_what_is_kept(tmp_path, checked_rank):
    failure_flood(tmp_path / "flood.pcap")
    fast = analyze(tmp_path / "flood.pcap", observers=[Diagnostics()]).extras["diagnostics"]
    kinds = Counter(f.kind for f in fast.findings)
    assert {"syn_no_answer", "refused", "console_path_blocked", "dns_nxdomain", "dns_servfail",
            "dns_no_answer"} <= set(kinds)
    assert max(kinds.values()) == diagnose.MAX_FINDINGS_PER_KIND
    assert fast._counts["findings_suppressed"] == checked_rank["candidates"] - len(fast.findings) > 100
    assert checked_rank["rendered"] == len(fast.findings)
    full = analyze(tmp_path / "flood.pcap", observers=[FullParseDiagnostics()]).extras["diagnostics"]
    assert diagnosis_outputs(fast) == diagnosis_outputs(full)


@st.composite
def dns_streams(draw):
    """Lookups between a few clients and resolvers, interleaved: queries (some retransmitted,
    some never answered) and their answers with few distinct ids, so payloads repeat under other
    ids and ids repeat on one port; every RCODE and flag mix, truncation, odd ports, random bytes."""
    names = ["esx-01.lab", "ESX-01.lab", "vc.lab", "a\\.b.lab", "_ldap._tcp.lab"]
    flag_words = [0x8180, 0x8100, 0x8380, 0x8300, 0x8580, 0x8183, 0x8182, 0x8185, 0x818E, 0x8980]
    events = []
    for _ in range(draw(st.integers(1, 30))):
        client = draw(st.sampled_from(["10.0.0.1", "10.0.0.2", "fd00::1"]))
        server = draw(st.sampled_from(["10.0.0.53", "10.0.0.54"] if ":" not in client else ["fd00::53"]))
        port = draw(st.sampled_from([40000, 40000, 40001, 53]))
        to_port = draw(st.sampled_from([53, 53, 53, 5353, 1053]))
        txid = draw(st.sampled_from([1, 2, 0x0101, 0x0102, draw(st.integers(0, 0xFFFF))]))
        query = background.dns_query(txid, draw(st.sampled_from(names)), draw(st.sampled_from([1, 28, 255, 12, 65])))
        for _ in range(draw(st.integers(0, 2))):
            events.append((client, server, port, to_port, query))
        kind = draw(st.sampled_from(["none", "answer", "answer", "flags", "garbage"]))
        if kind == "garbage":
            events.append((server, client, 53, port, draw(st.binary(max_size=60))))
        elif kind != "none":
            addresses = draw(st.lists(st.sampled_from([bytes(16), *(bytes([10, 1, 0, k]) for k in range(20))]),
                                      max_size=8))
            answer = bytearray(background.dns_response(query, addresses))
            if kind == "flags":
                answer[2:4] = draw(st.sampled_from(flag_words)).to_bytes(2, "big")
            events.append((server, client, to_port, port, bytes(answer)))
    return draw(st.permutations(events)) if draw(st.booleans()) else events


@settings(max_examples=300, deadline=None)
@given(dns_streams(), st.booleans())
def test_fast_path_gives_the_full_parse_lookups_on_fuzzed_dns(events, small_memo):
    outs = []
    for cls in (Diagnostics, FullParseDiagnostics):
        diag = cls()
        diag.select(Selection())
        for n, (src, dst, sport, dport, payload) in enumerate(events, 1):
            diag.packet(udp(n, src, dst, sport, dport, payload))
            if small_memo and len(diag._dns_memo) > 2:
                diag._dns_memo.clear()
        diag.finish(Analysis())
        outs.append(diagnosis_outputs(diag))
    assert outs[0] == outs[1]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([b"", bytes.fromhex("0001 8180 0001 0002 0000 0000"),
                                                  bytes.fromhex("0001 0100 0001 0000 0000 0000")]))
def test_dns_summary_matches_the_full_parse(data, head):
    assert diagnose.dns_summary(head + data) == full_parse_summary(head + data)


def test_dns_memo_is_bounded():
    diag = Diagnostics()
    diag.select(Selection())
    for i in range(diagnose.MAX_DNS_MEMO + 10):
        diag.packet(udp(i + 1, "10.0.0.1", "10.0.0.2", 40000, 53, background.dns_query(i & 0xFFFF, f"h{i}.example")))
    assert len(diag._dns_memo) <= diagnose.MAX_DNS_MEMO
    big = background.dns_query(1, "x.example") + bytes(diagnose.MAX_DNS_MEMO_BYTES)
    diag.packet(udp(1, "10.0.0.1", "10.0.0.2", 40000, 53, big))
    assert big[2:] not in diag._dns_memo


def test_fast_path_keeps_the_first_16_addresses_like_the_full_parse():
    outs = []
    for cls in (Diagnostics, FullParseDiagnostics):
        diag = cls()
        diag.select(Selection())
        for k in range(3):
            query = background.dns_query(k, "esx-01.lab")
            answer = background.dns_response(query, [bytes([10, 1, k, i]) for i in range(8)] + [bytes([10, 1, 0, 0])])
            diag.packet(udp(2 * k + 1, "10.0.0.1", "10.0.0.53", 40000, 53, query))
            diag.packet(udp(2 * k + 2, "10.0.0.53", "10.0.0.1", 53, 40000, answer))
        diag.finish(Analysis())
        outs.append(diagnosis_outputs(diag))
        assert len(diag.lookups[0].addresses) == 16
    assert outs[0] == outs[1]


@pytest.mark.parametrize("table", ["findings", "heartbeats", "console_paths", "dns"])
def test_diagnosis_tables_come_out_as_csv_and_parquet(capsys, tmp_path, table):
    """`analyze -f csv/parquet --table findings|heartbeats|console_paths|dns`: the diagnosis' tables
    with their declared columns, the same rows as its DataFrames."""
    from dissect.port902.cli.main import main
    from dissect.port902.model.schema import DIAGNOSIS_TABLES

    sample = Path(__file__).resolve().parent.parent / "samples" / "mixed-esxi.pcap"
    expected = getattr(analyze(sample).diagnostics, f"{table}_frame")()
    assert len(expected) > 0
    capsys.readouterr()
    assert main(["analyze", str(sample), "-q", "-f", "csv", "--table", table]) == 0
    csv_frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(csv_frame.columns) == list(DIAGNOSIS_TABLES[table]) and len(csv_frame) == len(expected)
    pq = tmp_path / f"{table}.parquet"
    assert main(["analyze", str(sample), "-q", "-f", "parquet", "--table", table, "-o", str(pq)]) == 0
    back = pd.read_parquet(pq)
    assert list(back.columns) == list(expected.columns) and len(back) == len(expected)
    assert main(["analyze", str(sample), "-q", "-f", "csv", "--table", table, "--no-diagnostics"]) == 2
    assert "drop --no-diagnostics" in capsys.readouterr().err
