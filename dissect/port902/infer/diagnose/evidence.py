"""What the side paths remember while packets stream by: DNS lookups, vpxa heartbeats, ICMP errors.

Bounded tables (caps in ``findings``); ``dns_summary`` reads only what a check needs (RFC 1035 §4).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from ...errors import Malformed
from ...io.capture import (
    IPPROTO_TCP,
    IPPROTO_UDP,
)
from ...proto import dns as dnsmod
from ...proto import heartbeat as hbmod
from .findings import ICMP4_TYPES, ICMP4_UNREACH, ICMP6_TYPES, ICMP6_UNREACH

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


