"""``Diagnostics``: the observer ``analyze`` runs beside the port-902 pipeline.

It collects the side traffic packet by packet, then at ``finish`` runs every registered check
(``checks.CHECKS``) over the published session records and ranks the candidates.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import TYPE_CHECKING

from ...analyzers.consolepath import ConsolePathTracker
from ...errors import Malformed
from ...io.capture import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    Packet,
    Selection,
)
from ...model.schema import (
    CONSOLE_PATHS,
    DNS_LOOKUPS,
    FINDINGS,
    HEARTBEATS,
    build,
)
from ...net.flows import fmt_ip as _ip
from ...proto import heartbeat as hbmod
from . import rank as ranking
from .checks import CHECKS
from .context import _Candidate, _Context
from .evidence import (
    _MISS,
    HeartbeatFlow,
    IcmpGroup,
    NameLookup,
    _Query,
    _quoted,
    dns_summary,
)
from .findings import (
    AUTHD_PORTS,
    CONTROL_PORTS,
    DNS_PORT,
    DNS_TIMEOUT_S,
    HEARTBEAT_PORT,
    MAX_DNS_MEMO,
    MAX_DNS_MEMO_BYTES,
    MAX_EVIDENCE,
    MAX_HEARTBEAT_FLOWS,
    MAX_ICMP_GROUPS,
    MAX_NAMES,
    MAX_PENDING_DNS,
    WATCHED_PORTS,
    Finding,
)

if TYPE_CHECKING:  # pandas loads when a frame is built (frames.build): analyze runs this observer by default
    import pandas as pd


class Diagnostics:
    """Side analysis: collects DNS, ICMP errors, UDP 902 and 443/7331/7343 control packets,
    then reads the port-902 sessions and ranks what could explain a console that won't open.
    Use one instance per ``analyze`` run (``select`` is called once per capture file).

    >>> from dissect.port902.analysis import analyze
    >>> result = analyze("capture.pcap", observers=[Diagnostics()])
    >>> result.extras["diagnostics"].findings_frame()
    """

    name = "diagnostics"

    #: payload -> summary of a DNS message (see :func:`dns_summary`); a subclass may swap in another reader
    summarize_dns = staticmethod(dns_summary)

    def __init__(self, show_secrets: bool = False) -> None:
        self.show_secrets = show_secrets
        self.findings: list[Finding] = []
        self.checked: list[dict] = []
        self.console_paths: list[dict] = []
        self._source_index = -1
        self._sources: list[str] = []
        self._counts: Counter = Counter()
        # DNS
        self._pending: OrderedDict[tuple, _Query] = OrderedDict()  # oldest first: evicted when full
        self._dns_memo: dict[bytes, tuple | None] = {}  # payload[2:] -> dns_summary(payload)
        self._names: dict[tuple, NameLookup] = {}  # (capture index, client address bytes, lower-case name) -> lookups
        # UDP 902
        self._heartbeats: dict[tuple, HeartbeatFlow] = {}
        # ICMP
        self._icmp: dict[tuple, IcmpGroup] = {}
        # 443 / 7331 / 7343
        self._paths = ConsolePathTracker()
        self.last_ts: float | None = None

    # -- Observer: select / packet ---------------------------------------------------------------------

    def select(self, selection: Selection) -> None:
        """Ask the capture front end for UDP 53 and 902, ICMP errors and control on 443/7331/7343.
        Called once per capture file; frame numbers restart with each file."""
        selection.udp_ports.update((DNS_PORT, HEARTBEAT_PORT))
        selection.icmp_errors = True
        selection.tcp_control_ports.update(CONTROL_PORTS)
        self._source_index += 1
        self._paths.source_index = self._source_index

    def packet(self, pkt: Packet) -> None:
        self.last_ts = pkt[1]  # capture time of the latest side packet (live.LiveFindings reads it)
        proto = pkt[2]
        if proto == IPPROTO_UDP:
            sport, dport = pkt[5], pkt[6]
            if sport == DNS_PORT or dport == DNS_PORT:
                self._dns(pkt)
            elif sport == HEARTBEAT_PORT or dport == HEARTBEAT_PORT:
                self._heartbeat(pkt)
        elif proto == IPPROTO_TCP:
            if pkt[5] in CONTROL_PORTS or pkt[6] in CONTROL_PORTS:
                self._paths.feed(pkt)
        elif proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
            self._icmp_error(pkt)

    # -- DNS ---------------------------------------------------------------------------------------------------

    def _dns(self, pkt: Packet) -> None:
        """One UDP 53 payload.  What a message says does not depend on its id, so its summary
        (:func:`dns_summary`) is memoised on the payload without the first two bytes: a
        client's queries for a name, and its resolver's answers, repeat byte for byte."""
        frame, ts, _proto, src, dst, sport, dport, _seq, _ack, _flags, _window, payload, _plen, _wlen = pkt
        key = payload[2:]
        memo = self._dns_memo
        info = memo.get(key, _MISS)
        if info is _MISS:
            info = self.summarize_dns(payload)
            if len(key) <= MAX_DNS_MEMO_BYTES:
                if len(memo) >= MAX_DNS_MEMO:
                    memo.clear()
                memo[key] = info
        if not info:
            if info is None:
                self._counts["dns_malformed"] += 1
            return  # () : no question, or not a standard query
        counts = self._counts
        counts["dns_messages"] += 1
        is_response, name, lname, qtype, tracked, tname, fam, outcome, cut, addresses = info
        if not is_response:
            if dport != DNS_PORT:
                return
            counts["dns_queries"] += 1
            key = (self._source_index, src, sport, dst, payload[:2])
            pending = self._pending.get(key)
            if pending is not None:
                self._pending[key] = pending._replace(sends=pending.sends + 1)  # keeps its place
            else:
                if len(self._pending) >= MAX_PENDING_DNS:
                    self._expire(*self._pending.popitem(last=False), None)
                self._pending[key] = _Query(name, qtype, ts, frame)
            if tracked:
                entry = (self._names.get((self._source_index, src, lname))
                         or self._name_entry(src, name, lname, ts, frame))
                if entry is not None:
                    entry.queries += 1
                    entry.qtypes.add(tname)
                    entry.fam_queries[fam] += 1
                    entry.last_ts = ts
                    if len(entry.resolvers) < 8:
                        entry.resolvers.add(_ip(dst))
                    if len(entry.query_frames) < MAX_EVIDENCE:
                        entry.query_frames.append(frame)
            return
        if sport != DNS_PORT:
            return
        counts["dns_responses"] += 1
        self._pending.pop((self._source_index, dst, dport, src, payload[:2]), None)
        if not tracked:
            return
        entry = self._names.get((self._source_index, dst, lname)) or self._name_entry(dst, name, lname, ts, frame)
        if entry is None:
            return
        entry.responses += 1
        entry.last_ts = ts
        if cut:
            counts["dns_truncated"] += 1  # the client retries over TCP 53: not an answer either way
            return
        entry.outcomes[outcome] += 1
        if addresses:
            entry.ok_ts = ts
            kept = entry.addresses
            for a in addresses:
                if a not in kept and len(kept) < 16:
                    kept.append(a)
        else:
            self._fail(entry, fam, ts, frame)

    def _name_entry(self, client: bytes, name: str, lname: str, ts: float, frame: int) -> NameLookup | None:
        """The lookups of ``name`` (``lname`` in lower case) by the address ``client``; None
        beyond MAX_NAMES.  Keyed by the address bytes: ``_ip`` is one-to-one, so the entries are
        those of the address text, without writing it for every packet."""
        key = (self._source_index, client, lname)  # per capture: frame numbers restart with each file
        entry = self._names.get(key)
        if entry is None:
            if len(self._names) >= MAX_NAMES:
                self._counts["dns_names_not_kept"] += 1
                return None
            entry = self._names[key] = NameLookup(_ip(client), name, self._source_index, ts, frame)
        return entry

    def _fail(self, entry: NameLookup, fam: int, ts: float, frame: int) -> None:
        entry.fam_fail[fam] = max(ts, entry.fam_fail[fam] or ts)
        entry.first_fail_ts = min(ts, entry.first_fail_ts or ts)
        entry.last_fail_ts = max(ts, entry.last_fail_ts or ts)
        if len(entry.fail_frames) < MAX_EVIDENCE:
            entry.fail_frames.append(frame)

    def _expire(self, key: tuple, q: _Query, capture_end: float | None) -> None:
        """A query that never got a response: a failure when the capture ran on long enough."""
        if q.qtype not in (1, 28, 255):
            return
        if capture_end is not None and capture_end - q.ts < DNS_TIMEOUT_S:
            self._counts["dns_cut_by_capture_end"] += 1
            return
        entry = self._names.get((key[0], key[1], q.name.lower()))
        if entry is None:
            return
        entry.outcomes["no_answer"] += q.sends
        self._fail(entry, 1 if q.qtype == 28 else 0, q.ts, q.frame)

    # -- UDP 902 ------------------------------------------------------------------------------------------------

    def _heartbeat(self, pkt: Packet) -> None:
        self._counts["udp902_datagrams"] += 1
        key = (self._source_index, pkt.src, pkt.dst)
        flow = self._heartbeats.get(key)
        if flow is None:
            if len(self._heartbeats) >= MAX_HEARTBEAT_FLOWS:
                self._counts["udp902_flows_not_kept"] += 1
                return
            flow = self._heartbeats[key] = HeartbeatFlow(_ip(pkt.src), _ip(pkt.dst), self._source_index, pkt.ts,
                                                         pkt.frame)
        flow.datagrams += 1
        flow.last_ts, flow.last_frame = pkt.ts, pkt.frame
        try:
            hb = hbmod.parse(pkt.payload)
        except Malformed:
            flow.not_heartbeat += 1
            if len(flow.odd_frames) < MAX_EVIDENCE:
                flow.odd_frames.append(pkt.frame)
            return
        flow.heartbeats += 1
        if flow.build is None:
            flow.build, flow.host_ip, flow.host_key, flow.server_id = hb.build, hb.host_ip, hb.host_key, hb.server_id
            flow.counter_first = hb.counter
            flow.ndpi_shape = hb.ndpi_shape
        if len(flow.builds) < 8:
            flow.builds.add(hb.build)
        flow.counter_last = hb.counter

    # -- ICMP -----------------------------------------------------------------------------------------------------

    def _icmp_error(self, pkt: Packet) -> None:
        self._counts["icmp_errors"] += 1
        quoted = _quoted(pkt.payload)
        if quoted is None:
            return
        proto, src, dst, sport, dport = quoted
        if dport not in WATCHED_PORTS:
            self._counts["icmp_other_ports"] += 1
            return
        key = (self._source_index, pkt.src, src, dst, proto, dport, pkt.sport, pkt.dport)
        group = self._icmp.get(key)
        if group is None:
            if len(self._icmp) >= MAX_ICMP_GROUPS:
                self._counts["icmp_groups_not_kept"] += 1
                return
            group = self._icmp[key] = IcmpGroup(_ip(pkt.src), _ip(src), _ip(dst), proto, sport, dport,
                                                pkt.proto == IPPROTO_ICMPV6, pkt.sport, pkt.dport, pkt.ts,
                                                self._source_index)
        group.count += 1
        group.last_ts = pkt.ts
        if len(group.frames) < MAX_EVIDENCE:
            group.frames.append(pkt.frame)

    # -- finish -----------------------------------------------------------------------------------------------------

    def finish(self, analysis) -> None:
        """Build findings from what was collected and from ``analysis.sessions``."""
        self._sources = [c.path for c in analysis.captures]
        self._spans = [(c.first_ts, c.last_ts) for c in analysis.captures]
        ends = [c.last_ts for c in analysis.captures]
        for key, q in list(self._pending.items()):
            idx = key[0]
            self._expire(key, q, ends[idx] if 0 <= idx < len(ends) else None)
        self._pending.clear()
        self._paths.close()
        sessions = [s for s in analysis.sessions if s.server_port in AUTHD_PORTS or s.banner is not None]
        ctx = _Context(self, sessions)
        ctx.vnc = analysis.extras.get("vnc")  # plain VNC consoles (analyzers/vnc.py), when that observer ran
        candidates: list[_Candidate] = []
        for _name, check in CHECKS:
            candidates.extend(check(ctx))
        self.findings = ranking.rank(candidates, self._counts)
        self.console_paths = ctx.console_paths()
        self.checked = ctx.checked(self.findings)
        if ctx.vnc is not None:
            self.checked.append({
                "check": "plain_vnc", "observed": len(ctx.vnc.sessions),
                "problems": sum(1 for f in self.findings if f.kind in ("vnc_no_auth", "vnc_no_follow")),
                "what": f"{len(ctx.vnc.sessions)} RFB (VNC) session(s) recognised by content on ports "
                        f"{min(ctx.vnc.ports)}-{max(ctx.vnc.ports)}: unencrypted consoles, authentication, "
                        "a port per VM, consoles that did not follow a migration"})

    # -- output ------------------------------------------------------------------------------------------------------

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "problem"]

    @property
    def heartbeat_flows(self) -> list[HeartbeatFlow]:
        return sorted(self._heartbeats.values(), key=lambda f: (f.source_index, f.first_ts))

    @property
    def lookups(self) -> list[NameLookup]:
        return sorted(self._names.values(), key=lambda n: (n.source_index, n.first_ts))

    def to_json(self) -> dict:
        return {
            "findings": [f.to_dict() for f in self.findings],
            "checked": self.checked,
            "console_paths": self.console_paths,
            "heartbeats": [h.to_dict() for h in self.heartbeat_flows],
            "dns": [n.to_dict() for n in self.lookups],
        }

    def findings_frame(self) -> pd.DataFrame:
        return build(FINDINGS, [{
            "rank": f.rank, "likelihood": f.likelihood, "severity": f.severity, "kind": f.kind, "title": f.title,
            "detail": f.detail, "hosts": ";".join(f.hosts), "first_ts": f.first_ts, "last_ts": f.last_ts,
            "evidence_frames": ";".join(str(x) for x in f.evidence), "advice": f.advice,
            "related_uids": ";".join(f.related), "source": f.source,
        } for f in self.findings])

    def heartbeats_frame(self) -> pd.DataFrame:
        rows = []
        for h in self.heartbeat_flows:
            d = h.to_dict()
            rows.append({k: d[k] for k in HEARTBEATS if k in d} | {"source": self._source(h.source_index)})
        return build(HEARTBEATS, rows)

    def console_paths_frame(self) -> pd.DataFrame:
        rows = []
        for p in self.console_paths:
            rows.append({**{k: p.get(k) for k in CONSOLE_PATHS}, "frames": ";".join(str(x) for x in p["frames"])})
        return build(CONSOLE_PATHS, rows)

    def dns_frame(self) -> pd.DataFrame:
        rows = []
        for n in self.lookups:
            d = n.to_dict()
            rows.append({**{k: d.get(k) for k in DNS_LOOKUPS}, "qtypes": ";".join(d["qtypes"]),
                         "addresses": ";".join(d["addresses"]), "resolvers": ";".join(d["resolvers"]),
                         "source": self._source(n.source_index)})
        return build(DNS_LOOKUPS, rows)

    def _source(self, index: int) -> str | None:
        return self._sources[index] if 0 <= index < len(self._sources) else None


