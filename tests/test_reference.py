"""``analyze --reference``: sessions cross-checked against Wireshark's dissection (pyshark + tshark)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dissect.port902 import reference
from dissect.port902.analysis import analyze
from dissect.port902.cli.main import main
from dissect.port902.reference import FIELDS, ReferenceCheck, compare

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CONSOLE = SAMPLES / "esxi8-console.pcap"
NFC = SAMPLES / "nfc-transfers.pcapng"


def fake_stream(session, **changes):
    """A Wireshark stream that agrees with the session on every field, then ``changes``."""
    ours = reference._ours(session)
    values = {**ours, **changes}
    st = reference._Stream(session.client, session.server, values["first_frame"])
    st.packets = {session.client: values["packets_c2s"], session.server: values["packets_s2c"]}
    if values["client_hello_frame"] is not None:
        st.hello = {"frame": values["client_hello_frame"], "ja3": values["ja3"], "sni": values["sni"]}
    if values["server_hello_frame"] is not None:
        st.server_hello = {"frame": values["server_hello_frame"], "version": values["tls_version"],
                           "cipher": values["cipher"], "cert_sha1": values["server_cert_sha1"]}
    return st


@pytest.fixture(scope="module")
def console():
    return analyze(CONSOLE, observers=[])


def test_agreeing_stream_compares_every_field(console):
    s = console.sessions[0]
    rows, unmatched = compare([s], [fake_stream(s)])
    assert not unmatched
    assert {r["field"] for r in rows} == set(FIELDS)
    assert all(r["match"] for r in rows)


@pytest.mark.parametrize("field_name, value", [("packets_s2c", 1), ("cipher", "TLS_RSA_WITH_NULL_MD5"),
                                               ("client_hello_frame", 1), ("server_cert_sha1", "AA:BB")])
def test_a_difference_is_reported(console, field_name, value):
    s = console.sessions[0]
    rows, _ = compare([s], [fake_stream(s, **{field_name: value})])
    bad = [r for r in rows if not r["match"]]
    assert [r["field"] for r in bad] == [field_name] and bad[0]["wireshark"] == value


def test_streams_without_a_session_and_sessions_without_a_stream(console):
    s = console.sessions[0]
    other = reference._Stream("10.9.9.9:1234", "10.9.9.8:902", 1)
    rows, unmatched = compare([s], [other])
    assert rows == [] and {u["side"] for u in unmatched} == {"dissect902", "wireshark"}


def test_tls_fields_are_skipped_when_wireshark_saw_no_handshake(console):
    s = console.sessions[0]
    st = fake_stream(s)
    st.hello = st.server_hello = None
    rows, _ = compare([s], [st])
    assert {r["field"] for r in rows} == {"first_frame", "packets_c2s", "packets_s2c"}


def test_reference_without_pyshark_names_the_extra(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyshark", None)
    code = main(["analyze", str(CONSOLE), "--reference"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "pip install 'dissect902[reference]'" in err


@pytest.mark.tshark
@pytest.mark.parametrize("path", [CONSOLE, NFC], ids=lambda p: p.name)
def test_sessions_agree_with_wireshark(path):
    ref = ReferenceCheck()
    result = analyze(path, observers=[ref])
    compared = {r["uid"] for r in ref.rows}
    assert compared == {s.uid for s in result.sessions}
    tls_fields = {r["field"] for r in ref.rows}
    assert {"ja3", "cipher", "server_cert_sha1", "client_hello_frame"} <= tls_fields
    assert ref.mismatches == [] and ref.unmatched == []


@pytest.mark.tshark
def test_a_mismatch_is_a_weird_row_and_strict_fails(capsys, monkeypatch):
    real = reference._ours

    def off_by_one(session):
        values = real(session)
        values["packets_c2s"] += 1
        return values

    monkeypatch.setattr(reference, "_ours", off_by_one)
    code = main(["analyze", str(CONSOLE), "--reference", "--strict", "-f", "json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert code == 1 and "1 differ" in err
    assert [w["kind"] for w in doc["weird"]] == ["reference_mismatch"]
    assert doc["reference"]["mismatches"][0]["field"] == "packets_c2s"
