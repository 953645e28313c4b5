"""The shape rules of the classifier, one table row per rule (hand-off and mid-stream paths).

Each row sets only the features its rule reads and expects that rule's label: relabelling a
vote, or switching a rule off (``TOKEN_MAX = 0``), fails its row.  The TLS #1 decoder has its
own table in test_infer_dialogue.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dissect.port902.infer import classify as cl
from dissect.port902.infer.features import FEATURES


def feats(**kw):
    f = {name: None for name in FEATURES}
    f.update(later_client_msgs=0, later_server_msgs=0, later_idle_count=0, tls1_client_msgs=0, tls1_server_msgs=0,
             handoff_seen_midway=True, midstream=True, duration_s=1.0, nfc_messages=0, continued_in_clear=False)
    f.update(kw)
    return f


REC = SimpleNamespace(handshakes=[SimpleNamespace(frame=5, index=1), SimpleNamespace(frame=40, index=2)],
                      records=lambda: iter(()))
NO_HS = SimpleNamespace(handshakes=[], records=lambda: iter(()))

MIDSTREAM = [
    ("16-byte MKS token first after a visible handshake", REC,
     feats(later_client_first=16, later_client_msgs=5), "MKS"),
    ("264-byte NFC message first after a visible handshake", REC,
     feats(later_client_first=264, later_client_msgs=5), "NFC"),
    ("strict short request/reply without pauses: login attempts", NO_HS,
     feats(later_client_msgs=3, later_server_msgs=3, later_alternation=1.0, later_client_record_max=40,
           later_server_record_max=40, later_idle_max_s=0.1), "NONE"),
    ("interactive console: small client messages with pauses", NO_HS,
     feats(later_client_msgs=30, later_client_small_share=0.9, later_client_median=10, later_idle_count=3), "MKS"),
    ("block read: fixed-size requests answered by full records", NO_HS,
     feats(later_client_msgs=40, later_client_median=60, later_client_regularity=0.95, later_alternation=0.9,
           later_server_large_share=0.9, later_server_full_share=0.8, later_client_record_max=60,
           later_server_record_max=16384), "NFC"),
    ("upload: the client sends the bulk in NFC-sized messages", NO_HS,
     feats(later_client_msgs=40, later_client_median=264, later_server_bytes_share=0.05,
           later_client_regularity=0.2), "NFC"),
    ("SOAP-sized requests with sizeable replies", NO_HS,
     feats(later_client_msgs=12, later_client_median=900, later_server_bytes_share=0.6,
           later_client_regularity=0.2), "SOAP"),
    ("file data in few big client messages (size classes)", NO_HS,
     feats(later_client_msgs=2, later_client_max=20000, later_client_median=20000, later_server_bytes_share=0.01,
           later_server_msgs=1), "NFC"),
    ("a quiet client and a talking server for a long time: an idle console (size classes)", NO_HS,
     feats(later_client_msgs=1, later_server_msgs=10, later_client_max=10, later_client_median=10,
           later_server_max=500, duration_s=60), "MKS"),
]


@pytest.mark.parametrize("name, rec, f, label", MIDSTREAM, ids=[m[0] for m in MIDSTREAM])
def test_midstream_rule(name, rec, f, label):
    v = cl._midstream(rec, f)
    assert v.label == label, (name, v.reasons)
    assert v.confidence <= 0.8 and v.judged_as == "midstream"


HANDOFF = [
    ("token-sized first message after TLS #2", feats(later_client_first=16, midstream=False), "MKS"),
    ("NFC-sized first message after TLS #2", feats(later_client_first=264, midstream=False), "NFC"),
    ("long last command before the hand-off", feats(tls1_client_last=90, tls1_server_last=90, midstream=False), "MKS"),
    ("short last command before the hand-off", feats(tls1_client_last=19, tls1_server_last=23, midstream=False), "NFC"),
    ("greeting re-sent inside TLS #1 (VDDK's BANNER)", feats(tls1_server_first=170, midstream=False), "NFC"),
]


@pytest.mark.parametrize("name, f, label", HANDOFF, ids=[h[0] for h in HANDOFF])
def test_second_handshake_rule(name, f, label):
    v = cl._second_handshake(REC, f)
    assert v.label == label, (name, v.reasons)
    assert v.judged_as == "handoff"
