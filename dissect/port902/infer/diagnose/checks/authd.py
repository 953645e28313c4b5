"""Checks on the authd dialogue: rejected logins, a failed CONNECT, sessions reset in mid-stream.

Reply codes from protocol.md §3.4.
"""

from __future__ import annotations

from collections import defaultdict

from ....net.flows import hostport
from ....proto.authd import REPLY_CODES, split_command
from ..context import _Candidate, _Context, _ender, is_mks
from ..findings import (
    _LIKELIHOOD,
    ABORT_WINDOW_S,
    CONNECT_CODES,
    Finding,
    _clamp,
    _frames,
    _plural,
    _when,
)


def _inferred_rejections(s) -> int:
    """Logins inside TLS #1 that the record sizes say were answered ``530`` (none when the
    dialogue is visible: what is seen outranks what is inferred)."""
    if s.logins_failed or s.login_outcome != "none":
        return 0
    return sum(1 for x in s.inferred_logins if x == "rejected")


def _accepted(t) -> bool:
    return t.login_outcome == "accepted" or (t.login_outcome == "none" and "accepted" in t.inferred_logins)


def login_findings(ctx: _Context) -> list[_Candidate]:
    """``530`` after PASS on daemons whose dialogue is visible (non-SSL authd, Workstation 912),
    and, inside TLS, logins whose reply the record sizes read as ``530`` (infer/dialogue).

    0.80 seen, 0.60 inferred; 0.25 when a later login from the same client to the same host was
    accepted; 0.30 for password guessing (5+ failures or 3+ user names)."""
    groups: dict[tuple, list] = defaultdict(list)
    for s in ctx.sessions:
        if s.logins_failed:
            groups[(s.client_ip, s.server_ip, s.server_port, s.source, False)].append(s)
        elif _inferred_rejections(s):
            groups[(s.client_ip, s.server_ip, s.server_port, s.source, True)].append(s)
    out = []
    for (client, server_ip, port, _source, inferred), sessions in groups.items():
        fails = sum(_inferred_rejections(s) if inferred else s.logins_failed for s in sessions)
        users = []
        for s in sessions:
            for ln in s.dialogue:
                if ln.from_client and ln.verb == "USER":
                    u = ln.text[split_command(ln.text)[1]:].strip()  # as shown: a ticket is <redacted>
                    if u not in users:
                        users.append(u)
        likelihood = _LIKELIHOOD["login_inferred" if inferred else "login"]
        accepted = [t for t in ctx.by_pair[(sessions[0].source, client, server_ip, port)]
                    if _accepted(t) and t.start >= sessions[0].start]
        accepted_later = accepted[-1] if accepted and accepted[-1].end >= sessions[-1].start else None
        if accepted_later is not None:
            likelihood = _LIKELIHOOD["transient"]
        guessing = fails >= 5 or len(users) >= 3
        if guessing:
            likelihood = _LIKELIHOOD["brute"]
        for s in sessions:
            ctx.explained.setdefault(s.uid, "login_rejected")
        out.append(_Candidate("login_rejected", likelihood, sessions[0].start, _render_login,
                              (ctx, client, server_ip, port, sessions, fails, users, likelihood, accepted_later,
                               guessing, inferred), key=("login_rejected", _source, client, server_ip, port, inferred)))
    return out


def _render_login(ctx: _Context, client: str, server_ip: str, port: int, sessions: list, fails: int,
                  users: list[str], likelihood: float, accepted_later, guessing: bool,
                  inferred: bool = False) -> Finding:
    server = hostport(server_ip, port)
    title = f"login rejected by {server}"
    if inferred:
        replies = [d for s in sessions for d in s.inferred_dialogue
                   if d.get("direction") == "server" and str(d.get("line", "")).startswith("530")]
        frames = [d["frame"] for d in replies if d.get("frame") is not None]
        detail = (f"{server} rejected {_plural(fails, 'login')} from {client} inside TLS "
                  f"({_plural(len(sessions), 'session')}; {_frames(frames)}): the encrypted replies to PASS "
                  "have the size of '530 Login incorrect.', not of '230 User ... logged in.' (inferred from "
                  "TLS record sizes, not read; a key log with --keylog shows the lines).")
    else:
        lines = [ln for s in sessions for ln in s.dialogue if not ln.from_client and ln.code == 530]
        frames = [ln.frame for ln in lines]
        detail = (f"{server} answered {_plural(fails, 'login')} from {client} with 530 ({_frames(frames)}: "
                  f"'{lines[0].text if lines else '530'}'); user(s): {', '.join(users) or 'not visible'}.")
    if accepted_later is not None:
        detail += f" A later login was accepted ({accepted_later.uid})."
    if guessing:
        title = f"repeated login failures on {server} (password guessing?)"
    advice = ("Wrong user name or password for the host (authd checks host accounts, not vCenter's); on a "
              "console opened from vCenter this means a stale or foreign ticket: open the console again.")
    return Finding("login_rejected", title, detail, likelihood, advice, [client, server_ip],
                   sessions[0].start, sessions[-1].end, frames, [s.uid for s in sessions],
                   source=ctx.source(sessions[0]))


def connect_findings(ctx: _Context) -> list[_Candidate]:
    """CONNECT/PROXY visible in clear and answered with an error (0.90) or followed by the end
    of the session with no reply within 10 s (0.70)."""
    out = []
    for s in ctx.sessions:
        if not s.connect_kind or s.connect_ok:
            continue
        cmd = next((ln for ln in s.dialogue if ln.from_client and ln.verb and
                    (ln.verb == "PROXY" or ln.verb.startswith("CONNECT"))), None)
        if cmd is None:
            continue
        reply = next((ln for ln in s.dialogue if not ln.from_client and ln.code is not None and ln.ts >= cmd.ts
                      and ln.frame >= cmd.frame), None)
        if s.connect_ok is False and reply is not None:
            likelihood = _LIKELIHOOD["connect_code"]
        elif s.connect_ok is None and s.state in ("closed", "reset") and s.end - cmd.ts <= ABORT_WINDOW_S:
            likelihood = _LIKELIHOOD["connect_silent"]
            reply = None
        else:
            continue
        ctx.explained.setdefault(s.uid, "connect_failed")
        out.append(_Candidate("connect_failed", likelihood, s.start, _render_connect,
                              (ctx, s, cmd, reply, likelihood, ctx.followed_from(s)),
                              key=("connect_failed", s.uid)))
    return out


def _render_connect(ctx: _Context, s, cmd, reply, likelihood: float, moved) -> Finding:
    server = s.server
    target = s.connect_target or "?"
    if reply is not None:
        fallback = (f"error {reply.code} ({REPLY_CODES.get(reply.code, 'unknown')})",
                    "Check the VM's state on the host.")
        meaning, advice = CONNECT_CODES.get(reply.code, fallback)
        detail = (f"{s.client_ip} asked {server} to connect to '{target}' (frame {cmd.frame}); authd answered "
                  f"'{reply.text}' (frame {reply.frame}): {meaning}; the session ended {s.end - reply.ts:.3f} s "
                  f"later (frame {s.last_frame}).")
        frames = [cmd.frame, reply.frame, s.last_frame]
    else:
        who = _ender(s) or "one side"
        detail = (f"{s.client_ip} asked {server} to connect to '{target}' (frame {cmd.frame}); no reply came and "
                  f"the {who} ended the session {s.end - cmd.ts:.3f} s later "
                  f"(frame {s.rst_frame or s.last_frame}): "
                  "the VM was not found or not powered on, or the VMX refused the console.")
        advice = ("Check that the VM is powered on and registered on this host (it may have moved); "
                  "reopen the console from vCenter.")
        frames = [cmd.frame, s.rst_frame or s.last_frame]
    f = Finding("connect_failed", f"CONNECT failed on {server}", detail, likelihood, advice,
                [s.client_ip, s.server_ip], s.start, s.end, frames, [s.uid], source=ctx.source(s))
    if moved is not None:
        f.detail += f" The VM's console had been on {moved.server} ({moved.uid}) until {_when(moved.end)}."
    return f


def reset_findings(ctx: _Context) -> list[_Candidate]:
    """Established 902 sessions ended by RST (not already explained by an earlier finding).

    From the server: 0.70; from the client: 0.45, or 0.35 for a console that ran over 10 s (a
    closed window often ends that way).  A successful reconnect to the same host within 60 s
    lowers it by 0.20.  A long silence before the RST is pointed out (idle timeout)."""
    out = []
    for s in ctx.sessions:
        if s.state != "reset" or s.uid in ctx.explained or not ("D" in s.history or "d" in s.history):
            continue
        who = "server" if "r" in s.history and ("R" not in s.history or s.history.index("r") < s.history.index("R")) \
            else "client"
        mks = is_mks(s)
        if who == "server":
            likelihood = _LIKELIHOOD["reset_server"]
        elif mks and s.duration_s > 10:
            likelihood = _LIKELIHOOD["reset_client_long"]
        else:
            likelihood = _LIKELIHOOD["reset_client"]
        reco = ctx.reconnects.get(s.uid)
        retry = reco[2] if reco is not None and reco[0] == "retry" else None
        if retry is not None:
            likelihood -= 0.2
        likelihood = _clamp(likelihood)
        out.append(_Candidate("reset_midstream", likelihood, s.start, _render_reset,
                              (ctx, s, who, mks, likelihood, retry), key=("reset_midstream", s.uid)))
    return out


def _render_reset(ctx: _Context, s, who: str, mks: bool, likelihood: float, retry) -> Finding:
    what = "console (MKS) session" if mks else "session"
    last_rec = s.rec_ts[-1] if len(s.rec_ts) else None
    detail = (f"The {what} {s.client} -> {s.server} ({s.uid}) ran {s.duration_s:.1f} s and was reset by the "
              f"{who} at {_when(s.end)} (RST in frame {s.rst_frame}).")
    idle = (s.end - last_rec) if last_rec is not None else None
    if idle is not None and idle > 60:
        detail += f" Nothing had been sent for {idle:.0f} s before: an idle timeout on a firewall or NAT?"
    if retry is not None:
        detail += f" The client reconnected {retry.start - s.end:.1f} s later ({retry.uid}, frame {retry.first_frame})."
    if who == "server":
        advice = ("The host (or a device in between) cut the session: check the VM (powered off, vMotion, "
                  "crash), hostd/vmx logs, and firewalls or IPS devices with session limits.")
    else:
        advice = ("The client aborted: a closed console window ends that way; otherwise check the client "
                  "(VMRC logs) and the network path for drops.")
    return Finding("reset_midstream", f"{what} to {s.server} reset by the {who}", detail, likelihood,
                   advice, [s.client_ip, s.server_ip], s.start, s.end,
                   [s.first_frame, s.rst_frame], [s.uid], source=ctx.source(s))


