"""Same seed, same capture on every Python build (issue 14).

Debian builds Python with OpenSSL's DEFAULT cipher list (60 suites), pyenv and python.org builds
with Python's own (17): a lab context that relied on the interpreter's default offered a longer
ClientHello there, and every label after it shifted.  The lab states its TLS offer explicitly
(``tlsbio``); these tests check it on this interpreter and, when another interpreter with the
package's dependencies is available, that both write the same scenario.

Other interpreters: ``DISSECT902_PYTHONS`` (``:``-separated; CI sets it to a venv made from
Debian's ``/usr/bin/python3``), else the checkout's ``.venv*/bin/python`` that are a different
build than this one.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from dissect.port902.lab import tlsbio
from dissect.port902.lab.certs import host_cert
from dissect.port902.lab.tlsbio import TlsPair

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import hashlib, json, sys, tempfile, os
from dissect.port902.lab import samples, tlsbio
from dissect.port902.lab.certs import host_cert
from dissect.port902.lab.tlsbio import TlsPair
out = {"profile": tlsbio.pinned_profile(), "hello": {}}
for v in ("1.0", "1.1", "1.2", "1.3"):
    flights = TlsPair(host_cert("esx-a.lab"), v).handshake()
    out["hello"][v] = [(side, len(data)) for side, data in flights]
with tempfile.TemporaryDirectory() as tmp:
    labels = samples.write_scenario(sys.argv[1], tmp)
    out["labels"] = labels
    out["size"] = os.path.getsize(os.path.join(tmp, labels["capture"]["file"]))
print(json.dumps(out, sort_keys=True, default=str))
"""


def _build(python: str) -> str | None:
    try:
        return subprocess.run([python, "-c", "import sys, ssl; print(sys.version, ssl.OPENSSL_VERSION, "
                               "ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).options, sys.prefix)"],
                              capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def other_interpreters() -> list[str]:
    listed = [p for p in os.environ.get("DISSECT902_PYTHONS", "").split(":") if p]
    candidates = listed or [str(p) for p in sorted(ROOT.glob(".venv*/bin/python"))]
    own = _build(sys.executable)
    found = []
    for python in candidates:
        build = _build(python)
        if build is None:
            if listed:
                pytest.fail(f"DISSECT902_PYTHONS names {python}, which does not run")
            continue
        if build != own and os.path.realpath(python) != os.path.realpath(sys.executable):
            found.append(python)
    return found


def probe(python: str, scenario: str = "mixed_esxi") -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([python, "-c", PROBE, scenario], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_contexts_offer_the_stated_cipher_list_not_the_builds_default(version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:@SECLEVEL=0")            # whatever the build had, _pin must replace it
    tlsbio._pin(ctx, version, None)
    offered = [c["name"] for c in ctx.get_ciphers() if not c["name"].startswith("TLS_")]
    stated = (tlsbio.LEGACY_CIPHERS if version in tlsbio.LEGACY else tlsbio.MODERN_CIPHERS).split(":")
    assert offered == [name for name in stated if name in offered]  # order kept, nothing added
    assert len(offered) >= len(stated) - 6                           # a build may lack SRP/PSK, no more


def test_options_are_assigned_not_inherited():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.options |= ssl.OP_NO_TICKET | ssl.OP_NO_RENEGOTIATION
    tlsbio._pin(ctx, "1.2", None)
    assert ctx.options == tlsbio.OPTIONS
    tlsbio._pin(ctx, "1.2", None, tickets=False)
    assert ctx.options == tlsbio.OPTIONS | ssl.OP_NO_TICKET


def test_client_hello_size_follows_the_stated_list():
    """The TLS 1.2 ClientHello grows by 2 bytes per offered suite: the pinned list decides its size."""
    cert = host_cert("esx-a.lab")
    default = len(TlsPair(cert, "1.2").handshake()[0][1])
    one = len(TlsPair(cert, "1.2", ciphers="ECDHE-RSA-AES128-GCM-SHA256").handshake()[0][1])
    assert default - one == 2 * (len(tlsbio.MODERN_CIPHERS.split(":")) - 1)


@pytest.mark.slow
def test_same_seed_same_capture_on_every_interpreter():
    others = other_interpreters()
    if not others:
        pytest.skip("no second Python build (set DISSECT902_PYTHONS, e.g. a venv made from /usr/bin/python3)")
    mine = probe(sys.executable)
    for python in others:
        theirs = probe(python)
        assert theirs["profile"]["openssl"] == mine["profile"]["openssl"] or pytest.skip(
            f"{python} links another OpenSSL ({theirs['profile']['openssl']}): groups and TLS 1.3 suites differ")
        assert theirs["profile"] == mine["profile"], python
        assert theirs["hello"] == mine["hello"], python
        assert theirs["labels"] == mine["labels"], python
        assert theirs["size"] == mine["size"], python
