"""End to end on the bundled samples: what `analyze` reports must agree with the lab's labels.

The labels (``samples/*.labels.json``) are written by the generator from what it put on the
wire, independently of the parsers, so they serve as golden expectations.  Regenerate
samples and labels together with ``python scripts/make_samples.py``.
"""

import json
from pathlib import Path

import pytest

from dissect.port902 import analyze

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CAPTURES = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".pcap", ".pcapng", ".gz"))
AUTHD_PORTS = {902, 903, 912}
TLS_NAMES = {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1", "TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3"}
LOGIN = {"ok": "accepted", "failed": "rejected", "unanswered": "unanswered", None: "none"}


def labels_for(path: Path) -> dict:
    return json.loads(path.with_name(path.name.split(".")[0] + ".labels.json").read_text())


def authd_connections(labels: dict) -> list[dict]:
    return [c for c in labels["connections"] if c["proto"] == "tcp" and c["server"]["port"] in AUTHD_PORTS]


@pytest.fixture(scope="module", params=CAPTURES, ids=lambda p: p.name)
def case(request):
    return request.param, analyze(request.param), labels_for(request.param)


def find(result, conn):
    c, s = conn["client"], conn["server"]
    hits = [x for x in result.sessions if (x.client_ip, x.client_port, x.server_ip, x.server_port)
            == (c["ip"], c["port"], s["ip"], s["port"])]
    assert len(hits) == 1, f"{conn['uid']}: expected one session for {c} -> {s}, found {len(hits)}"
    return hits[0]


def test_one_session_per_labelled_connection(case):
    _, result, labels = case
    conns = authd_connections(labels)
    assert len(result.sessions) == len(conns)
    for conn in conns:
        find(result, conn)


def test_sessions_agree_with_labels(case):
    _, result, labels = case
    for conn in authd_connections(labels):
        s = find(result, conn)
        exp = conn["expected"]
        midstream = bool(conn["conditions"] and conn["conditions"].get("capture_from"))
        where = f"{conn['uid']} ({s.uid})"
        if midstream:
            assert s.state == "partial", where
            assert s.banner is None, where
            assert s.transport.startswith("tls"), where
            continue
        assert s.state == conn["outcome"], where
        assert (s.banner.text if s.banner else None) == exp.get("banner"), where
        if exp.get("banner"):
            assert s.banner.ssl_required == exp["ssl_required"], where
        assert len(s.handshakes) == exp["tls_handshakes"], where
        assert s.tls_version == TLS_NAMES.get(exp["tls_version"]), where
        assert s.transport == conn["transport"] or (s.transport == "none" and conn["transport"] == "none"), where
        assert s.continued_in_clear == exp["continues_in_clear"], where
        if exp["tls_version"] in ("TLSv1", "TLSv1.1", "TLSv1.2"):
            assert s.server_cert_sha1 == exp["cert_sha1"], where
        elif exp["tls_version"] == "TLSv1.3":
            assert s.server_cert_sha1 is None, where  # encrypted in TLS 1.3
        if conn["transport"] == "plain":  # the dialogue is visible
            assert s.login_outcome == LOGIN[exp["login"]], where
            assert s.login_attempts == exp["login_attempts"], where
            assert s.logins_failed == exp["login_failures"], where
        assert s.bytes == (conn["payload_bytes"]["c2s"], conn["payload_bytes"]["s2c"]), where


def test_handoffs_agree_with_labels(case):
    _, result, labels = case
    by_label = {c["uid"]: c for c in authd_connections(labels)}
    expected = set()
    for conn in by_label.values():
        to = conn["related"].get("handoff_to")
        if to:
            expected.add((find(result, conn).uid, find(result, by_label[to]).uid))
    assert {(h.from_session, h.to_session) for h in result.handoffs} == expected
    for a, b in expected:
        for uid in (a, b):
            rec = result.session(uid)
            assert (rec.handoff_from, rec.handoff_to) == (a, b)
            assert rec.handoff_gap_s is not None and rec.handoff_gap_s < 10


def test_secrets_never_in_default_output(case):
    _, result, labels = case
    text = json.dumps(result.to_dict(), default=str)
    for conn in authd_connections(labels):
        for user in conn["expected"].get("users") or []:
            if "-" in user:  # tickets (UUID-shaped) are credentials
                assert user not in text
        for pw in conn["expected"].get("passwords") or []:
            assert pw not in text


def test_frames_have_declared_columns(case):
    from dissect.port902.model.schema import FRAME_TABLES as SCHEMAS

    _, result, _ = case
    for name, schema in SCHEMAS.items():
        df = getattr(result, f"{name}_frame")()
        assert list(df.columns) == list(schema)
    sf = result.sessions_frame()
    assert len(sf) == len(result.sessions)
    assert str(sf["start"].dtype) == "datetime64[ns, UTC]"


def test_every_session_is_classified_with_reasons(case):
    """Regression guard on the bundled samples; generalisation is measured by scripts/accuracy.py
    on fresh lab data (README, 'Classifier accuracy')."""
    _, result, labels = case
    for conn in authd_connections(labels):
        s = find(result, conn)
        assert s.feature == conn["feature"], f"{conn['uid']}: {s.feature} {s.reasons}"
        assert 0.0 <= s.confidence <= 1.0 and s.reasons and all(isinstance(r, str) and r for r in s.reasons)
    feats = result.features_frame()
    assert len(feats) == len(result.sessions) and feats["uid"].is_unique
