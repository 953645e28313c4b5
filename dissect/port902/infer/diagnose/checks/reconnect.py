"""Checks on reconnects: a console that followed its VM to another host (vMotion), a client retry.
"""

from __future__ import annotations

from ..context import _Candidate, _console_ok, _Context
from ..findings import _LIKELIHOOD, Finding, _when


def reconnect_findings(ctx: _Context) -> list[_Candidate]:
    """Notes, not problems: a console session followed within 60 s by one from the same client
    to another host (``console_followed_vm``, 0.10: the console followed its VM, likely after a
    vMotion; a 443 connection to vCenter in between is named) or to the same host
    (``console_retry``, 0.15).  When the attempt to the new host failed, that failure's own
    finding says so instead."""
    out = []
    for kind, a, b in ctx.reconnects.values():
        if kind == "moved":
            if not _console_ok(b):
                continue  # the failed attempt carries the story in its own finding
            out.append(_Candidate("console_followed_vm", _LIKELIHOOD["followed"], a.start, _render_moved,
                                  (ctx, a, b), severity="info", key=("console_followed_vm", a.uid, b.uid)))
        else:
            out.append(_Candidate("console_retry", _LIKELIHOOD["retry"], a.start, _render_retry, (ctx, a, b),
                                  severity="info", key=("console_retry", a.uid, b.uid)))
    return out


def _later(gap: float) -> str:
    """``2.5 s later`` — or, when the second session began before the first one's last packet,
    ``0.6 s before that (while it was still closing)``: never a negative time."""
    return f"{gap:.1f} s later" if gap >= 0 else f"{-gap:.1f} s before that (while it was still closing)"


def _render_moved(ctx: _Context, a, b) -> Finding:
    gap = b.start - a.end
    vc = ctx.vcenter_between(a.source, a.client_ip, a.end, b.start, {a.server_ip, b.server_ip})
    detail = (f"The console of {a.client_ip} on {a.server} ({a.uid}, frames {a.first_frame}-{a.last_frame}) "
              f"ended at {_when(a.end)}; {_later(gap)} the same client opened a console on {b.server} "
              f"({b.uid}, frame {b.first_frame}).")
    frames = [a.first_frame, a.last_frame, b.first_frame]
    hosts = [a.client_ip, a.server_ip, b.server_ip]
    if vc is not None:
        detail += (f" In between it talked to {vc.server_ip}:{vc.server_port}"
                   + (f" ('{vc.sni}')" if vc.sni else "") + f" (frame {vc.first_frame}): asking vCenter where "
                   "the VM went.")
        frames.append(vc.first_frame)
        hosts.append(vc.server_ip)
    detail += " This is a console following its VM to another host, most likely after a vMotion."
    return Finding("console_followed_vm", f"console moved from {a.server_ip} to {b.server_ip} (vMotion?)",
                   detail, _LIKELIHOOD["followed"],
                   "Nothing to fix if the new console works; if consoles break after migrations, every "
                   "host in the cluster must be resolvable and reachable on 902 from the client.",
                   hosts, a.start, b.start, frames, [a.uid, b.uid], severity="info", source=ctx.source(a))


def _render_retry(ctx: _Context, a, b) -> Finding:
    gap = b.start - a.end
    how = {"no_answer": "was never answered", "refused": "was refused", "reset": "was reset"}.get(
        a.state, "ended")
    detail = (f"{a.client_ip}'s session to {a.server} ({a.uid}, frame {a.first_frame}) {how} at "
              f"{_when(a.end)}; "
              f"{_later(gap)} the client opened the console on the same host again ({b.uid}, frame "
              f"{b.first_frame}), which worked.")
    return Finding("console_retry", f"console to {a.server} reconnected", detail, _LIKELIHOOD["retry"],
                   "A retry that worked: if it happens often, look at the first session's failure.",
                   [a.client_ip, a.server_ip], a.start, b.start, [a.first_frame, b.first_frame],
                   [a.uid, b.uid], severity="info", source=ctx.source(a))


