"""The authd dialogue decoded from TLS #1 record sizes (infer_dialogue), table-driven.

Each case writes the records a real client and server would produce for a dialogue — the
record length is the line's length plus the cipher's overhead (GCM in TLS 1.2: 24 bytes;
TLS 1.3: 17; CBC: IV + MAC + padding) — and checks the label, the decoded lines and the login
outcomes.  Sizes come from the line texts themselves (``len("USER root\\r\\n")``), so a test
fails when a grammar rule of the decoder is broken.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dissect.port902.infer import dialogue as dlg
from dissect.port902.infer.classify import classify
from dissect.port902.analyzers.session import Handshake, ServerHelloInfo

GCM12 = (0x0303, 0xC030)  # ECDHE-RSA-AES256-GCM-SHA384
TLS13 = (0x0304, 0x1301)
CBC12 = (0x0303, 0xC014)  # ECDHE-RSA-AES256-SHA (TLS 1.2: explicit IV, SHA-1 MAC)
TICKET = "52cf8c64-9343-7cb7-d151-1bfc481bb7d5"
VMX = "/vmfs/volumes/56d5c29a-ac1ca31f-fd75-089e01d8b64c/web01/web01.vmx"
SHA1 = ":".join(["AB"] * 20)
SHA256 = ":".join(["CD"] * 32)
BANNER7 = ("220 VMware Authentication Daemon Version 1.10: SSL Required, ServerDaemonProtocol:SOAP, "
           "MKSDisplayProtocol:VNC , VMXARGS supported, NFCSSL supported/t, SHA256 supported")


def hs(index, version_cipher):
    h = Handshake(index, 0.0, 1)
    h.server_hello = ServerHelloInfo(0x0303, version_cipher[0], version_cipher[1], ())
    return h


def rec_len(n: int, vc) -> int:
    """Record length of an n-byte plaintext line under the cipher."""
    version, cipher = vc
    if version >= 0x0304:
        return n + 17
    if cipher == 0xC030:
        return n + 24
    # CBC, TLS 1.2, SHA-1: IV 16 + (n + 20 MAC + pad to a 16-byte multiple, at least one pad byte)
    body = n + 20 + 1
    return 16 + body + (-body) % 16


def session(lines, vc=GCM12, second=None, clear=False, tls13_tickets=0, finished_first=True):
    """lines: ("C"|"S", text or int size); the records of TLS #1 (and TLS #2's first record)."""
    h1 = hs(1, vc)
    handshakes = [h1]
    recs, t, frame = [], 1.0, 10
    if vc[0] >= 0x0304:
        recs.append((t, frame, 1, 23, 2000, 1))  # the server's encrypted handshake flight
        t += 0.01
        recs.append((t, frame + 1, 0, 23, 53, 1))  # the client's Finished
        frame += 2
    for i, (side, line) in enumerate(lines):
        n = line if isinstance(line, int) else len(line) + 2
        t += 0.01
        frame += 1
        recs.append((t, frame, 0 if side == "C" else 1, 23, rec_len(n, vc), 1))
        if vc[0] >= 0x0304 and i == 0 and tls13_tickets:  # tickets arrive after the first command
            for _ in range(tls13_tickets):
                t += 0.001
                frame += 1
                recs.append((t, frame, 1, 23, 250, 1))
    if second is not None:
        h2 = hs(2, GCM12)
        h2.ts, h2.frame = t + 0.1, frame + 1
        handshakes.append(h2)
        recs.append((t + 0.2, frame + 5, 0, 23, second + 24, 2))
        recs.append((t + 0.3, frame + 6, 1, 23, 5000, 2))
    arrays = [list(x) for x in zip(*recs)]
    return SimpleNamespace(
        uid="Ctest", handshakes=handshakes, records=lambda: zip(*arrays), continued_in_clear=clear,
        clear_after_tls_frame=frame + 1 if clear else None, banner=object(), roles_from="handshake",
        nfc_message_types={"NFC_CLIENTRANDOM": 1} if clear else {}, nfc_aio_types={}, transport="tls",
        duration_s=t, bytes=(1000, 1000), state="closed", dialogue=[], connect_kind=None, login_attempts=0,
        syn_count=1, rst_frame=None, login_outcome="none")


def handoff_of(rec):
    return "tls2" if len(rec.handshakes) > 1 else "clear" if rec.continued_in_clear else "none"


def decoded(rec):
    first = None
    if len(rec.handshakes) > 1:
        first = next(dlg.plaintext_interval(ln, rec.handshakes[1]) for _t, _f, d, ct, ln, h in rec.records()
                     if h == 2 and d == 0)
    return dlg.decode(rec, handoff_of(rec), first)


def login(user, password, ok, echo=True):
    return [("C", f"USER {user}"), ("S", f"331 Password required for {user}." if echo else "331 Password required."),
            ("C", f"PASS {password}"), ("S", f"230 User {user} logged in." if ok else "530 Login incorrect.")]


MKS_LINES = login(TICKET, TICKET, True) + [("C", "THUMBPRINT QUJDREVGR0hJSktM"), ("S", f"200 {SHA1}"),
                                          ("C", f"CONNECT {VMX} mks"), ("S", f"200 Connect {VMX}")]
NFC_VDDK = [("C", len(f"SESSION {TICKET}\r\nBANNER \r\n") - 2), ("S", BANNER7), ("C", "THUMBPRINT_SHA2 PlainText"),
            ("S", f"200 {SHA256}"), ("C", "PROXY vpxa-nfcssl"), ("S", "200 Connect ha-nfcssl")]
NFCLIB = [("C", f"SESSION {TICKET}"), ("C", "THUMBPRINT PlainText"), ("S", f"200 {SHA1}"), ("C", "PROXY nfc"),
          ("S", "200 Connect ha-nfc")]


@pytest.mark.parametrize("name, lines, kw, label, logins", [
    ("three rejected logins on one connection (hydra)",
     login("root", "toor", False) + login("root", "vmware", False) + login("admin", "admin", False), {},
     "NONE", ["rejected"] * 3),
    ("a login accepted, then closed (a scanner with valid credentials)", login("root", "vmware", True), {},
     "NONE", ["accepted"]),
    ("cut off after an odd command: a second USER before the server hung up",
     login("root", "x", False) + [("C", "USER admin")], {}, "NONE", ["rejected"]),
    ("TLS 1.3: the USER record goes out before the server's two NewSessionTickets arrive",
     login("root", "toor", False), {"vc": TLS13, "tls13_tickets": 2}, "NONE", ["rejected"]),
    ("MKS ticket login, THUMBPRINT, CONNECT <vmx> mks, TLS #2 with the 16-byte token", MKS_LINES,
     {"second": 16}, "MKS", ["accepted"]),
    ("MKS under AES-CBC: sizes known to a block only", MKS_LINES, {"vc": CBC12, "second": 16}, "MKS", ["accepted"]),
    ("NFC, VDDK: SESSION+BANNER, greeting re-sent, THUMBPRINT_SHA2, PROXY vpxa-nfcssl, TLS #2", NFC_VDDK,
     {"second": 264}, "NFC", []),
    ("NFC, nfclib: SESSION, THUMBPRINT PlainText, PROXY nfc, then cleartext", NFCLIB, {"clear": True}, "NFC", []),
    ("SOAP: one request of ~440 bytes inside TLS #1 (not a CONNECT: the reply is not an echo)",
     login("vpxuser", "secret", True) + [("C", 440), ("S", 1200)], {}, "SOAP", ["accepted"]),
    ("VMXARGS: a login, one more command and its reply, no hand-off",
     login(TICKET, TICKET, True) + [("C", f"CONNECT_ARGV {VMX} -X msg.autoAnswer=TRUE"), ("S", "200 Start")], {},
     "VMXARGS", ["accepted"]),
])
def test_decoded_label_and_logins(name, lines, kw, label, logins):
    rec = session(lines, **kw)
    dec = decoded(rec)
    assert dec.best.template.label == label, (name, dlg.describe(dec.best))
    assert dec.best.logins == logins, name
    # every record was read as a line (TLS 1.3 tickets as tickets), none left unexplained
    assert all(step.tokens for step in dec.best.steps), dlg.describe(dec.best)


def test_reply_echo_ties_the_331_to_the_user_line():
    """The 331 reply echoes the USER argument: a reply of the wrong length makes the login template
    less likely (the tie is evidence, not decoration)."""
    good = decoded(session(login("administrator", "x", False)))
    bad_lines = login("administrator", "x", False)
    bad_lines[1] = ("S", "331 Password required for someone-else-entirely.")
    bad = decoded(session(bad_lines))
    assert good.best.template.label == bad.best.template.label == "NONE"
    assert good.best.loglik > bad.best.loglik + 1.0


def test_connect_reply_of_the_same_length_separates_mks_from_vmxargs():
    """'200 Connect <vmx>' is exactly as long as 'CONNECT <vmx> mks'; the VMXARGS model's reply is not tied."""
    dec = decoded(session(MKS_LINES))  # no hand-off seen: a console that did not open
    assert dec.best.template.label == "MKS"
    other = MKS_LINES[:-1] + [("S", "200 Start")]
    assert decoded(session(other)).best.template.label != "MKS" or \
        decoded(session(other)).posterior["MKS"] < dec.posterior["MKS"]


def test_mks_token_after_the_second_handshake_beats_an_nfc_sized_first_message():
    assert decoded(session(MKS_LINES, second=16)).posterior["MKS"] > decoded(session(MKS_LINES, second=264)).posterior["MKS"]


def test_proxy_is_short_and_connect_is_long():
    """A PROXY-sized last command before the hand-off is NFC; CONNECT-sized is MKS — with the same rest."""
    lines = login(TICKET, TICKET, True)
    nfc = decoded(session(lines + [("C", "PROXY vpxa-nfcssl"), ("S", "200 Connect ha-nfcssl")]))
    mks = decoded(session(lines + [("C", f"CONNECT {VMX} mks"), ("S", f"200 Connect {VMX}")]))
    assert nfc.best.template.label == "NFC" and mks.best.template.label == "MKS"


def test_rejected_and_accepted_are_told_apart_when_sizes_allow_and_flagged_when_not():
    exact = decoded(session(login("root", "x", True) + login("root", "y", False)))
    assert exact.best.logins == ["accepted", "rejected"]
    # CBC: '230 User ab logged in.' (24) and '530 Login incorrect.' (22) fall in one 16-byte block
    blurred = decoded(session(login("ab", "x", True), vc=CBC12))
    assert blurred.best.logins == ["ambiguous"]
    assert "undetermined" in dlg.login_summary(blurred.best.logins)


def test_unexplainable_records_are_unknown():
    rec = session([("C", 3), ("S", 3), ("C", 3), ("S", 3), ("C", 3), ("S", 3)])
    dec = decoded(rec)
    assert dec.best.template.label == "UNKNOWN"


def test_a_large_soap_request_spans_records():
    rec = session(login("vpxuser", "secret", True) + [("C", 16000), ("C", 9000), ("S", 30000 % 16000), ("S", 800)])
    dec = decoded(rec)
    assert dec.best.template.label == "SOAP", dlg.describe(dec.best)
    assert [s.note for s in dec.best.steps].count("continued") == 2


def test_describe_compresses_repeated_attempts():
    dec = decoded(session(login("root", "a", False) * 1 + login("root", "a", False) + login("root", "a", False)))
    assert "×3" in dlg.describe(dec.best)


def test_inferred_dialogue_names_each_record_and_the_runner_up():
    dec = decoded(session(MKS_LINES, second=16))
    rows = dec.inferred_dialogue()
    assert [r["line"] for r in rows][:2] == ["USER <ticket>", "331 Password required for <name>."]
    assert rows[-2]["line"] == "CONNECT <vmx path> mks" and rows[-2]["size"] == str(len(f"CONNECT {VMX} mks") + 2)
    assert all(r["direction"] in ("client", "server") for r in rows)


@pytest.mark.parametrize("lines, kw, label, floor", [
    (login("root", "toor", False) * 2, {"vc": TLS13, "tls13_tickets": 2}, "NONE", 0.9),
    (MKS_LINES, {"second": 16}, "MKS", 0.95),
    (NFC_VDDK, {"second": 264}, "NFC", 0.95),
])
def test_classify_uses_the_decoder_with_a_confidence_and_reasons(lines, kw, label, floor):
    v = classify(session(lines, **kw))
    assert v.label == label and v.confidence >= floor
    assert v.reasons[0].startswith("decoded from TLS #1 record sizes")
    assert v.dialogue and v.dialogue[0]["direction"] == "client"


def test_model_only_labels_keep_a_lower_confidence():
    v = classify(session(login("vpxuser", "secret", True) + [("C", 440), ("S", 1200)]))
    assert v.label == "SOAP" and v.confidence <= 0.85
    assert any("no public wire definition" in r for r in v.reasons)


@pytest.mark.parametrize("length, vc, expected", [
    (43, GCM12, (19, 19)),
    (36, TLS13, (19, 19)),
    (64, CBC12, (12, 27)),
])
def test_plaintext_interval(length, vc, expected):
    assert dlg.plaintext_interval(length, hs(1, vc)) == expected


def test_a_long_brute_force_is_decoded_in_linear_time_and_capped():
    import time

    def cost(n):
        rec = session(login("root", "toor", False) * n)
        t = time.process_time()  # CPU time of this process: other load on the machine is not counted
        dec = decoded(rec)
        return time.process_time() - t, dec

    cost(10)  # warm-up
    best = lambda n: min((cost(n) for _ in range(3)), key=lambda x: x[0])  # noqa: E731  (a burst of load is not the decoder)
    small, dec_small = best(20)
    large, dec_large = best(40)
    assert dec_small.best.logins == ["rejected"] * 20 and dec_large.best.logins == ["rejected"] * 40
    assert large / small < 3.5  # doubling the input at most ~doubles the time (ratio, not seconds)
    _, capped = cost(dlg.MAX_OBS)  # 4 records per attempt: only MAX_OBS records are decoded
    assert capped.observations == dlg.MAX_OBS and capped.not_decoded == 3 * dlg.MAX_OBS


def headless(lines, vc, drop=4):
    """The records of ``lines`` as a capture that began inside TLS #1 sees them: no handshake,
    the first ``drop`` records missed."""
    rec = session(lines, vc=vc)
    recs = [(t, f, d, ct, ln, 0) for t, f, d, ct, ln, h in rec.records()][drop:]
    return SimpleNamespace(uid="Cmid", handshakes=[], records=lambda: iter(recs), continued_in_clear=False,
                           banner=None, roles_from="ports", nfc_message_types={}, nfc_aio_types={},
                           transport="tls", duration_s=1.0, bytes=(500, 500), state="partial", dialogue=[],
                           connect_kind=None, login_attempts=0, syn_count=0, rst_frame=None, login_outcome="none",
                           clear_after_tls_frame=None)


@pytest.mark.parametrize("vc, overhead, drop", [(GCM12, "AES-GCM (TLS 1.2)", 4), (TLS13, "TLS 1.3 AEAD", 6)])
def test_a_brute_force_seen_from_its_middle_is_decoded_with_the_cipher_chosen_by_likelihood(vc, overhead, drop):
    # the capture missed the first attempt (and TLS 1.3's handshake records)
    rec = headless(login("root", "toor", False) * 3 + login("admin", "x", False), vc, drop)
    dec, chosen = dlg.decode_midway(rec)
    assert chosen == overhead and dec.best.template.label == "NONE"
    assert dec.best.logins == ["rejected"] * 3
    v = classify(rec)
    assert v.label == "NONE" and v.judged_as == "tls1" and v.confidence <= 0.8
    assert any("record overhead taken as" in r for r in v.reasons)


def test_block_alignment_rules_out_a_cbc_hypothesis():
    rec = headless(login("root", "toor", False) * 3, GCM12)
    lengths = [ln for _t, _f, _d, _ct, ln, _h in rec.records()]
    assert any((ln - 16) % 16 for ln in lengths)  # GCM records are not IV + whole blocks
    _dec, chosen = dlg.decode_midway(rec)
    assert "CBC" not in chosen


def test_console_traffic_is_not_read_as_a_login_midway():
    """Small client messages and varied server updates (RFB after a hand-off) may fit loose
    login readings, but their replies never land on the grammar's exact sizes or echoes."""
    import random

    rng = random.Random(5)
    lines = []
    for _ in range(30):
        lines += [("C", rng.choice([6, 8, 10])), ("S", rng.randint(20, 3000))]
    rec = headless(lines, GCM12, drop=0)
    v = classify(rec)
    assert v.judged_as != "tls1" and v.label != "NONE"
