"""Finding kinds, base likelihoods, time windows and caps, and the ``Finding`` record.

Every number a check uses is named here, with the rule behind it beside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ...model.timefmt import utc_text

DNS_PORT = 53
HEARTBEAT_PORT = 902
AUTHD_PORTS = (902, 903, 912)
CONTROL_PORTS = (443, 7331, 7343)
WATCHED_PORTS = frozenset((*AUTHD_PORTS, *CONTROL_PORTS, DNS_PORT))

# reconnect windows: infer.reconnects (one definition for the diagnosis and the timeline)
FOLLOW_WINDOW_S = 60.0  # a 902 attempt this soon after a lookup "followed" it
DNS_TIMEOUT_S = 2.0  # a query unanswered for this long (while the capture still ran) got no answer
ABORT_WINDOW_S = 10.0  # a client that hangs up this soon after the server's hello rejected it
SCAN_SERVERS = 20  # a client failing towards this many servers is scanning, not opening a console

MAX_PENDING_DNS = 4096
MAX_NAMES = 4096
MAX_EVIDENCE = 8
MAX_ICMP_GROUPS = 1024
MAX_HEARTBEAT_FLOWS = 1024
MAX_FINDINGS_PER_KIND = 25
MAX_DNS_MEMO = 4096  # DNS message summaries remembered (cleared when full)
MAX_DNS_MEMO_BYTES = 512  # longer payloads are summarised every time

#: base likelihoods; the builders adjust them as their docstrings say
_LIKELIHOOD = {
    "dns": 0.40, "icmp_prohibited": 0.95, "icmp_unreachable": 0.90, "icmp_port": 0.85, "icmp_mtu": 0.50,
    "icmp_ttl": 0.60, "syn_no_answer": 0.85, "syn_single": 0.60, "refused": 0.85, "transient": 0.25,
    "cert_alert": 0.90, "cert_abort": 0.75, "tls_alert": 0.85, "tls_alert_other": 0.60, "login": 0.80,
    "login_inferred": 0.60, "brute": 0.30, "connect_code": 0.90, "connect_silent": 0.70, "reset_server": 0.70, "reset_client": 0.45,
    "reset_client_long": 0.35, "path_blocked": 0.70, "followed": 0.10, "retry": 0.15,
    "vnc_console": 0.50, "vnc_no_auth": 0.60, "vnc_no_follow": 0.60,
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
    severity: str = "problem"  # problem | warning (a risk, not a failure) | info
    source: str | None = None
    rank: int = 0
    key: tuple | None = field(default=None, repr=False, compare=False)  # _Candidate.key (not in the JSON)

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
    return utc_text(ts, "%H:%M:%S.%f") + " UTC"


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


