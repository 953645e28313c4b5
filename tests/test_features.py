"""Feature extraction: cipher overhead, record -> message merging, TLS 1.3 handshake skipping."""

from types import SimpleNamespace

import pytest

from dissect.port902.infer.features import compute, messages, overhead, plaintext
from dissect.port902.analyzers.session import Handshake, ServerHelloInfo


def hs(index, version, cipher):
    h = Handshake(index, 0.0, 1)
    h.server_hello = ServerHelloInfo(0x0303, version, cipher, ())
    return h


@pytest.mark.parametrize(
    "version, cipher, expected",
    [
        (0x0303, 0xC030, (24, 0)),  # ECDHE-RSA-AES256-GCM-SHA384
        (0x0304, 0x1302, (17, 0)),  # TLS_AES_256_GCM_SHA384
        (0x0303, 0xCCA8, (16, 0)),  # ECDHE-RSA-CHACHA20-POLY1305
        (0x0301, 0xC014, (20, 16)),  # ECDHE-RSA-AES256-SHA, TLS 1.0: no explicit IV
        (0x0303, 0xC028, (16 + 48, 16)),  # ECDHE-RSA-AES256-SHA384 in TLS 1.2
    ],
)
def test_overhead_follows_the_cipher(version, cipher, expected):
    assert overhead(hs(1, version, cipher)) == expected


def test_plaintext_estimate_of_a_gcm_line():
    # 'PROXY vpxa-nfcssl\r\n' is 19 bytes; under TLS 1.2 GCM its record is 43
    assert plaintext(43, (24, 0)) == 19


def record(handshakes, recs):
    arrays = list(zip(*recs)) if recs else [[]] * 6
    return SimpleNamespace(handshakes=handshakes, records=lambda: zip(*arrays))


def test_tls13_handshake_flight_finished_and_tickets_are_not_messages():
    h = hs(1, 0x0304, 0x1301)
    recs = [  # ts, frame, dir, type, len, handshake
        (0.0, 5, 1, 23, 23, 1), (0.0, 5, 1, 23, 1235, 1), (0.0, 5, 1, 23, 281, 1), (0.0, 5, 1, 23, 69, 1),  # server flight
        (0.1, 6, 0, 23, 69, 1),  # client Finished
        (0.1, 7, 1, 23, 250, 1), (0.1, 7, 1, 23, 250, 1),  # session tickets
        (0.2, 8, 0, 23, 17 + 36, 1),  # first command, 36 bytes
        (0.3, 9, 1, 23, 17 + 23, 1),
    ]
    msgs = messages(record([h], recs))
    assert [(m.direction, m.size) for m in msgs] == [(0, 36), (1, 23)]


def test_records_written_together_merge_into_one_message():
    h = hs(1, 0x0303, 0xC030)
    recs = [(0.0, 5, 0, 23, 24 + 30, 1), (0.0, 5, 0, 23, 24 + 8, 1), (0.0, 6, 0, 23, 24 + 5, 1)]
    msgs = messages(record([h], recs))
    assert [(m.size, m.records) for m in msgs] == [(38, 2), (5, 1)]


def test_compute_on_an_empty_session_is_safe():
    rec = SimpleNamespace(uid="C1", handshakes=[], records=lambda: iter(()), continued_in_clear=False, banner=None,
                          roles_from="handshake",
                          nfc_message_types={}, nfc_aio_types={}, transport="none", duration_s=0.0, bytes=(0, 0))
    row = compute(rec)
    assert row["uid"] == "C1" and row["handshakes"] == 0 and row["later_client_msgs"] == 0


def test_features_frame_shows_what_the_classifier_read(samples_dir=None):
    """features_frame: every decoded session names its template and reading, and judged_as agrees
    with the verdict's first reason (the frame and the verdict come from one computation)."""
    from pathlib import Path

    from dissect.port902 import analyze

    result = analyze(Path(__file__).resolve().parents[1] / "samples" / "mixed-esxi.pcap")
    df = result.features_frame()
    by_uid = {s.uid: s for s in result.sessions}
    assert {"judged_as", "decoded_as", "decoded_dialogue", "decoded_margin"} <= set(df.columns)
    decoded = df[df["judged_as"] == "tls1"]
    assert len(decoded) >= 5 and decoded["decoded_dialogue"].notna().all()
    for _, row in df.iterrows():
        first = by_uid[row["uid"]].reasons[0] if by_uid[row["uid"]].reasons else ""
        if row["judged_as"] == "tls1" and not first.startswith("classic ESX 903 leg"):
            assert first.startswith("decoded from TLS #1 record sizes"), first
        if row["judged_as"] == "midstream":
            assert "mid-connection" in " ".join(by_uid[row["uid"]].reasons)
