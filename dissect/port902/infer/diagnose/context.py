"""What every check reads: the finished sessions indexed by client and server, plus session predicates.

``_Candidate`` is a finding decided (kind, likelihood, time) but not yet written: ranking keeps
only what it shows, so text is rendered for those alone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ...analyzers.consolepath import KINDS as PATH_KINDS
from ...analyzers.consolepath import ConsoleConn, classify
from ..reconnects import CONSOLE_PORTS, RECONNECT_WINDOW_S, find_reconnects
from ..reconnects import console_ok as _console_ok
from ..reconnects import failed_attempt as _failed_attempt
from ..reconnects import is_console as is_mks
from .findings import (
    MAX_FINDINGS_PER_KIND,
    SCAN_SERVERS,
    Finding,
    _plural,
)

if TYPE_CHECKING:
    from .observer import Diagnostics

# -- session helpers -------------------------------------------------------------------------------------

def _worked(s) -> bool:
    """The session got past the point where a console fails."""
    if is_mks(s):
        return True
    return (s.state in ("closed", "established") and s.banner is not None and s.logins_failed == 0
            and s.connect_ok is not False)


def _ender(s) -> str | None:
    """Who ended the connection first: 'client' or 'server' (from Zeek history letters)."""
    for ch in s.history:
        if ch in "FR":
            return "client"
        if ch in "fr":
            return "server"
    return None


def _record_ts(s, frame: int | None) -> float | None:
    if frame is None:
        return None
    for ts, fr, *_ in s.records():
        if fr == frame:
            return ts
    return None


# -- finding builders ------------------------------------------------------------------------------------------

class _Context:
    """What every builder needs: sessions by client and server, known hosts, console connections."""

    def __init__(self, diag: Diagnostics, sessions: list) -> None:
        self.diag = diag
        self.sessions = sessions
        self.by_client: dict[str, list] = defaultdict(list)
        self.by_pair: dict[tuple, list] = defaultdict(list)
        for s in sorted(sessions, key=lambda s: (s.start, s.first_frame)):
            self.by_client[(s.source, s.client_ip)].append(s)
            self.by_pair[(s.source, s.client_ip, s.server_ip, s.server_port)].append(s)
        self.explained: dict[str, str] = {}  # uid -> the finding kind that explains it
        self.esxi_ips: set[str] = {s.server_ip for s in sessions if s.banner is not None and s.server_port == 902}
        self.vcenter_ips: set[str] = set()
        for h in diag._heartbeats.values():
            if h.heartbeats:
                self.esxi_ips.add(h.sender)
                if h.host_ip:
                    self.esxi_ips.add(h.host_ip)
                self.vcenter_ips.add(h.receiver)
        self.conns: list[ConsoleConn] = diag._paths.connections()
        for c in self.conns:
            if c.server_port in (7331, 7343) and c.state not in ("no_answer", "refused"):
                self.vcenter_ips.add(c.server_ip)
        self.vcenter_ips -= self.esxi_ips
        for c in self.conns:
            c.kind = classify(c, self.esxi_ips, self.vcenter_ips)
        self.conns_by_client: dict[str, list[ConsoleConn]] = defaultdict(list)
        for c in self.conns:
            self.conns_by_client[(diag._source(c.source_index), c.client_ip)].append(c)
        self.reconnects = self._reconnects()
        self.moved_to = {b.uid: a for kind, a, b in self.reconnects.values() if kind == "moved"}
        self.reached: dict[tuple, list] = defaultdict(list)  # (source, server, port) -> answered sessions
        for s in sessions:
            if not _failed_attempt(s):
                self.reached[(s.source, s.server_ip, s.server_port)].append(s)
        fail_servers: dict[str, set] = defaultdict(set)
        for s in sessions:
            if _failed_attempt(s):
                fail_servers[s.client_ip].add(s.server_ip)
        self.scanners = {c for c, servers in fail_servers.items() if len(servers) >= SCAN_SERVERS}

    def source(self, s) -> str | None:
        return getattr(s, "source", None) or None

    def later_worked(self, s) -> object | None:
        """A later session from the same client to the same server:port that worked."""
        for t in self.by_pair[(s.source, s.client_ip, s.server_ip, s.server_port)]:
            if t.start > s.start and _worked(t):
                return t
        return None

    def other_client_reached(self, s) -> object | None:
        for t in self.reached.get((s.source, s.server_ip, s.server_port), ()):
            if t.client_ip != s.client_ip:
                return t
        return None

    def answered_443(self, source: str, client: str, server: str) -> ConsoleConn | None:
        for c in self.conns_by_client.get((source, client), ()):
            if c.server_ip == server and c.synack_frame is not None:
                return c
        return None

    def vcenter_between(self, source: str, client: str, t0: float, t1: float, exclude: set[str]) -> ConsoleConn | None:
        """A 443/7343 connection from ``client`` to something not in ``exclude`` (vCenter) in [t0, t1]."""
        best = None
        for c in self.conns_by_client.get((source, client), ()):
            if c.server_ip in exclude or not t0 - 5.0 <= c.start <= t1 + 1.0:
                continue
            if c.server_ip in self.vcenter_ips or c.kind in ("vsphere-api", "vcenter-https", "https"):
                if best is None or (c.server_ip in self.vcenter_ips and best.server_ip not in self.vcenter_ips):
                    best = c
        return best

    def _reconnects(self) -> dict[str, tuple]:
        """uid of the earlier session -> ('moved' | 'retry', earlier, later) for console reconnects on
        902/912 (``infer.reconnects`` decides what a reconnect is; here: the ones about a console)."""
        out = {}
        per_capture: dict[object, list] = defaultdict(list)
        for s in self.sessions:
            if s.server_port in CONSOLE_PORTS:
                per_capture[s.source].append(s)
        for r in (r for ss in per_capture.values() for r in find_reconnects(ss)):
            a, b = r.earlier, r.later
            if r.kind == "moved" and is_mks(a):
                out[a.uid] = ("moved", a, b)
            elif r.kind in ("retry", "reopened") and b.server_ip == a.server_ip and _console_ok(b) \
                    and (is_mks(a) or _failed_attempt(a) or a.state == "reset"):
                out[a.uid] = ("retry", a, b)
        return out

    def followed_from(self, s):
        """The console session whose VM this failed attempt was following, if any."""
        return self.moved_to.get(s.uid)

    def console_paths(self) -> list[dict]:
        out = []
        show = self.diag.show_secrets
        for c in self.conns:
            if c.kind == "https":
                continue
            d = c.to_dict(show)
            d["session_uid"] = None
            d["source"] = self.diag._source(c.source_index)
            out.append(d)
        for s in self.sessions:
            if is_mks(s):
                out.append({
                    "kind": "authd-902-mks", "client": s.client, "server": s.server, "server_port": s.server_port,
                    "start": s.start, "end": s.end, "duration_s": round(s.duration_s, 6), "state": s.state,
                    "first_frame": s.first_frame, "frames": [s.first_frame],
                    "sni": None, "alpn": [], "http_method": None, "http_target": None, "http_host": None,
                    "upgrade": None, "what": PATH_KINDS["authd-902-mks"], "session_uid": s.uid,
                    "source": self.source(s),
                })
        out.sort(key=lambda d: (d["start"], d["first_frame"]))
        return out

    def checked(self, findings: list[Finding]) -> list[dict]:
        kinds = Counter(f.kind for f in findings if f.severity == "problem")
        counts = self.diag._counts
        names = list(self.diag._names.values())
        dns_failed = sum(1 for n in names if n.failed)
        ss = self.sessions
        hs = [h for s in ss for h in s.handshakes]
        hb = [h for h in self.diag._heartbeats.values() if h.heartbeats]

        def row(check: str, observed: int, problems: int, what: str) -> dict:
            return {"check": check, "observed": observed, "problems": problems, "what": what}

        rows = [
            row("dns", len(names), dns_failed,
                f"{_plural(counts['dns_queries'], 'DNS query')}, {_plural(counts['dns_responses'], 'response')} "
                f"about {_plural(len(names), 'host name')} (A/AAAA), looking for NXDOMAIN, SERVFAIL/REFUSED, "
                f"no answer, no address"),
            row("tcp_902_reachability", len(ss), kinds["syn_no_answer"] + kinds["refused"] + kinds["icmp_unreachable"],
                f"{len(ss)} connection attempt(s) to 902/903/912: "
                f"{sum(1 for s in ss if s.state == 'no_answer')} unanswered, "
                f"{sum(1 for s in ss if s.state == 'refused')} refused; "
                f"{counts['icmp_errors']} ICMP error(s) in the capture"),
            row("tls_handshakes", len(hs), kinds["certificate_rejected"] + kinds["tls_alert"]
                + kinds["tls_before_greeting"] + kinds["tls_to_plain_daemon"] + kinds["clear_to_ssl_daemon"],
                f"{len(hs)} TLS handshake(s) on 902: alerts, and clients hanging up after the server certificate"),
            row("authd_logins", sum(s.login_attempts for s in ss), kinds["login_rejected"],
                "logins visible in clear (non-SSL daemons): 530 replies"),
            row("authd_connect", sum(1 for s in ss if s.connect_kind), kinds["connect_failed"],
                "CONNECT / PROXY lines visible in clear: a reply other than 200, or the end right after"),
            row("resets", sum(1 for s in ss if s.state == "reset"), kinds["reset_midstream"],
                "established 902 sessions ended by RST"),
            row("reconnects", len(self.reconnects), 0,
                "console sessions followed by another one from the same client within "
                f"{RECONNECT_WINDOW_S:.0f} s (vMotion: another host; retry: the same host)"),
            row("console_paths", len(self.conns), kinds["console_path_blocked"],
                f"{len(self.conns)} connection(s) on 443/7331/7343 "
                f"({sum(1 for c in self.conns if c.kind != 'https')} to vCenter/ESXi or console-specific)"
                + (f"; {self.diag._paths.dropped} more not kept" if self.diag._paths.dropped else "")),
            row("udp_902_heartbeats", sum(h.heartbeats for h in hb), 0,
                f"vpxa heartbeats from {len({h.sender for h in hb})} ESXi host(s) to "
                f"{len({h.receiver for h in hb})} vCenter(s); "
                f"{sum(h.not_heartbeat for h in self.diag._heartbeats.values())} UDP 902 datagram(s) not heartbeats"),
        ]
        suppressed = counts.get("findings_suppressed", 0)
        if suppressed:
            rows.append(row("suppressed", suppressed, suppressed,
                            f"{suppressed} similar finding(s) beyond {MAX_FINDINGS_PER_KIND} per kind not listed"))
        return rows


@dataclass(slots=True)
class _Candidate:
    """A finding before its text: what ranking needs (kind, severity, likelihood, first_ts), and
    ``render(*args)``, which writes the :class:`Finding` (with that likelihood) when it is kept.

    Builders decide every likelihood (and mark what a finding explains) up front; only the
    MAX_FINDINGS_PER_KIND best of a kind are rendered, so a capture with thousands of failed
    attempts does not pay for thousands of texts that ranking drops.

    ``key`` names the finding for a live run (``live``): the check and its subjects (the group key
    of a grouped check, a session uid, a looked-up name), never its text or likelihood, so the same
    finding gets the same key when later evidence makes it grow."""

    kind: str
    likelihood: float
    first_ts: float | None
    render: Callable[..., Finding]
    args: tuple
    severity: str = "problem"
    key: tuple | None = None  # what the finding is about (check + subjects): stable while its evidence grows


