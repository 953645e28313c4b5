"""Checks on reachability: ICMP errors, unanswered SYNs, refused connections, blocked console paths.

The seed article's "no IP reachability" and "a firewall closes 902" (protocol.md §4).
"""

from __future__ import annotations

from collections import defaultdict

from ....analyzers.consolepath import ConsoleConn
from ....net.flows import hostport
from ..context import _Candidate, _Context
from ..evidence import IcmpGroup
from ..findings import _LIKELIHOOD, SCAN_SERVERS, Finding, _frames, _plural, _when
from .tls import _attempt_groups, _context_facts, _context_notes


def icmp_findings(ctx: _Context) -> list[_Candidate]:
    """ICMP errors quoting a packet to 902/903/912, 443/7331/7343 or DNS 53.

    Likelihood: administratively prohibited 0.95 (a firewall says so), host/net unreachable 0.90,
    port unreachable 0.85, time exceeded 0.60, fragmentation needed / packet too big 0.50 (a path
    MTU problem stalls big TLS records rather than blocking).  Sessions it explains are not
    reported again as unanswered."""
    by_target: dict[tuple, list[IcmpGroup]] = defaultdict(list)
    for g in ctx.diag._icmp.values():
        by_target[(g.client, g.server, g.dport)].append(g)
    out = []
    for (client, server, dport), groups in by_target.items():
        groups.sort(key=lambda g: g.first_ts)
        cats = {g.category for g in groups}
        key = next(k for k in ("prohibited", "unreachable", "port", "ttl", "mtu") if k in cats)
        likelihood = _LIKELIHOOD[{"prohibited": "icmp_prohibited", "unreachable": "icmp_unreachable",
                                  "port": "icmp_port", "ttl": "icmp_ttl", "mtu": "icmp_mtu"}[key]]
        related = []
        source = ctx.diag._source(groups[0].source_index)
        for s in ctx.by_pair.get((source, client, server, dport), ()):
            if s.state in ("no_answer", "refused") or any(g.sport == s.client_port for g in groups):
                related.append(s.uid)
                ctx.explained[s.uid] = "icmp_unreachable"
        out.append(_Candidate("icmp_unreachable", likelihood, groups[0].first_ts, _render_icmp,
                              (ctx, client, server, dport, groups, key, likelihood, related, source),
                              key=("icmp_unreachable", source, client, server, dport)))
    return out


def _render_icmp(ctx: _Context, client: str, server: str, dport: int, groups: list[IcmpGroup], key: str,
                 likelihood: float, related: list[str], source: str | None) -> Finding:
    frames = [f for g in groups for f in g.frames]
    quoted_frames = [f for uid in related for s in ctx.by_pair[(source, client, server, dport)] if s.uid == uid
                     for f in (s.first_frame, s.last_frame)]
    reporters = sorted({g.reporter for g in groups})
    texts = sorted({g.text for g in groups})
    total = sum(g.count for g in groups)
    what = {53: "DNS", 443: "HTTPS (vCenter / ESXi API, WebMKS)", 7331: "the vCenter console relay",
            7343: "the vCenter console relay"}.get(dport, "authd (console / NFC)")
    by_host = [r for r in reporters if r == server]
    who = (f"the host {server} itself" if by_host and len(reporters) == 1
           else "router/firewall " + ", ".join(reporters))
    detail = (f"{_plural(total, 'ICMP error')} ({'; '.join(texts)}) from {who} for packets "
              f"{client} -> {hostport(server, dport)} ({what}), {_frames(frames)}, "
              f"{_when(groups[0].first_ts)}" + ("" if total == 1 else f" to {_when(groups[-1].last_ts)}") + ".")
    if related:
        detail += f" They answer the attempt(s) {', '.join(related)}."
    if key == "prohibited":
        advice = (f"A firewall ({', '.join(reporters)}) rejects {dport}/tcp to {server} on purpose: add a rule "
                  f"allowing {client} (or its network) to reach {server} on TCP {dport}.")
    elif key == "mtu":
        advice = ("Path MTU problem: check MTU/MSS clamping on the path (VPN, tunnels); big TLS records will "
                  "stall while small packets pass.")
    elif key == "ttl":
        advice = f"Packets to {server} loop or expire on the way: check routing between {client} and {server}."
    elif key == "port":
        advice = f"{server} says nothing listens on {dport}: check the service (or the address is not the host)."
    else:
        advice = (f"{server} is not reachable from {client}: check routing, VLANs and that the host is up "
                  f"(seed article: the client must reach the ESXi host itself, not only vCenter).")
    return Finding("icmp_unreachable", f"ICMP {texts[0]} for {hostport(server, dport)}", detail, likelihood,
                   advice, [client, server, *[r for r in reporters if r not in (client, server)]],
                   groups[0].first_ts, max(g.last_ts for g in groups), frames + quoted_frames, related,
                   source=ctx.diag._source(groups[0].source_index))


def syn_findings(ctx: _Context) -> list[_Candidate]:
    """SYNs to 902 never answered (no SYN-ACK, no RST, no ICMP error), per client and host.

    Likelihood 0.85 when retried (several SYNs or attempts), 0.60 for a single SYN (the capture
    may simply have ended); +0.05 when the host answered the client on 443 (so only 902 is
    filtered) or when the attempt was a console following its VM; 0.25 when a later attempt to
    the same host worked; 0.30 for a client failing towards 20+ hosts (a scan)."""
    out = []
    for (client, server_ip, port, _source), sessions in _attempt_groups(ctx, "no_answer").items():
        syns = sum(max(1, s.syn_count) for s in sessions)
        likelihood = _LIKELIHOOD["syn_no_answer" if syns > 1 else "syn_single"]
        facts = _context_facts(ctx, sessions)
        likelihood += facts[3]
        later = ctx.later_worked(sessions[-1])
        if later is not None:
            likelihood = _LIKELIHOOD["transient"]
        scan = client in ctx.scanners
        if scan:
            likelihood = _LIKELIHOOD["brute"]
        out.append(_Candidate("syn_no_answer", likelihood, sessions[0].start, _render_syn,
                              (ctx, client, server_ip, port, sessions, syns, likelihood, facts, later, scan),
                              key=("syn_no_answer", _source, client, server_ip, port)))
    return out


def _render_syn(ctx: _Context, client: str, server_ip: str, port: int, sessions: list, syns: int,
                likelihood: float, facts: tuple, later, scan: bool) -> Finding:
    server = hostport(server_ip, port)
    frames = [f for s in sessions for f in (s.first_frame, s.last_frame)]
    detail = (f"{client} sent {_plural(syns, 'SYN')} to {server} in {_plural(len(sessions), 'attempt')} from "
              f"{_when(sessions[0].start)} to {_when(sessions[-1].end)} ({_frames(frames)}); none was answered: "
              f"no SYN-ACK, no RST, no ICMP error.")
    detail += _context_notes(sessions, *facts[:3])
    if later is not None:
        detail += f" A later attempt worked ({later.uid}, frame {later.first_frame}): the block was transient."
    if scan:
        detail += f" {client} failed towards {SCAN_SERVERS}+ hosts: this looks like a scan."
    advice = (f"Something drops TCP {port} between {client} and {server_ip} (a firewall on the path or the host's "
              f"own firewall), or the host is down. Open TCP {port} from the client to the ESXi host (the "
              f"console client connects to the host itself, not only to vCenter) and test with "
              f"`nc -vz {server_ip} {port}` or `Test-NetConnection {server_ip} -Port {port}`.")
    return Finding("syn_no_answer", f"{server} never answered {client}", detail, likelihood, advice,
                   [client, server_ip], sessions[0].start, sessions[-1].end, frames,
                   [s.uid for s in sessions], source=ctx.source(sessions[0]))


def refused_findings(ctx: _Context) -> list[_Candidate]:
    """SYN answered by RST (connection refused), per client and host: 0.85, 0.25 when a later
    attempt worked, 0.30 for a scanning client; +0.05 as for unanswered SYNs."""
    out = []
    for (client, server_ip, port, _source), sessions in _attempt_groups(ctx, "refused").items():
        facts = _context_facts(ctx, sessions)
        likelihood = _LIKELIHOOD["refused"] + facts[3]
        later = ctx.later_worked(sessions[-1])
        if later is not None:
            likelihood = _LIKELIHOOD["transient"]
        scan = client in ctx.scanners
        if scan:
            likelihood = _LIKELIHOOD["brute"]
        out.append(_Candidate("refused", likelihood, sessions[0].start, _render_refused,
                              (ctx, client, server_ip, port, sessions, likelihood, facts, later, scan),
                              key=("refused", _source, client, server_ip, port)))
    return out


def _render_refused(ctx: _Context, client: str, server_ip: str, port: int, sessions: list, likelihood: float,
                    facts: tuple, later, scan: bool) -> Finding:
    server = hostport(server_ip, port)
    frames = [f for s in sessions for f in (s.first_frame, s.rst_frame, s.last_frame)]
    syns = sum(max(1, s.syn_count) for s in sessions)
    detail = (f"{server} answered {_plural(syns, 'SYN')} from {client} with RST ({_frames(frames)}, "
              f"{_when(sessions[0].start)}): nothing accepted the connection.")
    detail += _context_notes(sessions, *facts[:3])
    if later is not None:
        detail += f" A later attempt worked ({later.uid}, frame {later.first_frame})."
    if scan:
        detail += f" {client} failed towards {SCAN_SERVERS}+ hosts: this looks like a scan."
    advice = (f"Nothing listens on {server}, or a firewall rejects with RST. Check that {server_ip} really is "
              f"the ESXi host the VM runs on (a stale DNS record pointing elsewhere?), that the host is not "
              f"restarting its management agents, and the firewall rules for TCP {port}.")
    return Finding("refused", f"{server} refused {client}", detail, likelihood, advice, [client, server_ip],
                   sessions[0].start, sessions[-1].end, frames, [s.uid for s in sessions],
                   source=ctx.source(sessions[0]))


def path_findings(ctx: _Context) -> list[_Candidate]:
    """Console paths other than 902 that were not answered or refused: the vCenter relay
    (7331/7343) or 443 of a known ESXi host or vCenter — 0.70."""
    groups: dict[tuple, list[ConsoleConn]] = defaultdict(list)
    for c in ctx.conns:
        if c.server_port in (7331, 7343) or c.kind != "https":
            state = c.state
            if state == "no_answer" or state == "refused":
                groups[(c.client_ip, c.server_ip, c.server_port, state, c.source_index)].append(c)
    return [_Candidate("console_path_blocked", _LIKELIHOOD["path_blocked"], conns[0].start, _render_path,
                       (ctx, key, conns), key=("console_path_blocked", ctx.diag._source(key[4]), *key[:4]))
            for key, conns in groups.items()]


def _render_path(ctx: _Context, key: tuple, conns: list[ConsoleConn]) -> Finding:
    client, server_ip, port, state, _index = key
    server = hostport(server_ip, port)
    frames = [f for c in conns for f in c.frames]
    role = ("vCenter console relay" if port in (7331, 7343) else
            "ESXi host" if server_ip in ctx.esxi_ips else "vCenter")
    frames += [c.last_frame for c in conns]
    how = "never answered" if state == "no_answer" else "refused (RST)"
    syns = sum(max(1, c.syn_count) for c in conns)
    detail = (f"{client} sent {_plural(syns, 'SYN')} to {server} ({role}) in {_plural(len(conns), 'attempt')} "
              f"from {_when(conns[0].start)} to {_when(conns[-1].end)}: {how} ({_frames(frames)}).")
    if port in (7331, 7343):
        detail += " The web client console (Mac / HTML5) goes through this relay, not through 902."
    advice = (f"Allow TCP {port} from {client} to {server_ip}"
              + (" (the web client console relay runs on vCenter)" if port in (7331, 7343) else "") + ".")
    return Finding("console_path_blocked", f"{role} {server} not reachable from {client}", detail,
                   _LIKELIHOOD["path_blocked"], advice, [client, server_ip], conns[0].start, conns[-1].end,
                   frames, [], source=ctx.diag._source(conns[0].source_index))


