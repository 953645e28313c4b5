"""Checks on how a client met the authd greeting: TLS spoken before the ``220`` line was read,
TLS offered to a daemon that does not speak it.

authd greets in clear and only then expects TLS (``SSL Required``).  Generic TLS clients —
``openssl s_client``, nmap's ``ssl-*`` scripts, TLS health checks, a TLS-terminating proxy put in
front of 902 — send a ClientHello as soon as TCP is up.  Their TLS stack then reads
``220 V…`` as a TLS record and gives up ("wrong version number"), usually with no alert and
right after the server's hello: without this check that looks exactly like a client rejecting
the host certificate.
"""

from __future__ import annotations

from collections import defaultdict

from ....net.flows import hostport
from ..context import _Candidate, _Context
from ..findings import _LIKELIHOOD, Finding, _plural

LIKELIHOOD_EARLY_TLS = 0.80
LIKELIHOOD_TLS_TO_PLAIN = 0.80
LIKELIHOOD_CLEAR_TO_SSL = 0.80


def greeting_findings(ctx: _Context) -> list[_Candidate]:
    """* ``clear_to_ssl_daemon`` 0.80: after an ``SSL Required`` greeting the client sent a line in
      clear (``AUTH TLS``, ``USER …``) and no TLS handshake followed;
    * ``tls_before_greeting`` 0.80: the client's ClientHello came before the server's
      ``220`` greeting in the stream (frame order), so the client never read it;
    * ``tls_to_plain_daemon`` 0.80: the greeting does not say ``SSL Required`` and the client's
      ClientHello got no ServerHello (a daemon without SSL answers TLS bytes with ``530`` lines or
      not at all).
    Sessions explained here are not judged again by the TLS check (no "certificate rejected").

    A client that does speak TLS to an authd daemon elsewhere in the capture, or that failed
    against several servers (a scanner), and still sent a line in clear was probing (OpenVAS and
    nmap service probes send ``TEST``, ``HELP``, ``GET /``): ``clear_to_ssl_daemon`` then gets the
    probe likelihood (0.30) and says why, instead of blaming a client that cannot do TLS."""
    tls_clients: dict[str, str] = {}  # client -> one of its TLS sessions with an authd daemon
    for s in ctx.sessions:
        if s.banner is not None and s.handshakes:
            tls_clients.setdefault(s.client_ip, s.uid)
    groups: dict[tuple, list] = defaultdict(list)
    for s in ctx.sessions:
        if s.banner is not None and s.banner.ssl_required and not s.handshakes and s.uid not in ctx.explained:
            said = next((ln for ln in s.dialogue if ln.from_client), None)
            if said is not None:
                ctx.explained[s.uid] = "clear_to_ssl_daemon"
                groups[("clear_to_ssl_daemon", s.client_ip, s.server_ip, s.server_port, s.source)].append(s)
            continue
        if s.banner is None or not s.handshakes or s.banner_frame is None:
            continue
        h = s.handshakes[0]
        if h.frame is None:
            continue
        if not s.banner.ssl_required and h.server_hello is None:
            kind = "tls_to_plain_daemon"
        elif h.frame < s.banner_frame:
            kind = "tls_before_greeting"
        else:
            continue
        ctx.explained[s.uid] = kind
        groups[(kind, s.client_ip, s.server_ip, s.server_port, s.source)].append(s)
    out = []
    for (kind, client, server_ip, port, _source), sessions in groups.items():
        likelihood = {"tls_before_greeting": LIKELIHOOD_EARLY_TLS, "tls_to_plain_daemon": LIKELIHOOD_TLS_TO_PLAIN,
                      "clear_to_ssl_daemon": LIKELIHOOD_CLEAR_TO_SSL}[kind]
        probe = None
        if kind == "clear_to_ssl_daemon":
            if client in tls_clients:
                probe = (f"{client} does speak TLS to authd ({tls_clients[client]}): a line in clear from it "
                         "is a probe (a scanner's service probe), not a client that cannot start TLS.")
            elif client in ctx.scanners:
                probe = (f"{client} also failed against several other servers: a scanner probing the daemon, "
                         "not a console client.")
            if probe:
                likelihood = _LIKELIHOOD["brute"]
        out.append(_Candidate(kind, likelihood, sessions[0].start, _render, (ctx, kind, client, server_ip, port,
                                                                              sessions, likelihood, probe),
                              key=(kind, _source, client, server_ip, port)))
    return out


def _render(ctx: _Context, kind: str, client: str, server_ip: str, port: int, sessions: list,
            likelihood: float, probe: str | None = None) -> Finding:
    server = hostport(server_ip, port)
    parts, frames = [], []
    for s in sessions[:5]:
        if kind == "clear_to_ssl_daemon":
            said = next(ln for ln in s.dialogue if ln.from_client)
            frames += [s.banner_frame, said.frame, s.last_frame]
            parts.append(f"{s.uid}: '{said.text[:40]}' in clear (frame {said.frame}) after the greeting "
                         f"(frame {s.banner_frame}); no TLS handshake followed")
            continue
        h = s.handshakes[0]
        frames += [h.frame, s.banner_frame, h.server_hello_frame, s.last_frame]
        if kind == "tls_before_greeting":
            after = (f"; the server answered with its hello in frame {h.server_hello_frame} and the client "
                     f"hung up (frame {s.last_frame})" if h.server_hello_frame else "")
            parts.append(f"{s.uid}: ClientHello in frame {h.frame}, the greeting only in frame {s.banner_frame}"
                         + after)
        else:
            replies = [ln for ln in s.dialogue if not ln.from_client and ln.frame != s.banner_frame]
            answer = (f"the daemon answered with '{replies[0].text[:40]}' (frame {replies[0].frame})" if replies
                      else "the daemon never answered it")
            when = "before" if h.frame < s.banner_frame else "after"
            parts.append(f"{s.uid}: ClientHello in frame {h.frame} {when} a greeting without 'SSL Required' "
                         f"(frame {s.banner_frame}); {answer}")
    if len(sessions) > 5:
        parts.append(f"and {len(sessions) - 5} more")
    if kind == "tls_before_greeting":
        title = f"{client} spoke TLS to {server} before the authd greeting"
        detail = (f"{client} sent its TLS ClientHello before reading the server's '220' greeting "
                  f"({_plural(len(sessions), 'session')}): " + "; ".join(parts) + ". Its TLS stack then reads "
                  "the greeting as a TLS record and fails ('wrong version number'): this is not a vSphere "
                  "console client (those read the greeting first), but a generic TLS client or scanner "
                  "(openssl s_client, nmap ssl-* scripts, a TLS health check) or a proxy in between that "
                  "starts TLS itself. The host certificate was not the problem.")
        advice = ("Connect with a vSphere client (VMRC, the vSphere Client, VDDK), or read the greeting line "
                  "before starting TLS; if a load balancer or TLS proxy sits in front of 902, pass 902 through "
                  "as plain TCP.")
    elif kind == "clear_to_ssl_daemon":
        title = f"{client} spoke in clear to {server}, which requires SSL"
        detail = (f"The daemon on {server} greets with 'SSL Required', but {client} answered with a plaintext "
                  f"line instead of starting TLS ({_plural(len(sessions), 'session')}): " + "; ".join(parts)
                  + ". authd reads nothing but a TLS ClientHello after that greeting: an FTP-style 'AUTH TLS', "
                  "a login typed by hand or a client built for non-SSL daemons cannot get in."
                  + (f" {probe}" if probe else ""))
        advice = ("Start TLS right after the greeting (every vSphere client does); a tool written for old non-SSL "
                  "daemons (USER/PASS in clear) needs its TLS option, e.g. a newer version.")
    else:
        title = f"{client} offered TLS to a daemon without SSL on {server}"
        detail = (f"The daemon on {server} does not say 'SSL Required' in its greeting, yet {client} started "
                  f"TLS ({_plural(len(sessions), 'session')}): " + "; ".join(parts) + ". A daemon without SSL "
                  "takes the ClientHello as a command line: the TLS handshake can never complete.")
        advice = ("Use a client setting for a plaintext daemon (older hosts, Workstation), or enable SSL on "
                  "the daemon; check that the client reached the host it meant to (a legacy daemon on 902?).")
    return Finding(kind, title, detail, likelihood, advice, [client, server_ip], sessions[0].start,
                   sessions[-1].end, frames, [s.uid for s in sessions], source=ctx.source(sessions[0]))


EARLY_TLS_WINDOW_S = 0.005


def hello_right_after_greeting(s) -> float | None:
    """Seconds from the greeting to the ClientHello when the client sent it so soon after the
    greeting (EARLY_TLS_WINDOW_S) that it may never have read it, else None."""
    if s.banner_frame is None or not s.handshakes:
        return None
    greeting = next((ln for ln in s.dialogue if ln.frame == s.banner_frame and not ln.from_client), None)
    h = s.handshakes[0]
    if greeting is None or h.ts is None or h.frame is None or h.frame < s.banner_frame:
        return None
    gap = h.ts - greeting.ts
    return gap if 0 <= gap <= EARLY_TLS_WINDOW_S else None
