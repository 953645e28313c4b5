"""Plain VNC consoles for the lab: a VM's ``RemoteDisplay.vnc`` port spoken to directly.

Why: the training material compares MKS over 902 with the vmx VNC route the source article warns
about. The opening is RFB 3.8 as RFC 6143 defines it (and as x11vnc speaks it, see
tests/test_vnc.py): ProtocolVersion both ways, the security list, VNC Authentication's
16-byte challenge and response (or None), SecurityResult, ClientInit, ServerInit; after it the
same console-use model as the MKS stream (lab/rfb.py), here in clear.
"""

from __future__ import annotations

import struct

from . import rfb
from .channel import CLIENT, SERVER, Step
from .scenarios import Client, Flow, Scenario

NONE, VNC_AUTH = 1, 2


def opening(screen: rfb.Screen, pace, rng, password: bool, accept: bool = True) -> list[Step]:
    """RFB 3.8 from ProtocolVersion to the first full update (marks ``rfb_version``,
    ``rfb_security``, ``rfb_challenge``, ``rfb_result``, ``rfb_server_init``)."""
    kind = VNC_AUTH if password else NONE
    steps = [Step(SERVER, b"RFB 003.008\n", pace("reply"), "rfb_version"),
             Step(CLIENT, b"RFB 003.008\n", pace("program")),
             Step(SERVER, bytes([1, kind]), pace("reply"), "rfb_security"),
             Step(CLIENT, bytes([kind]), pace("program"))]
    if password:
        steps += [Step(SERVER, rng.randbytes(16), pace("reply"), "rfb_challenge"),
                  Step(CLIENT, rng.randbytes(16), pace.between(1.5, 4.0))]  # the user types the password; DES(challenge, pw[:8])
    if not accept:
        reason = b"Authentication failed"
        steps.append(Step(SERVER, struct.pack("!II", 1, len(reason)) + reason, pace("reply"), "rfb_result"))
        return steps
    steps += [Step(SERVER, struct.pack("!I", 0), pace("reply"), "rfb_result"),
              Step(CLIENT, b"\x01", pace("program")),
              Step(SERVER, screen.server_init(), pace("reply"), "rfb_server_init"),
              Step(CLIENT, (rfb.set_pixel_format(), rfb.set_encodings(rfb.CLIENT_ENCODINGS[:6]),
                            rfb.update_request(False, 0, 0, screen.width, screen.height)), pace("program")),
              Step(SERVER, screen.update([(0, 0, screen.width, screen.height, 0.25)]), pace("render"),
                   "rfb_first_update"),
              Step(CLIENT, rfb.update_request(True, 0, 0, screen.width, screen.height), pace("program"))]
    return steps


def vnc_console(sc: Scenario, client: Client, server_ip: str, port: int, at: float, seconds: float, *,
                vm: str = "vm01", password: bool = True, accept: bool = True, end: str = "close",
                width: int = 1024, height: int = 768) -> Flow:
    """A plain-VNC console of ``vm`` on ``server_ip:port``: the opening, ``seconds`` of use, then the
    client's FIN (``end="close"``) or the server's RST (``end="reset"``, e.g. the VM migrated)."""
    flow, ch, pace, rng = sc.tcp(client, server_ip, port, at)
    ch.conv.open(mark="syn")
    screen = rfb.Screen(rng, width=width, height=height, name=vm)
    ch.play(opening(screen, pace, rng, password, accept))
    if accept:
        ch.play(rfb.console_use(screen, pace, rng, seconds))
    if end == "reset":
        ch.conv.reset(at=ch.ready(SERVER) + pace.between(0.05, 0.2), by="server", mark="rst")
    else:
        ch.close(CLIENT, pace.between(0.2, 1.0))
    security = "VNC Authentication" if password else "None"
    sc.label(flow, feature="NONE", service="vnc", transport="plain", expected={"app": "vnc"},
             related={"rfb": {"version": "003.008", "security": security,
                              "auth_result": "ok" if accept else "failed",  # 3.8: a SecurityResult for None too
                              "desktop": vm if accept else None, "width": width if accept else None,
                              "height": height if accept else None, "end": end}},
             notes=f"plain VNC (vmx RemoteDisplay.vnc) console of {vm} on port {port}, security {security}"
                   + ("" if accept else ", password rejected"))
    return flow
