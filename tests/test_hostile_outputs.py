"""Hostile text stays inert in every output, and no secret reaches any of them (issue 13).

One capture carries attacker-chosen text at every place a peer controls: the authd banner, the
USER name, reply text, the CONNECT path, a 1 MB line, the TLS server name and the certificate's
subject on 902 and on 443, a DNS name that fails, an HTTP target on the vCenter relay port.  The
text mixes ANSI/OSC escapes, C1 controls, NUL, invalid UTF-8, a bidi override (U+202E), HTML and
matplotlib mathtext (``$...$``, which would be typeset or raise if passed to a label as is).

Every output a user can ask for is produced from it: ``analyze`` in table, JSON, JSONL, every
CSV table, Parquet; ``doctor`` in table and JSON; the HTML report; every chart kind (PNG: the
pixels of the two captures are compared; the labels' text is checked through the Figure); with ``LC_ALL=C``-style ASCII stdout too.  The claims:

* no raw control character, C1 control or bidi override in any text output (terminal, CSV, HTML,
  chart labels); the data itself is kept (JSON carries the exact string, escaped);
* mathtext is never interpreted in a chart (the ``$`` survives as a character);
* the HTML has no element the capture put there;
* the password, chosen as a substring of ordinary reply text, appears in none of the outputs,
  and two captures that differ only in the password give identical outputs.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dissect.port902.cli.main import main
from dissect.port902.lab import failkit
from dissect.port902.lab.failkit import ADMIN, RESOLVER, VCENTER
from dissect.port902.model.schema import FRAME_TABLES

# what no text output may contain raw: C0 controls but \t \n \r, DEL, C1, bidi controls
RAW_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
EVIL = "\x1b[2J\x1b]0;owned\x07\x00\x9b1m\u202e<script>alert(1)</script>$\\frac{a}{b}$ $x^2$"
EVIL_BYTES = EVIL.encode("utf-8") + b"\xff\xfe\xc3("  # ends in invalid UTF-8
ESXI = "10.40.0.11"


def client_hello(sni: bytes) -> bytes:
    """A TLS 1.2 ClientHello record whose server_name is ``sni``, as any client may send it."""
    name = b"\x00" + struct.pack("!H", len(sni)) + sni
    sni_ext = struct.pack("!HH", 0, len(name) + 2) + struct.pack("!H", len(name)) + name
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + b"\x00\x04\xc0\x2f\x00\x9c" + b"\x01\x00"
            + struct.pack("!H", len(sni_ext)) + sni_ext)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def server_flight(cert_der: bytes) -> bytes:
    """ServerHello, Certificate, ServerHelloDone in one TLS 1.2 record."""
    sh = b"\x03\x03" + bytes(range(32, 64)) + b"\x00" + b"\xc0\x2f" + b"\x00"
    certs = len(cert_der).to_bytes(3, "big") + cert_der
    cm = len(certs).to_bytes(3, "big") + certs
    msgs = (b"\x02" + len(sh).to_bytes(3, "big") + sh + b"\x0b" + len(cm).to_bytes(3, "big") + cm
            + b"\x0e\x00\x00\x00")
    return b"\x16\x03\x03" + struct.pack("!H", len(msgs)) + msgs


@functools.cache
def hostile_certificate() -> bytes:
    """A self-signed certificate whose subject and issuer CN are the hostile text (one per run:
    an ECDSA signature's length varies, and the two captures must differ only in the password)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, EVIL[:60])])
    t0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(902).not_valid_before(t0).not_valid_after(t0 + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def write_hostile(path: Path, password: str) -> Path:
    sc = failkit.FailureScenario("hostile-outputs", 7)
    # a plaintext daemon (912) whose banner, replies and dialogue are hostile, with a login
    flow, ch, _, _ = sc.tcp(ADMIN, ESXI, 912, sc.at(0.0))
    c = ch.conv
    c.open()
    c.server_send(b"220 VMware Authentication Daemon Version 1.0, ServerDaemonProtocol:SOAP, "
                  + EVIL_BYTES + b", MKSDisplayProtocol:VNC ,\r\n")
    c.client_send(b"USER " + EVIL_BYTES + b"\r\n")
    c.server_send(b"331 Password required for " + EVIL_BYTES + b". Login or root\r\n")
    c.client_send(b"PASS " + password.encode() + b"\r\n")
    c.server_send(b"230 User logged in. Login or root\r\n")
    c.client_send(b"CONNECT /vmfs/volumes/" + EVIL_BYTES + b"/vm.vmx mks\r\n")
    c.server_send(b"200 Connect " + EVIL_BYTES + b"\r\n")
    c.client_send(b"NOOP " + b"\x1b[31m$x$" * (1 << 17) + b"\r\n")  # a 1 MB line
    c.close()
    sc.label(flow, feature="NONE", service="authd", transport="plain")
    # an SSL daemon on 902: hostile server name in the ClientHello, hostile certificate subject
    flow, ch, _, _ = sc.tcp(ADMIN, ESXI, 902, sc.at(1.0))
    c = ch.conv
    c.open()
    c.server_send(b"220 VMware Authentication Daemon Version 1.10: SSL Required, " + EVIL_BYTES + b"\r\n")
    c.client_send(client_hello(EVIL_BYTES[:200]))
    c.server_send(server_flight(hostile_certificate()))
    c.close()
    sc.label(flow, feature="NONE", service="authd", transport="tls")
    # the same on 443 (console-path checks) and a hostile relay target on 7331
    flow, ch, _, _ = sc.tcp(ADMIN, ESXI, 443, sc.at(2.0))
    ch.conv.open()
    ch.conv.client_send(client_hello(EVIL_BYTES[:200]))
    ch.conv.reset(by="server")
    sc.label(flow, feature="NONE", service="https", transport="tls")
    flow, ch, _, _ = sc.tcp(ADMIN, VCENTER.ip, 7331, sc.at(3.0))
    ch.conv.open()
    ch.conv.client_send(b"GET /console/?vmId=" + EVIL_BYTES[:40] + b"&sessionTicket=" + password.encode()
                        + b" HTTP/1.1\r\nUpgrade: " + EVIL_BYTES[:30] + b"\r\n\r\n")
    ch.conv.server_send(b"HTTP/1.1 400 " + EVIL_BYTES[:30] + b"\r\n\r\n")
    ch.conv.close()
    sc.label(flow, feature="NONE", service="http", transport="plain")
    # a failing lookup of a hostile name
    dns = sc.udp(ADMIN, RESOLVER, 53, sc.at(4.0))
    labels = (EVIL_BYTES[:40], b"corp", b"example")
    query = (bytes.fromhex("4242 0100 0001 0000 0000 0000") + b"".join(bytes([len(x)]) + x for x in labels)
             + b"\x00\x00\x01\x00\x01")
    dns.conn.send("client", query, sc.at(4.0))
    dns.conn.send("server", failkit.dns_reply(query, 3), sc.at(4.002))
    sc.label(dns, feature="NONE", service="dns", transport="udp")
    sc.write(path)
    return path


def outputs(capture: Path, tmp: Path, capsys) -> dict[str, str]:
    """Every output of every command, as text (Parquet as its pandas JSON)."""
    import pandas as pd

    out: dict[str, str] = {}

    def run(name: str, *args: str) -> None:
        capsys.readouterr()
        code = main(list(args))
        assert code in (0, 1), (name, code)
        text = capsys.readouterr()
        out[name] = text.out
        out[name + ":stderr"] = text.err

    for fmt in ("table", "json", "jsonl"):
        run(f"analyze:{fmt}", "analyze", str(capture), "-q", "-f", fmt)
    for table in FRAME_TABLES:
        run(f"csv:{table}", "analyze", str(capture), "-q", "-f", "csv", "--table", table)
        pq = tmp / f"{table}.parquet"
        assert main(["analyze", str(capture), "-q", "-f", "parquet", "--table", table, "-o", str(pq)]) == 0
        out[f"parquet:{table}"] = pd.read_parquet(pq).to_json(orient="split", date_format="iso")
    for fmt in ("table", "json"):
        run(f"doctor:{fmt}", "doctor", str(capture), "-q", "-f", fmt)
    report = tmp / "report.html"
    assert main(["report", str(capture), "-q", "-o", str(report)]) == 0
    out["report"] = report.read_text(encoding="utf-8")
    for kind in ("timeline", "bytes", "fingerprints", "hosts"):
        png = tmp / f"{kind}.png"
        assert main(["plot", str(capture), "-q", "-k", kind, "-o", str(png)]) == 0
        out[f"plot:{kind}"] = hashlib.sha256(png.read_bytes()).hexdigest()  # the pixels, compared below
    return out


@pytest.fixture(scope="module")
def hostile_outputs(tmp_path_factory):
    """Outputs for two captures that differ only in the password (same length)."""
    capsys_like = _Capture()
    docs = []
    for password in ("or", "qz"):
        tmp = tmp_path_factory.mktemp(f"hostile-{password}")
        cap = write_hostile(tmp / "hostile.pcap", password)
        with capsys_like:
            docs.append((cap, outputs(cap, tmp, capsys_like)))
    return docs


class _Capture:
    """capsys for a module-scoped fixture: swaps sys.stdout/sys.stderr for string buffers."""

    def __enter__(self):
        self._saved = sys.stdout, sys.stderr
        self._reset()
        return self

    def __exit__(self, *exc):
        sys.stdout, sys.stderr = self._saved

    def _reset(self):
        self._out, self._err = io.StringIO(), io.StringIO()
        sys.stdout, sys.stderr = self._out, self._err

    def readouterr(self):
        out, err = self._out.getvalue(), self._err.getvalue()
        self._reset()
        return type("Captured", (), {"out": out, "err": err})


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: set[str] = set()
        self.handlers: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.handlers += [k for k, _ in attrs if k.startswith("on")]


def test_no_raw_control_character_in_any_text_output(hostile_outputs):
    _, out = hostile_outputs[0]
    for name, text in out.items():
        if name.startswith("parquet:"):
            continue  # data, not text for a terminal: checked below that it keeps the exact value
        bad = RAW_UNSAFE.search(text)
        assert bad is None, f"{name}: raw {bad.group()!r} at {bad.start()}: {text[max(0, bad.start() - 60):bad.start() + 20]!r}"


def test_the_hostile_text_is_kept_as_data(hostile_outputs):
    _, out = hostile_outputs[0]
    doc = json.loads(out["analyze:json"])
    banners = [s["banner"]["text"] for s in doc["sessions"] if s.get("banner")]
    # wire bytes are kept one character per byte (latin-1): exact, and JSON escapes them
    assert any(EVIL_BYTES.decode("latin-1") in b for b in banners), banners
    hellos = [h["client_hello"] for s in doc["sessions"] for h in (s.get("tls") or {}).get("handshake_details", [])]
    assert any(h.get("sni", "").startswith("\x1b[2J\x1b]0;owned") for h in hellos), hellos
    assert "\\x1b[2J" in out["analyze:table"]  # the terminal sees it escaped
    assert any("\x1b[2J" in v for v in json.loads(out["parquet:sessions"])["data"][0] if isinstance(v, str))


def test_charts_never_typeset_the_capture(tmp_path):
    """Chart text is shown as written: a ``$...$`` is dollars, not mathtext (which would typeset
    it, or raise on a malformed formula and lose the chart)."""
    import matplotlib.pyplot as plt
    from matplotlib import rc_context

    from dissect.port902.analysis import analyze
    from dissect.port902.output import plots
    from dissect.port902.output.plots.style import STYLE

    with rc_context(STYLE):
        fig, ax = plt.subplots()
        ax.set_title("$\\frac{a}$ unbalanced } $x^2$")
        fig.canvas.draw()  # with mathtext on this raises ValueError
        plt.close(fig)
    result = analyze(write_hostile(tmp_path / "h.pcap", "or"))
    for kind in ("timeline", "bytes", "fingerprints", "hosts"):
        fig = plots.plot(result, kind)
        fig.canvas.draw()
        for t in fig.findobj(lambda a: hasattr(a, "get_parse_math")):
            assert not t.get_parse_math() or "$" not in t.get_text(), (kind, t.get_text())
            assert RAW_UNSAFE.search(t.get_text()) is None, (kind, t.get_text())
        plt.close(fig)


def test_html_report_has_no_element_from_the_capture(hostile_outputs):
    _, out = hostile_outputs[0]
    parser = _Elements()
    parser.feed(out["report"])
    assert not parser.handlers
    assert "<script>alert(1)" not in out["report"] and "&lt;script&gt;alert(1)" in out["report"]


def same_path(text: str, capture: Path) -> str:
    """``text`` with the capture's path (as written, or JSON-escaped by pandas) replaced."""
    text = text.replace(str(capture), "C").replace(str(capture).replace("/", "\\/"), "C")
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC · ", "WHEN · ", text)  # the report's "written at" stamp


def test_no_output_depends_on_the_password(hostile_outputs):
    (cap_a, a), (cap_b, b) = hostile_outputs
    for key in a:
        assert same_path(a[key], cap_a) == same_path(b[key], cap_b), f"{key} depends on the password"
    for key, text in a.items():
        assert "PASS or" not in text and "sessionTicket=or" not in text, key


def test_ascii_only_stdout_does_not_crash(tmp_path):
    """LC_ALL=C / PYTHONIOENCODING=ascii: table and doctor still print, escaped."""
    cap = write_hostile(tmp_path / "h.pcap", "or")
    env = {"PYTHONIOENCODING": "ascii", "LC_ALL": "C", "PATH": "/usr/bin:/bin"}
    for args in (["analyze", str(cap), "-q"], ["doctor", str(cap), "-q"]):
        r = subprocess.run([sys.executable, "-m", "dissect.port902", *args], capture_output=True, env=env)
        assert r.returncode in (0, 1), r.stderr.decode(errors="replace")
        assert b"Traceback" not in r.stderr and r.stdout
        assert all(b < 0x80 for b in r.stdout)
