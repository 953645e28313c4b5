"""Checks on the TLS handshakes of port 902: certificate rejected, version or cipher mismatch.

Alert names from RFC 8446 §6; a client hanging up right after the server's certificate counts as
rejecting it.
"""

from __future__ import annotations

from collections import defaultdict

from ....net.flows import hostport
from ..context import _Candidate, _Context, _ender, _record_ts
from .greeting import hello_right_after_greeting

LIKELIHOOD_EARLY_ABORT = 0.50  # a hang-up after the hello from a client that may not have read the greeting
from ..findings import (
    _LIKELIHOOD,
    ABORT_WINDOW_S,
    CERT_ALERTS,
    VERSION_ALERTS,
    Finding,
    _plural,
)


def tls_findings(ctx: _Context) -> list[_Candidate]:
    """TLS alerts in a 902 handshake, and clients that hang up right after the server's hello.

    * a client alert about the certificate (unknown_ca, bad_certificate, …): ``certificate_rejected``
      0.90;
    * any other clear fatal alert: ``tls_alert`` 0.85 for version/cipher alerts (protocol_version,
      handshake_failure, …), 0.60 otherwise;
    * no alert, but the client ends the connection (FIN or RST) within 10 s of the server's hello
      without sending a single authd command (no application data in TLS ≤ 1.2; only its
      Finished in TLS 1.3): ``certificate_rejected`` 0.75 — thumbprint pinning fails after the
      handshake, so there is often no alert at all.
    A later working session from the same client to the same host lowers either to 0.25; a client
    that hangs up like that on 3+ hosts or 5+ times (a health check, a scanner) gets 0.30."""
    groups: dict[tuple, list] = defaultdict(list)
    for s in ctx.sessions:
        if s.state == "partial" or not s.handshakes or s.uid in ctx.explained:
            continue
        hit = None
        # an alert sent before that side's hello (a server refusing the ClientHello) is filed by the
        # session as "mid-stream": here the SYN was seen, so it belongs to the first handshake
        alerts = [(h, a) for h in s.handshakes for a in h.alerts]
        alerts += [(s.handshakes[0], a) for a in getattr(s, "midstream_alerts", ())]
        for h, (ts, frame, who, level, desc, encrypted) in sorted(alerts, key=lambda x: x[1][1]):
            if encrypted or desc in (None, "close_notify", "user_canceled"):
                continue
            if level == "warning" and desc not in CERT_ALERTS:
                continue
            kind = "certificate_rejected" if (who == "client" and desc in CERT_ALERTS) else "tls_alert"
            hit = (kind, h, ts, frame, who, desc)
            break
        if hit is None:
            h = s.handshakes[0]
            sent_nothing = h.client_app_records <= (1 if h.version == "TLS 1.3" else 0)
            if (h.server_hello is not None and sent_nothing and len(s.handshakes) == 1
                    and s.state in ("closed", "reset") and _ender(s) == "client"
                    and not any(ln.from_client for ln in s.dialogue)
                    and s.end - (_record_ts(s, h.server_hello_frame) or h.ts) <= ABORT_WINDOW_S):
                ended = s.rst_frame or getattr(s, "fin_frames", (None, None))[0] or s.last_frame
                hit = ("certificate_rejected", h, s.end, ended, "client", None)
        if hit is not None:
            groups[(hit[0], s.client_ip, s.server_ip, s.server_port, s.source)].append((s, hit))
    prober: dict[str, set] = defaultdict(set)  # client -> hosts it hung up on after the hello
    for (kind, client, server_ip, _port, _source), items in groups.items():
        if kind == "certificate_rejected" and any(hit[5] is None for _, hit in items):
            prober[client].add(server_ip)
    out = []
    for (kind, client, server_ip, port, _source), items in groups.items():
        sessions = [s for s, _ in items]
        for s in sessions:
            ctx.explained[s.uid] = kind
        desc0 = items[0][1][5]
        descs = sorted({d for _, (_, _, _, _, _, d) in items if d})
        early = None
        if kind == "certificate_rejected" and not descs:
            gaps = [hello_right_after_greeting(s) for s in sessions]
            early = max(gaps) if gaps and all(g is not None for g in gaps) else None
        if kind == "certificate_rejected":
            likelihood = _LIKELIHOOD["cert_alert" if descs else "cert_abort"]
            if early is not None:
                likelihood = LIKELIHOOD_EARLY_ABORT
        else:
            likelihood = _LIKELIHOOD["tls_alert" if desc0 in VERSION_ALERTS else "tls_alert_other"]
        later = ctx.later_worked(sessions[-1])
        if later is not None:
            likelihood = _LIKELIHOOD["transient"]
        probing = kind == "certificate_rejected" and not descs and (len(prober[client]) >= 3 or len(items) >= 5)
        if probing:
            likelihood = _LIKELIHOOD["brute"]
        out.append(_Candidate(kind, likelihood, sessions[0].start, _render_tls,
                              (ctx, kind, client, server_ip, port, items, sessions, descs, likelihood, later,
                               len(prober[client]) if probing else None, early),
                              key=(kind, _source, client, server_ip, port)))
    return out


def _render_tls(ctx: _Context, kind: str, client: str, server_ip: str, port: int, items: list, sessions: list,
                descs: list[str], likelihood: float, later, probed_hosts: int | None,
                early: float | None = None) -> Finding:
    s0, (_, h0, ts0, frame0, who0, desc0) = items[0]
    cert = next((h.certificates[0] for _, (_, h, *_rest) in items if h.certificates), None)
    cert_frame = next((h.certificate_frame for _, (_, h, *_rest) in items if h.certificates), None)
    frames = []
    for s, (_, h, ts, frame, who, desc) in items:
        frames += [h.frame, h.server_hello_frame, h.certificate_frame, frame]
    server = hostport(server_ip, port)
    if kind == "certificate_rejected":
        parts = []
        for s, (_, h, ts, frame, who, desc) in items[:5]:
            if desc:
                parts.append(f"{s.uid}: TLS alert '{desc}' from the client in frame {frame}")
            else:
                after = s.end - (_record_ts(s, h.server_hello_frame) or h.ts)
                how = "RST" if s.rst_frame and _ender(s) == "client" and "R" in s.history else "FIN"
                parts.append(f"{s.uid}: {how} from the client in frame {frame}, {after:.3f} s after the server "
                             f"hello (frame {h.server_hello_frame}), without a single authd command")
        if len(items) > 5:
            parts.append(f"and {len(items) - 5} more")
        cert_text = ""
        if cert is not None:
            cn = cert.common_name or cert.subject
            cert_text = (f" The certificate (frame {cert_frame}) is for '{cn}', SHA-1 {cert.sha1}"
                         + (f", valid until {cert.not_after.date()}" if cert.not_after else "") + ".")
            if cert.not_after is not None and cert.not_after.timestamp() < s0.start:
                cert_text += " It had EXPIRED when the session ran."
            elif cert.not_before is not None and cert.not_before.timestamp() > s0.start:
                cert_text += " It was NOT YET VALID when the session ran (check clocks)."
        detail = (f"{client} opened TLS to {server} and gave up on the host certificate "
                  f"({_plural(len(items), 'session')}): " + "; ".join(parts) + "." + cert_text)
        advice = ("The console client pins the host's SHA-1 thumbprint from its ticket: if the ESXi certificate "
                  "was renewed or regenerated, reconnect the host in vCenter (or accept the new certificate in "
                  "VMRC); check that the certificate is not expired and that the client reached the right host.")
        title = f"client rejected the certificate of {server}"
    else:
        detail = (f"TLS alert '{', '.join(descs)}' from the {who0} (frame {frame0}) ended the handshake between "
                  f"{client} and {server} ({_plural(len(items), 'session')}); the client offered "
                  f"{', '.join(_offered(h0)) or 'unknown versions'}.")
        advice = ("A TLS version or cipher mismatch: newer ESXi releases disable TLS 1.0/1.1 (TLS profiles, the "
                  "TLS reconfigurator); update the console client (VMRC) or align the host's TLS settings.")
        title = f"TLS alert '{desc0}' on {server}"
    if early is not None:
        detail += (f" But the ClientHello came only {early * 1000:.1f} ms after the greeting and the client sent "
                   "no alert: a generic TLS client that never read the greeting (openssl s_client, nmap ssl-* "
                   "scripts) fails exactly like this, so the certificate may not be the cause.")
    if later is not None:
        detail += f" A later session ({later.uid}, frame {later.first_frame}) worked."
    if probed_hosts is not None:
        detail += (f" {client} does this to {_plural(probed_hosts, 'host')} "
                   f"({_plural(len(items), 'time')} here): a health check or a scanner rather than a console?")
    return Finding(kind, title, detail, likelihood, advice, [client, server_ip],
                   sessions[0].start, sessions[-1].end, frames, [s.uid for s in sessions],
                   source=ctx.source(sessions[0]))


def _offered(h) -> list[str]:
    from ....proto.tls import version_name

    ch = h.client_hello
    return [version_name(v) for v in ch.offered_versions] if ch is not None else []


def _attempt_groups(ctx: _Context, state: str) -> dict[tuple, list]:
    groups: dict[tuple, list] = defaultdict(list)
    for s in ctx.sessions:
        if s.state == state and s.uid not in ctx.explained:
            groups[(s.client_ip, s.server_ip, s.server_port, s.source)].append(s)
    return groups


def _context_facts(ctx: _Context, sessions: list) -> tuple:
    """What every unreachable-host finding looks up: (the console session this attempt followed,
    another client that reached the host, a 443 answer from the host, the likelihood change)."""
    delta = 0.0
    s = sessions[0]
    moved_from = next((a for a in (ctx.followed_from(x) for x in sessions) if a is not None), None)
    if moved_from is not None:
        delta += 0.05
    other = ctx.other_client_reached(s)
    web = ctx.answered_443(s.source, s.client_ip, s.server_ip)
    if web is not None:
        delta += 0.05
    return moved_from, other, web, delta


def _context_notes(sessions: list, moved_from, other, web) -> str:
    """The extra sentences of :func:`_context_facts`."""
    notes = ""
    s = sessions[0]
    if moved_from is not None:
        gap = sessions[0].start - moved_from.end
        when = (f"It came {gap:.1f} s after the console session to {moved_from.server} ended" if gap >= 0 else
                f"It started {-gap:.1f} s before the console session to {moved_from.server} ended (the old "
                "session was still closing)")
        notes += (f" {when} ({moved_from.uid}): the console was following its VM to this host "
                  f"(likely vMotion) and could not reach it.")
    if other is not None:
        notes += (f" Another client ({other.client_ip}, frame {other.first_frame}) did reach {s.server}: "
                  "the block is on this client's path.")
    if web is not None:
        notes += (f" The host answered this client on {web.server_port} (frame {web.synack_frame}), so it is up: "
                  f"only {s.server_port} is blocked.")
    return notes


