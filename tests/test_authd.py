"""authd banner grammar, line splitting and the dialogue bookkeeping (byte literals)."""

import pytest

from dissect.port902.proto.authd import (
    REDACTED,
    Dialogue,
    LineBuffer,
    MAX_LINE,
    guess_product,
    looks_like_line,
    parse_banner,
)

B5 = ("220 VMware Authentication Daemon Version 1.10: SSL Required, ServerDaemonProtocol:SOAP, "
      "MKSDisplayProtocol:VNC , VMXARGS supported, NFCSSL supported")
B6 = B5 + "/t"
B7 = B6 + ", SHA256 supported"
B8 = ("220 VMware Authentication Daemon Version 1.10: SSL Required, ServerDaemonProtocol:SOAP, "
      "MKSDisplayProtocol:VNC , , NFCSSL supported/t")
B10 = "220 VMware Authentication Daemon Version 1.0, ServerDaemonProtocol:SOAP, MKSDisplayProtocol:VNC , ,"
B1 = "220 VMware Authentication Daemon Version 1.00"
B2 = "220 VMware Authentication Daemon Version 1.10: SSL Required"


@pytest.mark.parametrize(
    "line, version, ssl, product",
    [
        (B7, "1.10", True, "ESXi 8.x"),
        (B6, "1.10", True, "ESXi 6.x-7.x"),
        (B5, "1.10", True, "ESXi 5.x"),
        (B8, "1.10", True, "VMware Workstation (902)"),
        (B10, "1.0", False, "VMware Workstation (912, no SSL)"),
        (B1, "1.00", False, "legacy authd (GSX / ESX 2.x era, no SSL)"),
        (B2, "1.10", True, "legacy authd with SSL (ESX 3.x era)"),
    ],
)
def test_banner_variants(line, version, ssl, product):
    b = parse_banner(line)
    assert b is not None
    assert (b.version, b.ssl_required, b.product) == (version, ssl, product)


def test_banner_capabilities_of_esxi8():
    b = parse_banner(B7)
    assert b.capabilities == ("ServerDaemonProtocol:SOAP", "MKSDisplayProtocol:VNC", "VMXARGS supported",
                              "NFCSSL supported/t", "SHA256 supported")
    assert (b.server_daemon_protocol, b.mks_display_protocol) == ("SOAP", "VNC")
    assert b.vmxargs and b.nfcssl and b.nfcssl_t and b.sha256
    assert b.empty_slots == 0


def test_workstation_leaves_vmxargs_slot_empty():
    b = parse_banner(B8)
    assert not b.vmxargs and b.nfcssl and b.empty_slots == 1


def test_port_903_names_the_service_console():
    assert guess_product(parse_banner(B2), 903) == "classic ESX service console (903)"


@pytest.mark.parametrize("line", ["", "220 Welcome", "220 VMware Authentication Daemon", "SSH-2.0-OpenSSH",
                                  "220 VMware Authentication Daemon Version x"])
def test_not_a_banner(line):
    assert parse_banner(line) is None


def test_linebuffer_splits_across_chunks_and_keeps_first_frame():
    lb = LineBuffer()
    assert lb.feed(b"USER ro", 1.0, 10) == []
    out = lb.feed(b"ot\r\nPASS x\r\nQU", 2.0, 11)
    assert out == [(b"USER root", 1.0, 10, False), (b"PASS x", 2.0, 11, False)]
    assert lb.pending == b"QU"


def test_linebuffer_caps_overlong_lines():
    lb = LineBuffer()
    out = lb.feed(b"A" * (MAX_LINE + 500), 0.0, 1)
    assert len(out) == 1 and out[0][3] is True and len(out[0][0]) == MAX_LINE
    assert lb.overlong == 1


def test_dialogue_login_rejected_then_accepted_and_redacted():
    d = Dialogue()
    d.client_line(b"USER root", 1, 1)
    d.server_line(b"331 Password required for root.", 1, 2)
    d.client_line(b"PASS wrong-one", 1, 3)
    d.server_line(b"530 Login incorrect.", 1, 4)
    d.client_line(b"PASS s3cret!", 1, 5)
    d.server_line(b"230 User root logged in.", 1, 6)
    assert d.login_outcome == "accepted"
    assert (d.login_attempts, d.logins_failed, d.logins_ok, d.user) == (2, 1, 1, "root")
    texts = [ln.text for ln in d.lines]
    assert texts[2] == f"PASS {REDACTED}" and texts[4] == f"PASS {REDACTED}"
    assert not any("s3cret" in t or "wrong-one" in t for t in texts)


def test_ticket_is_redacted_everywhere_it_is_echoed():
    ticket = "52cf8c64-9343-7cb7-d151-1bfc481bb7d5"
    d = Dialogue()
    d.client_line(f"USER {ticket}".encode(), 0, 1)
    d.server_line(f"331 Password required for {ticket}.".encode(), 0, 2)
    d.client_line(f"PASS {ticket}".encode(), 0, 3)
    d.server_line(f"230 User {ticket} logged in.".encode(), 0, 4)
    d.client_line(b"CONNECT /vmfs/volumes/ds1/vm/vm.vmx mks", 0, 5)
    d.server_line(b"200 Connect /vmfs/volumes/ds1/vm/vm.vmx", 0, 6)
    assert all(ticket not in ln.text for ln in d.lines)
    assert d.user == REDACTED
    assert (d.connect_kind, d.connect_target, d.connect_ok) == ("mks", "/vmfs/volumes/ds1/vm/vm.vmx", True)


def test_show_secrets_keeps_them():
    d = Dialogue(show_secrets=True)
    d.client_line(b"PASS hunter2", 0, 1)
    assert d.lines[0].text == "PASS hunter2"


def test_session_id_is_a_secret_and_proxy_is_nfc_hand_off():
    d = Dialogue()
    d.client_line(b"SESSION 52cdebc5-b7ee-359a-1dec-76f0bc105ac5", 0, 1)
    d.client_line(b"PROXY vpxa-nfcssl", 0, 1)
    d.server_line(b"200 Connect ha-nfcssl", 0, 2)
    assert "52cdebc5" not in d.lines[0].text
    assert (d.connect_kind, d.connect_target, d.connect_ok) == ("proxy", "vpxa-nfcssl", True)


def test_looks_like_line():
    assert looks_like_line(b"USER root\r\n")
    assert not looks_like_line(b"\x16\x03\x01\x00\x10")
    assert not looks_like_line(b"")


def test_reply_code_only_from_ascii_digits():
    d = Dialogue()
    ln = d.server_line("4³² not a code".encode("latin-1", "replace"), 0, 1)
    assert ln.code is None
    ln = d.server_line("4\u00b3\u00b2 x".encode("utf-8").decode("latin-1").encode("latin-1"), 0, 2)
    assert ln.code is None


def test_package_keeps_every_name_where_callers_import_it():
    # proto/authd is a package (grammar, redact, dialogue); the names callers import stay here,
    # and each is the one object of its home module
    import importlib

    from dissect.port902.proto import authd

    homes = {name: importlib.import_module(f"dissect.port902.proto.authd.{name}")
             for name in ("grammar", "redact", "dialogue")}
    for name in authd.__all__:
        owners = [m for m in homes.values() if name in vars(m) and getattr(m, name) is getattr(authd, name)]
        assert owners, name
    assert authd.Dialogue.__module__ == "dissect.port902.proto.authd.dialogue"
    assert authd.LineBuffer.__module__ == "dissect.port902.proto.authd.grammar"
