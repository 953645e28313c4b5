"""authd control-channel dialogues: the exact lines each side sends (a script, not a parser).

Why: every fact here is a wire fact from protocol.md (§2 banners, §3 commands and replies,
§4.2 MKS, §5.3 NFC, §3.5 credential login); scenarios turn these scripts into packets. Lines end
in CRLF; each ``Step`` is one write, i.e. one TLS record inside TLS #1.

Two exchanges have no public wire definition (protocol.md §6) and are the lab's *model*:
``vmxargs_control`` (a ``CONNECT_ARGV`` line answered like ``CONNECT``) and the scanner probe
answer on SSL-required daemons (connection closed, per the VDDK write-up).

Marks name the moments a dissector must find: ``banner``, ``user``, ``login_ok`` /
``login_failed``, ``thumbprint``, ``connect``, ``handoff`` (the ``200 Connect`` reply, last record
of TLS #1), ``session``, ``proxy``.
"""

from __future__ import annotations

import base64
import random

from .channel import CLIENT, SERVER, Step
from .pace import Pace

CRLF = b"\r\n"
_HELLO = "220 VMware Authentication Daemon Version "
_SOAP_VNC = "ServerDaemonProtocol:SOAP, MKSDisplayProtocol:VNC "

BANNERS = {
    "B1": _HELLO + "1.00",
    "B2": _HELLO + "1.10: SSL Required",
    "B3": _HELLO + "1.10: SSL Required, MKSDisplayProtocol:VNC ",
    "B4": _HELLO + "1.10: SSL Required, " + _SOAP_VNC + ",",
    "B5": _HELLO + "1.10: SSL Required, " + _SOAP_VNC + ", VMXARGS supported, NFCSSL supported",
    "B6": _HELLO + "1.10: SSL Required, " + _SOAP_VNC + ", VMXARGS supported, NFCSSL supported/t",
    "B7": _HELLO + "1.10: SSL Required, " + _SOAP_VNC + ", VMXARGS supported, NFCSSL supported/t, SHA256 supported",
    "B8": _HELLO + "1.10: SSL Required, " + _SOAP_VNC + ", , NFCSSL supported/t",
    "B9": _HELLO + "1.10: SSL Required, " + _SOAP_VNC + ", , NFCSSL supported",
    "B10": _HELLO + "1.0, " + _SOAP_VNC + ", ,",
}

PLEASE_LOGIN = "530 Please login with USER and PASS."
LOGIN_INCORRECT = "530 Login incorrect."


def line(text: str) -> bytes:
    """One protocol line with its CRLF."""
    return text.encode() + CRLF


def banner(banner_id: str) -> bytes:
    """The greeting line ``banner_id`` (``B1``..``B10``) with CRLF."""
    return line(BANNERS[banner_id])


# -- identifiers as they appear on the wire ---------------------------------------------------

def ticket(rng: random.Random) -> str:
    """A UUID-shaped ticket / session id like ``52cf8c64-9343-7cb7-d151-1bfc481bb7d5``."""
    h = "52" + "".join(rng.choice("0123456789abcdef") for _ in range(30))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def client_token(rng: random.Random) -> str:
    """The MKS / nfcssl client token: base64 of 12 random bytes (16 characters)."""
    return base64.b64encode(rng.randbytes(12)).decode()


def datastore_path(rng: random.Random, vm: str, suffix: str = ".vmx") -> str:
    """``/vmfs/volumes/<datastore uuid>/<vm>/<vm><suffix>`` as in MKS tickets' cfgFile."""
    hexes = "".join(rng.choice("0123456789abcdef") for _ in range(32))
    uuid = f"{hexes[:8]}-{hexes[8:16]}-{hexes[16:20]}-{hexes[20:32]}"
    return f"/vmfs/volumes/{uuid}/{vm}/{vm}{suffix}"


# -- dialogues ------------------------------------------------------------------------------

def login(pace: Pace, user: str, password: str, ok: bool, silent_failure: bool = False) -> list[Step]:
    """``USER`` / ``331`` / ``PASS`` / ``230`` or ``530 Login incorrect.`` (§3.5).

    ``silent_failure`` leaves a wrong password unanswered (seen on Workstation, §3.3).
    """
    steps = [
        Step(CLIENT, line(f"USER {user}"), pace("program"), "user"),
        Step(SERVER, line(f"331 Password required for {user}."), pace("reply")),
        Step(CLIENT, line(f"PASS {password}"), pace("program"), "pass"),
    ]
    if ok:
        steps.append(Step(SERVER, line(f"230 User {user} logged in."), pace("reply"), "login_ok"))
    elif not silent_failure:
        steps.append(Step(SERVER, line(LOGIN_INCORRECT), pace("reply"), "login_failed"))
    return steps


def mks_control(pace: Pace, ticket_id: str, token: str, sha1: str, vmx: str) -> list[Step]:
    """MKS console set-up inside TLS #1 (§4.2 steps 3–10); TLS #2 follows ``handoff``."""
    return [
        *login(pace, ticket_id, ticket_id, ok=True),
        Step(CLIENT, line(f"THUMBPRINT {token}"), pace("program"), "thumbprint"),
        Step(SERVER, line(f"200 {sha1}"), pace("reply")),
        Step(CLIENT, line(f"CONNECT {vmx} mks"), pace("program"), "connect"),
        Step(SERVER, line(f"200 Connect {vmx}"), pace("mks_attach"), "handoff"),
    ]


def nfc_vddk_control(pace: Pace, session_id: str, banner_id: str, thumb: str, ssl: bool,
                     service: str | None = None) -> list[Step]:
    """VDDK NFC set-up inside TLS #1 (§5.3 a): SESSION+BANNER in one flight, … ``200 Connect``.

    ``thumb`` is the host's SHA-256 thumbprint (``THUMBPRINT_SHA2``, servers with ``SHA256
    supported``) or its SHA-1 thumbprint (``THUMBPRINT``, older servers). ``service`` defaults
    to ``vpxa-nfc`` / ``vpxa-nfcssl`` (vCenter ticket); ``nfc`` is the direct-ESXi form. The
    reply names ``ha-nfc`` / ``ha-nfcssl``.
    """
    service = service or ("vpxa-nfcssl" if ssl else "vpxa-nfc")
    target = "ha-nfcssl" if ssl else "ha-nfc"
    command = "THUMBPRINT_SHA2" if len(thumb) > 59 else "THUMBPRINT"
    return [
        Step(CLIENT, (line(f"SESSION {session_id}"), line("BANNER ")), pace("program"), "session"),
        Step(SERVER, banner(banner_id), pace("reply")),
        Step(CLIENT, line(f"{command} PlainText"), pace("program"), "thumbprint"),
        Step(SERVER, line(f"200 {thumb}"), pace("reply")),
        Step(CLIENT, line(f"PROXY {service}"), pace("program"), "proxy"),
        Step(SERVER, line(f"200 Connect {target}"), pace("proxy"), "handoff"),
    ]


def nfclib_control(pace: Pace, session_id: str, service: str, token: str, sha1: str) -> list[Step]:
    """VMware nfclib-style NFC set-up inside TLS #1 (§5.3 b): SESSION, THUMBPRINT, PROXY."""
    target = "ha-nfcssl" if service.endswith("ssl") else "ha-nfc"
    return [
        Step(CLIENT, line(f"SESSION {session_id}"), pace("program"), "session"),
        Step(CLIENT, line(f"THUMBPRINT {token}"), pace("program"), "thumbprint"),
        Step(SERVER, line(f"200 {sha1}"), pace("reply")),
        Step(CLIENT, line(f"PROXY {service}"), pace("program"), "proxy"),
        Step(SERVER, line(f"200 Connect {target}"), pace("proxy"), "handoff"),
    ]


def vmxargs_control(pace: Pace, vmx: str, args: list[str]) -> list[Step]:
    """Lab model of a VMXARGS exchange: ``CONNECT_ARGV <vmx> <args…>`` answered ``200 Connect``.

    Only the command name is public (§3.3, §6); syntax and reply are assumptions.
    """
    return [
        Step(CLIENT, line(" ".join(["CONNECT_ARGV", vmx, *args])), pace("program"), "connect_argv"),
        Step(SERVER, line(f"200 Connect {vmx}"), pace("mks_attach"), "vmxargs_reply"),
    ]


def probe_answer(ssl_required: bool) -> bytes | None:
    """What authd says to a plaintext probe line before login (§11.1.2): 530, or nothing."""
    return None if ssl_required else line(PLEASE_LOGIN)
