"""Why won't the console open? Ranked findings from a capture (a side analysis, ``Observer``).

The seed article's practical core: when the vSphere client reaches vCenter but a VM console
will not open, the cause is nearly always one of three — the client cannot **resolve** the
ESXi host's name, cannot **reach** the host, or a **firewall closes 902** — because the
console client (VMRC) talks to vCenter *and* straight to the ESXi host the VM runs on.  After
a vMotion it asks vCenter where the VM went and reconnects to the new host; Mac / HTML5
consoles go through vCenter's relay on 7331/7343 instead (protocol.md §4.4).

:class:`Diagnostics` looks at what the capture shows of each of those steps:

* DNS over UDP 53 (``proto.dns``): NXDOMAIN, SERVFAIL/REFUSED, no answer, no address;
* ICMP errors quoting a 902 (or console-path) packet: unreachable, administratively prohibited;
* the port-902 sessions of the main analysis (``analysis.sessions``): SYNs never answered,
  RST to SYN, TLS alerts, a client that hangs up right after the server certificate
  (thumbprint rejected), ``530`` to a login, a session that ends right after ``CONNECT``,
  resets in mid-stream, and reconnects (a console following its VM, a client retry);
* connection control on 443/7331/7343 (``analyzers.consolepath``): which console path was used;
* UDP 902 vpxa heartbeats (``proto.heartbeat``): which addresses are ESXi hosts and vCenter.

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

Modules: ``findings`` (kinds, likelihoods, windows, the ``Finding`` record), ``evidence`` (what the
side paths remember), ``observer`` (``Diagnostics``), ``context`` (what every check reads),
``checks`` (one module per family of checks, registered in ``checks.CHECKS``), ``rank``, ``live``
(``LiveFindings``: the findings settled so far while a capture is still read, each once, for
``dissect902 watch``).
"""

from ...model.schema import (
                       CONSOLE_PATHS,
                       DNS_LOOKUPS,
                       FINDING_KINDS,
                       FINDINGS,
                       HEARTBEATS,
)
from ...model.schema import DIAGNOSIS_TABLES as SCHEMAS
from .context import is_mks
from .evidence import HeartbeatFlow, IcmpGroup, NameLookup, dns_summary
from .findings import (
                       MAX_DNS_MEMO,
                       MAX_DNS_MEMO_BYTES,
                       MAX_EVIDENCE,
                       MAX_FINDINGS_PER_KIND,
                       MAX_NAMES,
                       MAX_PENDING_DNS,
                       Finding,
)
from .observer import Diagnostics

__all__ = ["Diagnostics", "Finding", "FINDING_KINDS", "FINDINGS", "HEARTBEATS", "CONSOLE_PATHS", "DNS_LOOKUPS",
           "SCHEMAS", "is_mks", "dns_summary", "NameLookup", "HeartbeatFlow", "IcmpGroup", "MAX_DNS_MEMO",
           "MAX_DNS_MEMO_BYTES", "MAX_EVIDENCE", "MAX_FINDINGS_PER_KIND", "MAX_NAMES", "MAX_PENDING_DNS"]
