"""Why won't the console open? Ranked findings from a capture (a side analysis, ``Observer``).

The seed article's practical core: when the vSphere client reaches vCenter but a VM console
will not open, the cause is nearly always one of three — the client cannot **resolve** the
ESXi host's name, cannot **reach** the host, or a **firewall closes 902** — because the
console client (VMRC) talks to vCenter *and* straight to the ESXi host the VM runs on.  After
a vMotion it asks vCenter where the VM went and reconnects to the new host; Mac / HTML5
consoles go through vCenter's relay on 7331/7343 instead (protocol.md §4.4).

:class:`Diagnostics` looks at what the capture shows of each of those steps:

* DNS over UDP 53 (``dns.py``): NXDOMAIN, SERVFAIL/REFUSED, no answer, no address;
* ICMP errors quoting a 902 (or console-path) packet: unreachable, administratively prohibited;
* the port-902 sessions of the main analysis (``analysis.sessions``): SYNs never answered,
  RST to SYN, TLS alerts, a client that hangs up right after the server certificate
  (thumbprint rejected), ``530`` to a login, a session that ends right after ``CONNECT``,
  resets in mid-stream, and reconnects (a console following its VM, a client retry);
* connection control on 443/7331/7343 (``consolepath.py``): which console path was used;
* UDP 902 vpxa heartbeats (``heartbeat.py``): which addresses are ESXi hosts and vCenter.

Each :class:`Finding` names its packets (frame numbers), hosts and times, says what to do, and
carries a *likelihood* in [0, 1] that it explains a console failure; the rule behind every
number is in the builder that sets it (``_LIKELIHOOD`` holds the base values).  ``severity``
separates problems from notes (a console that followed its VM is not a failure).  Findings
are ranked problems first, most likely first.

Memory stays bounded on busy captures: per-kind tables have caps (counters continue past
them) and ``packet()`` does O(1) work per packet.  It is also cheap, because ``analyze`` runs
it by default: a DNS message is read by ``dns.scan_question`` / ``dns.answer_addresses`` (the
answers only of responses to A / AAAA / ANY queries) into a summary memoised on the payload
without its id (:func:`dns_summary`; bounded), and ``finish()`` decides every likelihood first
and writes the text of only the findings ranking keeps (:class:`_Candidate`).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from socket import AF_INET, inet_ntop
from typing import TYPE_CHECKING, Callable, NamedTuple

from ..proto import dns as dnsmod
from ..proto import heartbeat as hbmod
from ..proto.authd import REPLY_CODES, split_command
from ..io.capture import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, Packet, Selection
from ..analyzers.consolepath import KINDS as PATH_KINDS
from ..analyzers.consolepath import ConsoleConn, ConsolePathTracker, classify
from ..errors import Malformed
from ..net.flows import hostport
from ..output.frames import Schema, build

if TYPE_CHECKING:  # pandas loads when a frame is built (frames.build): analyze runs this observer by default
    import pandas as pd

__all__ = ["Diagnostics", "Finding", "FINDING_KINDS", "FINDINGS", "HEARTBEATS", "CONSOLE_PATHS", "DNS_LOOKUPS",
           "SCHEMAS", "is_mks"]

DNS_PORT = 53
HEARTBEAT_PORT = 902
AUTHD_PORTS = (902, 903, 912)
CONTROL_PORTS = (443, 7331, 7343)
WATCHED_PORTS = frozenset((*AUTHD_PORTS, *CONTROL_PORTS, DNS_PORT))

RECONNECT_WINDOW_S = 60.0  # a new console session this soon after the last one is a reconnect
FOLLOW_WINDOW_S = 60.0  # a 902 attempt this soon after a lookup "followed" it
DNS_TIMEOUT_S = 2.0  # a query unanswered for this long (while the capture still ran) got no answer
ABORT_WINDOW_S = 10.0  # a client that hangs up this soon after the server's hello rejected it
MKS_MIN_DURATION_S = 2.0
OVERLAP_S = 2.0  # a reconnect may start this long before the old session's last packet
SCAN_SERVERS = 20  # a client failing towards this many servers is scanning, not opening a console

MAX_PENDING_DNS = 4096
MAX_NAMES = 4096
MAX_EVIDENCE = 8
MAX_ICMP_GROUPS = 1024
MAX_HEARTBEAT_FLOWS = 1024
MAX_FINDINGS_PER_KIND = 25
MAX_DNS_MEMO = 4096  # DNS message summaries remembered (cleared when full)
MAX_DNS_MEMO_BYTES = 512  # longer payloads are summarised every time

#: kind -> what it means (JSON, DataFrame categories, ``dissect902 doctor --help``)
FINDING_KINDS = {
    "dns_nxdomain": "a host name did not resolve: NXDOMAIN (no such name)",
    "dns_servfail": "the DNS server failed the lookup (SERVFAIL, REFUSED or another error)",
    "dns_no_answer": "a DNS query never got an answer",
    "dns_no_address": "the name exists but has no address record",
    "icmp_unreachable": "an ICMP error came back for a console packet (unreachable, administratively prohibited)",
    "syn_no_answer": "SYNs to 902 were never answered (filtered or host down)",
    "refused": "a SYN to 902 was answered with RST (closed, or a firewall rejecting)",
    "certificate_rejected": "the client rejected the host certificate (TLS alert, or hung up right after it)",
    "tls_alert": "a TLS alert ended the handshake on 902 (version / cipher mismatch)",
    "login_rejected": "authd answered a login with 530",
    "connect_failed": "the session ended right after CONNECT (VM not found / not powered on)",
    "reset_midstream": "an established 902 session was reset",
    "console_path_blocked": "a console path other than 902 (vCenter relay, ESXi 443) was not answered",
    "console_followed_vm": "a console session moved to another host (likely vMotion)",
    "console_retry": "the client reconnected its console to the same host",
}

#: base likelihoods; the builders adjust them as their docstrings say
_LIKELIHOOD = {
    "dns": 0.40, "icmp_prohibited": 0.95, "icmp_unreachable": 0.90, "icmp_port": 0.85, "icmp_mtu": 0.50,
    "icmp_ttl": 0.60, "syn_no_answer": 0.85, "syn_single": 0.60, "refused": 0.85, "transient": 0.25,
    "cert_alert": 0.90, "cert_abort": 0.75, "tls_alert": 0.85, "tls_alert_other": 0.60, "login": 0.80,
    "brute": 0.30, "connect_code": 0.90, "connect_silent": 0.70, "reset_server": 0.70, "reset_client": 0.45,
    "reset_client_long": 0.35, "path_blocked": 0.70, "followed": 0.10, "retry": 0.15,
}

CERT_ALERTS = frozenset({"bad_certificate", "unsupported_certificate", "certificate_revoked", "certificate_expired",
                         "certificate_unknown", "unknown_ca", "access_denied", "decrypt_error"})
VERSION_ALERTS = frozenset({"protocol_version", "handshake_failure", "insufficient_security", "inappropriate_fallback"})

ICMP4_TYPES = {3: "destination unreachable", 11: "time exceeded"}
ICMP4_UNREACH = {0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
                 4: "fragmentation needed (path MTU)", 5: "source route failed", 6: "destination network unknown",
                 7: "destination host unknown", 9: "network administratively prohibited",
                 10: "host administratively prohibited", 11: "network unreachable for TOS",
                 12: "host unreachable for TOS", 13: "communication administratively prohibited",
                 14: "host precedence violation", 15: "precedence cutoff"}
ICMP6_TYPES = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded"}
ICMP6_UNREACH = {0: "no route to destination", 1: "communication administratively prohibited",
                 2: "beyond scope of source address", 3: "address unreachable", 4: "port unreachable",
                 5: "source address failed ingress/egress policy", 6: "reject route to destination"}

# authd reply codes after CONNECT (protocol.md §3.4; texts there are mostly UNKNOWN, the constant names are public)
CONNECT_CODES = {
    511: ("the VM could not be started (VMAD_VMSTARTPROBLEM)",
          "Is the VM powered on? Start it or check its vmware.log."),
    512: ("the VM server process failed (VMAD_VMSERVERDPROBLEM)",
          "Check hostd/vmx on the host."),
    513: ("the ticket was not accepted (VMAD_TICKETERROR)",
          "Tickets live seconds: open the console again to get a new one; check the client clock."),
    514: ("the connection to the VM failed (VMAD_CONNECTPROBLEM)",
          "Is the VM powered on and on this host?"),
    550: ("access denied (VMAD_NOACCESS)",
          "The user lacks the console privilege (VirtualMachine.Interact.ConsoleInteract)."),
    551: ("the VM is not registered on this host (VMAD_NOTREGISTERED)",
          "The VM moved (vMotion) or was unregistered: reopen the console from vCenter."),
    552: ("the VM is busy (VMAD_VMBUSY)",
          "Another operation holds the VM; retry later."),
    553: ("no such VM (VMAD_NOSUCHVM)",
          "The vmx path is not on this host: the VM moved (vMotion / storage vMotion) or is gone; "
          "reopen the console from vCenter."),
    554: ("no such service (VMAD_NOSUCHSERVICE)",
          "The host does not offer the requested service."),
}

_VSPHERE_NAME = re.compile(r"esx|vcenter|vcsa|vsphere|^vc\d*$|^vc[-.]", re.IGNORECASE)
_NOISE_LABELS = frozenset({"wpad", "isatap", "localhost"})


# -- findings ------------------------------------------------------------------------------------------

@dataclass
class Finding:
    """One explanation candidate, with its evidence."""

    kind: str
    title: str
    detail: str
    likelihood: float
    advice: str
    hosts: list[str] = field(default_factory=list)
    first_ts: float | None = None
    last_ts: float | None = None
    evidence: list[int] = field(default_factory=list)  # frame numbers
    related: list[str] = field(default_factory=list)  # session uids
    severity: str = "problem"  # problem | info
    source: str | None = None
    rank: int = 0

    def to_dict(self) -> dict:
        return {
            "rank": self.rank, "likelihood": round(self.likelihood, 3), "severity": self.severity, "kind": self.kind,
            "title": self.title, "detail": self.detail, "hosts": self.hosts, "first_ts": self.first_ts,
            "last_ts": self.last_ts, "evidence_frames": self.evidence, "advice": self.advice,
            "related_uids": self.related, "source": self.source,
        }


def _clamp(x: float) -> float:
    return max(0.02, min(0.98, x))


def _when(ts: float | None) -> str:
    if ts is None:
        return "?"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%H:%M:%S.%f")[:-3] + " UTC"


def _frames(frames) -> str:
    fs = sorted({f for f in frames if f is not None})
    if not fs:
        return "no frame"
    shown = ", ".join(str(f) for f in fs[:MAX_EVIDENCE])
    more = f" and {len(fs) - MAX_EVIDENCE} more" if len(fs) > MAX_EVIDENCE else ""
    return ("frame " if len(fs) == 1 else "frames ") + shown + more


_PLURALS = {"query": "queries", "DNS query": "DNS queries"}


def _plural(n: int, word: str) -> str:
    return f"{n} {word if n == 1 else _PLURALS.get(word, word + 's')}"


# -- DNS bookkeeping -----------------------------------------------------------------------------------

class _Query(NamedTuple):
    """A query waiting for its response (a tuple: cheap to make, and of no interest to the
    garbage collector); a retransmission replaces it with ``sends`` + 1."""

    name: str
    qtype: int
    ts: float
    frame: int
    sends: int = 1


@dataclass(slots=True)
class NameLookup:
    """Every lookup one client made of one name (A / AAAA / ANY), summarised."""

    client: str
    name: str
    source_index: int
    first_ts: float
    first_frame: int
    last_ts: float = 0.0
    queries: int = 0
    responses: int = 0
    outcomes: Counter = field(default_factory=Counter)  # NOERROR / NXDOMAIN / SERVFAIL / no_answer / no_address
    qtypes: set = field(default_factory=set)
    fam_queries: list = field(default_factory=lambda: [0, 0])  # IPv4 (A/ANY), IPv6 (AAAA)
    fam_fail: list = field(default_factory=lambda: [None, None])  # time of the last failure per family
    ok_ts: float | None = None  # time of the last answer with an address
    addresses: list = field(default_factory=list)
    resolvers: set = field(default_factory=set)
    query_frames: list = field(default_factory=list)
    fail_frames: list = field(default_factory=list)
    first_fail_ts: float | None = None
    last_fail_ts: float | None = None

    @property
    def family(self) -> int:
        return 0 if self.fam_queries[0] else 1

    @property
    def failed(self) -> bool:
        """A failure of the address family the client cares about, not followed by an address."""
        fail = self.fam_fail[self.family]
        return fail is not None and (self.ok_ts is None or self.ok_ts < fail)

    @property
    def outcome(self) -> str:
        if not self.failed:
            return "resolved" if self.ok_ts is not None else ("pending" if not self.outcomes else "other")
        for name in ("NXDOMAIN", "SERVFAIL", "REFUSED"):
            if self.outcomes.get(name):
                return name
        errors = [k for k in self.outcomes if k not in ("NOERROR", "no_answer", "no_address")]
        if errors:
            return errors[0]
        return "no_answer" if self.outcomes.get("no_answer") else "no_address"

    def to_dict(self) -> dict:
        return {
            "client": self.client, "name": self.name, "qtypes": sorted(self.qtypes), "queries": self.queries,
            "responses": self.responses, "outcome": self.outcome, "failed": self.failed,
            "outcomes": dict(self.outcomes), "addresses": self.addresses, "resolvers": sorted(self.resolvers),
            "first_ts": self.first_ts, "last_ts": self.last_ts, "first_frame": self.first_frame,
            "fail_frames": self.fail_frames,
        }


@dataclass(slots=True)
class HeartbeatFlow:
    """UDP 902 datagrams from one sender to one receiver."""

    sender: str
    receiver: str
    source_index: int
    first_ts: float
    first_frame: int
    last_ts: float = 0.0
    last_frame: int = 0
    datagrams: int = 0
    heartbeats: int = 0
    not_heartbeat: int = 0
    build: int | None = None
    builds: set = field(default_factory=set)
    host_ip: str | None = None
    host_key: str | None = None
    server_id: int | None = None
    counter_first: int | None = None
    counter_last: int | None = None
    ndpi_shape: bool = False
    odd_frames: list = field(default_factory=list)

    @property
    def interval_s(self) -> float | None:
        n = self.heartbeats or self.datagrams
        return (self.last_ts - self.first_ts) / (n - 1) if n > 1 else None

    @property
    def rate_per_min(self) -> float | None:
        span = self.last_ts - self.first_ts
        n = self.heartbeats or self.datagrams
        return (n - 1) * 60.0 / span if n > 1 and span > 0 else None

    def to_dict(self) -> dict:
        return {
            "esxi": self.sender, "vcenter": self.receiver, "host_ip": self.host_ip, "host_key": self.host_key,
            "server_id": self.server_id, "build": self.build, "version": hbmod.esxi_version(self.build),
            "builds": sorted(self.builds), "datagrams": self.datagrams, "heartbeats": self.heartbeats,
            "not_heartbeat": self.not_heartbeat, "first_ts": self.first_ts, "last_ts": self.last_ts,
            "first_frame": self.first_frame, "last_frame": self.last_frame,
            "interval_s": None if self.interval_s is None else round(self.interval_s, 3),
            "rate_per_min": None if self.rate_per_min is None else round(self.rate_per_min, 3),
            "counter_first": self.counter_first, "counter_last": self.counter_last, "ndpi_shape": self.ndpi_shape,
            "not_heartbeat_frames": self.odd_frames,
        }


@dataclass(slots=True)
class IcmpGroup:
    reporter: str
    client: str
    server: str
    proto: int  # transport of the quoted packet
    sport: int
    dport: int
    icmp_v6: bool
    itype: int
    code: int
    first_ts: float
    source_index: int
    last_ts: float = 0.0
    count: int = 0
    frames: list = field(default_factory=list)

    @property
    def text(self) -> str:
        if self.icmp_v6:
            if self.itype == 1:
                return ICMP6_UNREACH.get(self.code, f"unreachable code {self.code}")
            return ICMP6_TYPES.get(self.itype, f"type {self.itype}")
        if self.itype == 3:
            return ICMP4_UNREACH.get(self.code, f"unreachable code {self.code}")
        return ICMP4_TYPES.get(self.itype, f"type {self.itype}")

    @property
    def category(self) -> str:
        if self.icmp_v6:
            if self.itype == 1:
                return {1: "prohibited", 5: "prohibited", 6: "prohibited", 4: "port"}.get(self.code, "unreachable")
            return {2: "mtu", 3: "ttl"}.get(self.itype, "unreachable")
        if self.itype == 11:
            return "ttl"
        return {9: "prohibited", 10: "prohibited", 13: "prohibited", 3: "port", 4: "mtu"}.get(self.code, "unreachable")


def _quoted(payload: bytes) -> tuple[int, bytes, bytes, int, int] | None:
    """(proto, src, dst, sport, dport) of the packet an ICMP error quotes."""
    if len(payload) < 20:
        return None
    version = payload[0] >> 4
    if version == 4:
        ihl = (payload[0] & 15) * 4
        if ihl < 20 or len(payload) < ihl + 4:
            return None
        proto, src, dst, l4 = payload[9], payload[12:16], payload[16:20], ihl
    elif version == 6:
        if len(payload) < 44:
            return None
        proto, src, dst, l4 = payload[6], payload[8:24], payload[24:40], 40
        while proto in (0, 43, 60) and l4 + 2 <= len(payload):
            proto, l4 = payload[l4], l4 + ((payload[l4 + 1] + 1) << 3)
    else:
        return None
    if proto not in (IPPROTO_TCP, IPPROTO_UDP) or len(payload) < l4 + 4:
        return None
    sport = (payload[l4] << 8) | payload[l4 + 1]
    dport = (payload[l4 + 2] << 8) | payload[l4 + 3]
    return proto, src, dst, sport, dport


@lru_cache(maxsize=65536)
def _ip(raw: bytes) -> str:
    """Address text, as ``flows.fmt_ip`` writes it (sessions are matched by this string)."""
    return inet_ntop(AF_INET, raw) if len(raw) == 4 else str(ipaddress.ip_address(raw))


# -- DNS summary ----------------------------------------------------------------------------------------

TRACKED_QTYPES = frozenset((1, 28, 255))  # A, AAAA, ANY: lookups of a host's address
_MISS = object()
_IGNORED = ()  # a message without a question, or not a standard query (opcode != 0)


def dns_summary(payload: bytes) -> tuple | None:
    """What the diagnosis reads of one DNS message, without its id.

    None for bytes that are not DNS (``dns.parse(payload, strict=False)`` raises), ``()`` for a
    message the diagnosis ignores (no question, opcode other than QUERY), else the tuple
    ``(is_response, name, name.lower(), qtype, tracked, type name, family, outcome, cut,
    addresses)``: for a response to a tracked query (A / AAAA / ANY) ``outcome`` is the RCODE
    name, or ``NOERROR`` / ``no_address`` for RCODE 0 with / without an address answer, ``cut``
    says the server truncated it (TC) without an address, and ``addresses`` are the A / AAAA
    answers in order; otherwise those three are None, False and ().

    Same values as reading ``dns.parse``'s Message (``tests/test_doctor.py`` compares both on
    every sample and on fuzzed messages); the answer section is walked only for responses to
    tracked queries."""
    try:
        flags, name, qtype, pos = dnsmod.scan_question(payload)
    except Malformed:
        return None
    if name is None or flags & 0x7800:
        return _IGNORED
    tracked = qtype in TRACKED_QTYPES
    head = (name, name.lower(), qtype, tracked, dnsmod.type_name(qtype), 1 if qtype == 28 else 0)
    if not flags & dnsmod.QR:
        return (False, *head, None, False, ())
    if not tracked:
        return (True, *head, None, False, ())
    addresses = tuple(dnsmod.answer_addresses(payload, pos, (payload[6] << 8) | payload[7]))
    rcode = flags & 0xF
    outcome = dnsmod.rcode_name(rcode) if rcode else ("NOERROR" if addresses else "no_address")
    cut = bool(flags & dnsmod.TC) and not addresses and rcode == 0
    return (True, *head, outcome, cut, addresses)


# -- session helpers -------------------------------------------------------------------------------------

def is_mks(s) -> bool:
    """An MKS console session: classified so, or CONNECT … mks seen, or (until the classifier
    says) a second TLS handshake on a session that lasted more than a couple of seconds."""
    if s.feature == "MKS" or s.connect_kind == "mks":
        return True
    return s.feature == "UNKNOWN" and s.transport == "tls+tls2" and s.duration_s > MKS_MIN_DURATION_S


def _console_ok(s) -> bool:
    """An MKS session that got its console: when the CONNECT line is visible, it was answered 200."""
    return is_mks(s) and (s.connect_kind != "mks" or s.connect_ok is True) and s.connect_ok is not False


def _failed_attempt(s) -> bool:
    return s.state in ("no_answer", "refused")


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


# -- the observer -------------------------------------------------------------------------------------------

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
        self._names: dict[tuple, NameLookup] = {}  # (client address bytes, name in lower case) -> lookups
        # UDP 902
        self._heartbeats: dict[tuple, HeartbeatFlow] = {}
        # ICMP
        self._icmp: dict[tuple, IcmpGroup] = {}
        # 443 / 7331 / 7343
        self._paths = ConsolePathTracker()

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
                entry = self._names.get((src, lname)) or self._name_entry(src, name, lname, ts, frame)
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
        entry = self._names.get((dst, lname)) or self._name_entry(dst, name, lname, ts, frame)
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
        key = (client, lname)
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
        entry = self._names.get((key[1], q.name.lower()))
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
        ends = [c.last_ts for c in analysis.captures]
        for key, q in list(self._pending.items()):
            idx = key[0]
            self._expire(key, q, ends[idx] if 0 <= idx < len(ends) else None)
        self._pending.clear()
        self._paths.close()
        sessions = [s for s in analysis.sessions if s.server_port in AUTHD_PORTS or s.banner is not None]
        ctx = _Context(self, sessions)
        candidates: list[_Candidate] = []
        for builder in (_icmp_findings, _tls_findings, _syn_findings, _refused_findings, _login_findings,
                        _connect_findings, _reset_findings, _dns_findings, _reconnect_findings, _path_findings):
            candidates.extend(builder(ctx))
        self.findings = _rank(candidates, self._counts)
        self.console_paths = ctx.console_paths()
        self.checked = ctx.checked(self.findings)

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
        """uid of the earlier session -> ('moved' | 'retry', earlier, later) for console reconnects."""
        out = {}
        for _key, ss in self.by_client.items():
            ss = [s for s in ss if s.server_port in (902, 912)]
            for i, a in enumerate(ss):
                if not (is_mks(a) or _failed_attempt(a) or a.state == "reset"):
                    continue
                for b in ss[i + 1:]:
                    if b.start > a.end + RECONNECT_WINDOW_S:
                        break
                    if b.start < a.end - OVERLAP_S or not (is_mks(b) or _failed_attempt(b)):
                        continue  # concurrent consoles are not a reconnect
                    if b.server_ip == a.server_ip:
                        if _console_ok(b):
                            out[a.uid] = ("retry", a, b)
                            break
                        continue
                    if is_mks(a):
                        out[a.uid] = ("moved", a, b)
                    break
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
            row("tls_handshakes", len(hs), kinds["certificate_rejected"] + kinds["tls_alert"],
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
    attempts does not pay for thousands of texts that ranking drops."""

    kind: str
    likelihood: float
    first_ts: float | None
    render: Callable[..., Finding]
    args: tuple
    severity: str = "problem"


def _icmp_findings(ctx: _Context) -> list[_Candidate]:
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
                              (ctx, client, server, dport, groups, key, likelihood, related, source)))
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


def _tls_findings(ctx: _Context) -> list[_Candidate]:
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
        if s.state == "partial" or not s.handshakes:
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
                hit = ("certificate_rejected", h, s.end, s.rst_frame or s.last_frame, "client", None)
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
        if kind == "certificate_rejected":
            likelihood = _LIKELIHOOD["cert_alert" if descs else "cert_abort"]
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
                               len(prober[client]) if probing else None)))
    return out


def _render_tls(ctx: _Context, kind: str, client: str, server_ip: str, port: int, items: list, sessions: list,
                descs: list[str], likelihood: float, later, probed_hosts: int | None) -> Finding:
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
    if later is not None:
        detail += f" A later session ({later.uid}, frame {later.first_frame}) worked."
    if probed_hosts is not None:
        detail += (f" {client} does this to {_plural(probed_hosts, 'host')} "
                   f"({_plural(len(items), 'time')} here): a health check or a scanner rather than a console?")
    return Finding(kind, title, detail, likelihood, advice, [client, server_ip],
                   sessions[0].start, sessions[-1].end, frames, [s.uid for s in sessions],
                   source=ctx.source(sessions[0]))


def _offered(h) -> list[str]:
    from ..proto.tls import version_name

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
        notes += (f" It came {sessions[0].start - moved_from.end:.1f} s after the console session to "
                  f"{moved_from.server} ended ({moved_from.uid}): the console was following its VM to this host "
                  f"(likely vMotion) and could not reach it.")
    if other is not None:
        notes += (f" Another client ({other.client_ip}, frame {other.first_frame}) did reach {s.server}: "
                  "the block is on this client's path.")
    if web is not None:
        notes += (f" The host answered this client on {web.server_port} (frame {web.synack_frame}), so it is up: "
                  f"only {s.server_port} is blocked.")
    return notes


def _syn_findings(ctx: _Context) -> list[_Candidate]:
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
                              (ctx, client, server_ip, port, sessions, syns, likelihood, facts, later, scan)))
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


def _refused_findings(ctx: _Context) -> list[_Candidate]:
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
                              (ctx, client, server_ip, port, sessions, likelihood, facts, later, scan)))
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


def _login_findings(ctx: _Context) -> list[_Candidate]:
    """``530`` after PASS on daemons whose dialogue is visible (non-SSL authd, Workstation 912).

    0.80; 0.25 when a later login from the same client to the same host was accepted; 0.30
    for password guessing (5+ failures or 3+ user names)."""
    groups: dict[tuple, list] = defaultdict(list)
    for s in ctx.sessions:
        if s.logins_failed:
            groups[(s.client_ip, s.server_ip, s.server_port, s.source)].append(s)
    out = []
    for (client, server_ip, port, _source), sessions in groups.items():
        fails = sum(s.logins_failed for s in sessions)
        users = []
        for s in sessions:
            for ln in s.dialogue:
                if ln.from_client and ln.verb == "USER":
                    u = ln.text[split_command(ln.text)[1]:].strip()  # as shown: a ticket is <redacted>
                    if u not in users:
                        users.append(u)
        likelihood = _LIKELIHOOD["login"]
        accepted = [t for t in ctx.by_pair[(sessions[0].source, client, server_ip, port)]
                    if t.login_outcome == "accepted" and t.start >= sessions[0].start]
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
                               guessing)))
    return out


def _render_login(ctx: _Context, client: str, server_ip: str, port: int, sessions: list, fails: int,
                  users: list[str], likelihood: float, accepted_later, guessing: bool) -> Finding:
    server = hostport(server_ip, port)
    lines = [ln for s in sessions for ln in s.dialogue if not ln.from_client and ln.code == 530]
    frames = [ln.frame for ln in lines]
    title = f"login rejected by {server}"
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


def _connect_findings(ctx: _Context) -> list[_Candidate]:
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
                              (ctx, s, cmd, reply, likelihood, ctx.followed_from(s))))
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


def _reset_findings(ctx: _Context) -> list[_Candidate]:
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
                              (ctx, s, who, mks, likelihood, retry)))
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


def _noise_name(name: str) -> bool:
    first = name.split(".", 1)[0].lower()
    low = name.lower()
    return (first.startswith("_") or first in _NOISE_LABELS or low.endswith((".arpa", ".local")) or name == ".")


_DNS_KINDS = {"NXDOMAIN": "dns_nxdomain", "no_answer": "dns_no_answer", "no_address": "dns_no_address"}


def _dns_findings(ctx: _Context) -> list[_Candidate]:
    """Names that failed (and did not resolve afterwards) for the client that asked.

    Likelihood: 0.40, +0.25 when no 902 connection from that client followed within 60 s (the
    console never got as far as the host), +0.15 for a vSphere-looking name (esx…, vcenter…),
    +0.05 when it failed more than once, −0.10 when the client did open 902 soon after (it
    reached some host some other way).  wpad/isatap/_srv names, .local and .arpa are ignored."""
    out = []
    for entry in ctx.diag._names.values():
        if not entry.failed or _noise_name(entry.name):
            continue
        outcome = entry.outcome
        kind = _DNS_KINDS.get(outcome, "dns_servfail")
        likelihood = _LIKELIHOOD["dns"]
        t0 = entry.first_fail_ts or entry.first_ts
        followed = [s for s in ctx.by_client.get((ctx.diag._source(entry.source_index), entry.client), ())
                    if t0 <= s.start <= t0 + FOLLOW_WINDOW_S]
        fails = sum(v for k, v in entry.outcomes.items() if k != "NOERROR")
        if not followed:
            likelihood += 0.25
        else:
            likelihood -= 0.10
        if _VSPHERE_NAME.search(entry.name.split(".", 1)[0]):
            likelihood += 0.15
        if fails > 1:
            likelihood += 0.05
        likelihood = _clamp(likelihood)
        out.append(_Candidate(kind, likelihood, entry.first_ts, _render_dns,
                              (ctx, entry, kind, outcome, followed, fails, likelihood)))
    return out


def _render_dns(ctx: _Context, entry: NameLookup, kind: str, outcome: str, followed: list, fails: int,
                likelihood: float) -> Finding:
    resolvers = ", ".join(sorted(entry.resolvers)) or "?"
    said = {"NXDOMAIN": "answered NXDOMAIN (no such name)", "no_answer": "never answered",
            "no_address": "answered without any address record"}.get(outcome, f"answered {outcome}")
    detail = (f"{entry.client} asked {resolvers} for '{entry.name}' ({'/'.join(sorted(entry.qtypes))}; "
              f"{_plural(entry.queries, 'query')}, {_frames(entry.query_frames)}); the DNS server "
              f"{said} ({_plural(fails, 'time')}"
              + (f", {_frames(entry.fail_frames)}" if outcome != "no_answer" else "") + ").")
    if not followed:
        detail += (f" No 902 connection from {entry.client} followed within {FOLLOW_WINDOW_S:.0f} s: "
                   "the console never got as far as the host.")
    else:
        detail += (f" {entry.client} did open 902 to {followed[0].server} soon after (frame "
                   f"{followed[0].first_frame}), perhaps by address or another name.")
    if outcome == "NXDOMAIN":
        advice = (f"'{entry.name}' does not exist in DNS for this client: add the A/AAAA record, fix the search "
                  "domain, or make vCenter know the host by a name clients can resolve (the console client "
                  "connects to the host by the name vCenter gives it).")
    elif outcome == "no_answer":
        advice = (f"The resolver {resolvers} did not answer: check that it is reachable from {entry.client} "
                  "(UDP/TCP 53 through firewalls) and running.")
    elif outcome == "no_address":
        advice = f"'{entry.name}' exists but has no address record of the type asked: add the A (or AAAA) record."
    else:
        advice = (f"The resolver {resolvers} could not resolve '{entry.name}' ({outcome}): check its forwarders "
                  "or the authoritative server of that zone.")
    titles = {"dns_nxdomain": f"'{entry.name}' does not resolve (NXDOMAIN)",
              "dns_no_answer": f"no DNS answer for '{entry.name}'",
              "dns_no_address": f"'{entry.name}' has no address",
              "dns_servfail": f"DNS lookup of '{entry.name}' failed ({outcome})"}
    return Finding(kind, titles[kind], detail, likelihood, advice,
                   [entry.client, *sorted(entry.resolvers)], entry.first_ts, entry.last_ts,
                   entry.query_frames + entry.fail_frames, [s.uid for s in followed[:1]],
                   source=ctx.diag._source(entry.source_index))


def _reconnect_findings(ctx: _Context) -> list[_Candidate]:
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
                                  (ctx, a, b), severity="info"))
        else:
            out.append(_Candidate("console_retry", _LIKELIHOOD["retry"], a.start, _render_retry, (ctx, a, b),
                                  severity="info"))
    return out


def _render_moved(ctx: _Context, a, b) -> Finding:
    gap = b.start - a.end
    vc = ctx.vcenter_between(a.source, a.client_ip, a.end, b.start, {a.server_ip, b.server_ip})
    detail = (f"The console of {a.client_ip} on {a.server} ({a.uid}, frames {a.first_frame}-{a.last_frame}) "
              f"ended at {_when(a.end)}; {gap:.1f} s later the same client opened a console on {b.server} "
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
              f"{gap:.1f} s later the client opened the console on the same host again ({b.uid}, frame "
              f"{b.first_frame}), which worked.")
    return Finding("console_retry", f"console to {a.server} reconnected", detail, _LIKELIHOOD["retry"],
                   "A retry that worked: if it happens often, look at the first session's failure.",
                   [a.client_ip, a.server_ip], a.start, b.start, [a.first_frame, b.first_frame],
                   [a.uid, b.uid], severity="info", source=ctx.source(a))


def _path_findings(ctx: _Context) -> list[_Candidate]:
    """Console paths other than 902 that were not answered or refused: the vCenter relay
    (7331/7343) or 443 of a known ESXi host or vCenter — 0.70."""
    groups: dict[tuple, list[ConsoleConn]] = defaultdict(list)
    for c in ctx.conns:
        if c.server_port in (7331, 7343) or c.kind != "https":
            state = c.state
            if state == "no_answer" or state == "refused":
                groups[(c.client_ip, c.server_ip, c.server_port, state, c.source_index)].append(c)
    return [_Candidate("console_path_blocked", _LIKELIHOOD["path_blocked"], conns[0].start, _render_path,
                       (ctx, key, conns))
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


def _rank(candidates: list[_Candidate], counts: Counter) -> list[Finding]:
    """Problems before notes, most likely first; at most MAX_FINDINGS_PER_KIND per kind.  Only
    the findings kept are rendered; the others are counted (``findings_suppressed``).  The sort
    is stable: equal keys keep the builders' order."""
    ordered = sorted(candidates, key=lambda c: (c.severity != "problem", -round(_clamp(c.likelihood), 3),
                                                c.first_ts or 0.0, c.kind))
    per_kind: Counter = Counter()
    kept = []
    for c in ordered:
        per_kind[c.kind] += 1
        if per_kind[c.kind] > MAX_FINDINGS_PER_KIND:
            counts["findings_suppressed"] += 1
            continue
        f = c.render(*c.args)
        f.likelihood = round(_clamp(f.likelihood), 3)
        f.evidence = sorted({x for x in f.evidence if x is not None})
        seen = []
        for h in f.hosts:
            if h not in seen:
                seen.append(h)
        f.hosts = seen
        kept.append(f)
    for i, f in enumerate(kept, 1):
        f.rank = i
    return kept


# -- DataFrame schemas ---------------------------------------------------------------------------------------------

FINDINGS: Schema = {
    "rank": ("Int64", "1 = the most likely explanation"),
    "likelihood": ("float64", "how likely this explains a console failure, in [0, 1]"),
    "severity": ("category", "problem | info (a note, e.g. a console that followed its VM)"),
    "kind": ("category", "what was found: " + ", ".join(FINDING_KINDS)),
    "title": ("string", "one line"),
    "detail": ("string", "the evidence in words: frames, hosts, times"),
    "hosts": ("string", "addresses involved, ';'-joined (client first)"),
    "first_ts": ("datetime64[ns, UTC]", "first packet of the evidence"),
    "last_ts": ("datetime64[ns, UTC]", "last packet of the evidence"),
    "evidence_frames": ("string", "frame numbers, ';'-joined"),
    "advice": ("string", "what to do"),
    "related_uids": ("string", "port-902 session uids, ';'-joined"),
    "source": ("string", "capture file the evidence came from"),
}

HEARTBEATS: Schema = {
    "esxi": ("string", "sender address (the ESXi host)"),
    "vcenter": ("string", "receiver address (vCenter)"),
    "host_ip": ("string", "the IPv4 address the heartbeat carries"),
    "host_key": ("string", "host key field"),
    "build": ("Int64", "ESXi build number"),
    "version": ("string", "ESXi release of that build, when known"),
    "datagrams": ("Int64", "UDP 902 datagrams in this direction"),
    "heartbeats": ("Int64", "datagrams with the heartbeat layout"),
    "not_heartbeat": ("Int64", "datagrams that are not heartbeats"),
    "first_ts": ("datetime64[ns, UTC]", "first datagram"),
    "last_ts": ("datetime64[ns, UTC]", "last datagram"),
    "interval_s": ("float64", "mean seconds between heartbeats"),
    "rate_per_min": ("float64", "heartbeats per minute"),
    "counter_first": ("Int64", "heartbeat counter of the first datagram"),
    "counter_last": ("Int64", "heartbeat counter of the last datagram"),
    "first_frame": ("Int64", "frame of the first datagram"),
    "ndpi_shape": ("boolean", "66 bytes, first byte 0xA4 (what nDPI keys on)"),
    "source": ("string", "capture file"),
}

CONSOLE_PATHS: Schema = {
    "kind": ("category", "console path: " + ", ".join(PATH_KINDS)),
    "client": ("string", "client ip:port"),
    "server": ("string", "server ip:port"),
    "server_port": ("Int64", "443, 7331, 7343 or 902"),
    "start": ("datetime64[ns, UTC]", "first packet"),
    "end": ("datetime64[ns, UTC]", "last control packet seen"),
    "duration_s": ("float64", "end - start, seconds"),
    "state": ("category", "no_answer | refused | reset | closed | open | partial (and 902 session states)"),
    "first_frame": ("Int64", "first frame"),
    "frames": ("string", "frames of SYN, SYN-ACK, ClientHello / request, ServerHello, RST; ';'-joined"),
    "sni": ("string", "server name from the ClientHello"),
    "http_method": ("string", "request method when in clear"),
    "http_target": ("string", "request target when in clear, tickets redacted"),
    "upgrade": ("string", "Upgrade header (websocket) when in clear"),
    "session_uid": ("string", "uid of the port-902 session (authd-902-mks rows)"),
    "source": ("string", "capture file"),
}

DNS_LOOKUPS: Schema = {
    "client": ("string", "address that asked"),
    "name": ("string", "name asked for (as sent; escape before printing)"),
    "qtypes": ("string", "query types, ';'-joined"),
    "queries": ("Int64", "queries sent (retransmissions included)"),
    "responses": ("Int64", "responses received"),
    "outcome": ("string", "resolved | NXDOMAIN | SERVFAIL | REFUSED | no_answer | no_address | pending"),
    "failed": ("boolean", "the lookup failed and did not resolve later"),
    "addresses": ("string", "addresses in the answers, ';'-joined"),
    "resolvers": ("string", "DNS servers asked, ';'-joined"),
    "first_ts": ("datetime64[ns, UTC]", "first query or response"),
    "last_ts": ("datetime64[ns, UTC]", "last query or response"),
    "first_frame": ("Int64", "frame of the first query"),
    "source": ("string", "capture file"),
}

SCHEMAS = {"findings": FINDINGS, "heartbeats": HEARTBEATS, "console_paths": CONSOLE_PATHS, "dns": DNS_LOOKUPS}
