"""The diagnosis' checks, registered as data: (name, function of the shared context -> candidates).

Each module holds one family of checks and its renderers; to add a check, write it beside its
family and list it here. The order is the order candidates are collected in (ranking decides
what is shown).
"""

from .authd import connect_findings, login_findings, reset_findings
from .dns import dns_findings
from .network import icmp_findings, path_findings, refused_findings, syn_findings
from .reconnect import reconnect_findings
from .tls import tls_findings
from .vnc import vnc_findings

CHECKS = (
    ("icmp", icmp_findings),
    ("tls", tls_findings),
    ("syn", syn_findings),
    ("refused", refused_findings),
    ("login", login_findings),
    ("connect", connect_findings),
    ("reset", reset_findings),
    ("dns", dns_findings),
    ("reconnect", reconnect_findings),
    ("path", path_findings),
    ("vnc", vnc_findings),
)
