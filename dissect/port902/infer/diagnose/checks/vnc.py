"""Checks on plain VNC consoles (``RemoteDisplay.vnc.*`` in the vmx; analyzers/vnc.py reads them):
the risks the source article names, and a VNC console that did not follow its VM.
"""

from __future__ import annotations

from collections import defaultdict

from ..context import _Candidate, _Context
from ...reconnects import OVERLAP_S, RECONNECT_WINDOW_S
from ..findings import _LIKELIHOOD, Finding, _frames, _plural, _when

MKS_DIFFERENCE = ("The MKS console over authd 902 differs on each point: it runs inside TLS (pinned to the "
                  "host thumbprint), authenticates with a one-time ticket from vCenter/hostd instead of a "
                  "password kept in the vmx, uses one port (902) per host for every VM, and vCenter hands the "
                  "client a new ticket for the new host after a vMotion.")
ADVICE = ("Open consoles through vSphere (MKS over 902 or WebMKS on 443) and turn the vmx route off "
          "(RemoteDisplay.vnc.enabled = FALSE); if VNC must stay, tunnel it (SSH or TLS), firewall the ports to "
          "the admins' addresses and set a password. ")


def vnc_findings(ctx: _Context) -> list[_Candidate]:
    """Per host with plain-VNC consoles: ``vnc_console`` (a warning: unencrypted console, DES
    challenge-response with an 8-character password, a port per VM - the VMs/ports seen are listed);
    ``vnc_no_auth`` (a problem: security type None, the console is open to anyone who reaches the
    port); ``vnc_no_follow`` (a problem: a VNC console ended and within RECONNECT_WINDOW_S the same
    client opened a 902 console to another host: the VM moved, the VNC route did not follow)."""
    vnc = getattr(ctx, "vnc", None)
    if vnc is None or not vnc.sessions:
        return []
    out = []
    by_host = defaultdict(list)
    for s in vnc.sessions:
        by_host[(s.source, s.server_ip)].append(s)
    for (_source, host), sessions in by_host.items():
        first = min(x.start for x in sessions)
        out.append(_Candidate("vnc_console", _LIKELIHOOD.get("vnc_console", 0.5), first, _render_console,
                              (ctx, host, sessions), severity="warning",
                              key=("vnc_console", _source, host)))
        open_ = [x for x in sessions if x.authentication == "none"]
        if open_:
            out.append(_Candidate("vnc_no_auth", _LIKELIHOOD.get("vnc_no_auth", 0.6), open_[0].start,
                                  _render_no_auth, (ctx, host, open_), key=("vnc_no_auth", _source, host)))
    # a working VNC console the server ended (RST, or its FIN first), then a 902 session from the same
    # client to another host; each 902 session answers the latest such VNC session before it
    broke = [s for s in vnc.sessions if s.width is not None and (s.state == "reset" or s.ended_by == "server")]
    for b in sorted(ctx.sessions, key=lambda x: x.start):
        before = [s for s in broke if s.source == b.source and s.client_ip == b.client_ip
                  and s.server_ip != b.server_ip and s.end - OVERLAP_S <= b.start <= s.end + RECONNECT_WINDOW_S]
        if before:
            s = max(before, key=lambda x: x.end)
            broke.remove(s)
            out.append(_Candidate("vnc_no_follow", _LIKELIHOOD.get("vnc_no_follow", 0.6), s.start,
                                  _render_no_follow, (ctx, s, b), key=("vnc_no_follow", s.uid, b.uid)))
    return out


def _auth_words(sessions) -> str:
    kinds = sorted({s.authentication or "not seen" for s in sessions})
    words = {"vnc": "VNC Authentication (DES challenge-response; the password is cut to 8 characters and kept "
                    "in clear in the vmx as RemoteDisplay.vnc.password)",
             "none": "no authentication (security type None)",
             "encrypted": "a TLS-based security type", "other": "another security type",
             "failed_negotiation": "a failed security negotiation", "not seen": "authentication not seen"}
    return "; ".join(words.get(k, k) for k in kinds)


def _render_console(ctx: _Context, host: str, sessions) -> Finding:
    ports = sorted({s.server_port for s in sessions})
    names = sorted({s.desktop_name for s in sessions if s.desktop_name})
    per_port = []
    for p in ports:
        ns = sorted({s.desktop_name for s in sessions if s.server_port == p and s.desktop_name})
        per_port.append(f"{p}" + (f" ('{', '.join(ns)}')" if ns else ""))
    clients = sorted({s.client_ip for s in sessions})
    frames = [s.version_frame for s in sessions] + [s.security_frame for s in sessions]
    detail = (f"{_plural(len(sessions), 'plain VNC session')} to {host} on {_plural(len(ports), 'port')} "
              f"({', '.join(per_port)}) from {', '.join(clients)}, RFB "
              f"{', '.join(sorted({s.server_version for s in sessions if s.server_version}))} "
              f"({_frames(frames)}): a console per VM on its own port (RemoteDisplay.vnc.port must be unique "
              f"across every host a VM can move to). The session is not encrypted: keystrokes, typed "
              f"passwords and the screen cross the network in clear. Authentication: {_auth_words(sessions)}. "
              + MKS_DIFFERENCE)
    title = f"plain VNC console{'s' if len(ports) > 1 else ''} on {host} (port{'s' if len(ports) > 1 else ''} " \
            f"{', '.join(str(p) for p in ports)})" + (f": {', '.join(names)}" if names else "")
    return Finding("vnc_console", title, detail, _LIKELIHOOD.get("vnc_console", 0.5), ADVICE + MKS_DIFFERENCE,
                   [*clients, host], min(s.start for s in sessions), max(s.end for s in sessions), frames,
                   [s.uid for s in sessions], severity="warning", source=sessions[0].source)


def _render_no_auth(ctx: _Context, host: str, sessions) -> Finding:
    ports = sorted({s.server_port for s in sessions})
    frames = [s.security_frame for s in sessions]
    detail = (f"{host} let {_plural(len(sessions), 'VNC session')} in without a password (security type None, "
              f"{_frames(frames)}; ports {', '.join(str(p) for p in ports)}): whoever reaches the port has the "
              f"VM's keyboard, mouse and screen.")
    return Finding("vnc_no_auth", f"VNC console without authentication on {host}", detail,
                   _LIKELIHOOD.get("vnc_no_auth", 0.6),
                   "Set RemoteDisplay.vnc.password or, better, disable RemoteDisplay.vnc.enabled and use the "
                   "vSphere console (MKS over 902 / WebMKS). " + MKS_DIFFERENCE,
                   sorted({s.client_ip for s in sessions}) + [host], sessions[0].start, sessions[-1].end, frames,
                   [s.uid for s in sessions], source=sessions[0].source)


def _render_no_follow(ctx: _Context, s, b) -> Finding:
    how = {"reset": "was reset", "closed": "ended", "established": "stopped"}.get(s.state, "ended")
    detail = (f"The VNC console of {s.client_ip} on {s.server} ({s.uid}, frames {s.first_frame}-{s.last_frame}) "
              f"{how} at {_when(s.end)}; {b.start - s.end:.1f} s later the same client opened a console on "
              f"{b.server} ({b.uid}, frame {b.first_frame}, {b.feature}). The VM most likely moved to "
              f"{b.server_ip} (vMotion) and the VNC connection, bound to a port on the old host, did not follow.")
    return Finding("vnc_no_follow", f"VNC console on {s.server_ip} did not follow the VM to {b.server_ip}", detail,
                   _LIKELIHOOD.get("vnc_no_follow", 0.6),
                   "A vmx VNC console is tied to one host's port and breaks on every migration; the vSphere "
                   "console (MKS over 902) follows the VM through vCenter. " + ADVICE,
                   [s.client_ip, s.server_ip, b.server_ip], s.start, b.start,
                   [s.first_frame, s.last_frame, s.rst_frame, b.first_frame], [s.uid, b.uid], source=s.source)
