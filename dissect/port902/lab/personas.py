"""Server personas: which product answers on which port, with which banner and TLS versions.

Why: the dissector reports the product behind a 902 listener from its banner, and a larger lab
will draw personas at random; keeping them as data (protocol.md §2.1, §11.1) makes the mapping
persona -> banner -> expected facts explicit and testable. Banner ids refer to
``authd.BANNERS``. TTL is the initial IP TTL of the server's stack (ESXi/Linux 64, Windows 128).
"""

from __future__ import annotations

from dataclasses import dataclass

from .authd import BANNERS


@dataclass(frozen=True)
class Persona:
    """One kind of authd server."""

    key: str
    product: str
    banner_id: str
    port: int = 902
    tls_versions: tuple[str, ...] = ("1.2",)     # what the server accepts; scenarios pick one
    ttl: int = 64

    @property
    def banner(self) -> str:
        """The greeting line without CRLF."""
        return BANNERS[self.banner_id]

    @property
    def ssl_required(self) -> bool:
        """Whether the client must start TLS after the banner."""
        return "SSL Required" in self.banner

    @property
    def sha256(self) -> bool:
        """Whether ``THUMBPRINT_SHA2`` is accepted (``SHA256 supported``)."""
        return "SHA256 supported" in self.banner

    @property
    def nfcssl(self) -> bool:
        """Whether NFC over a second TLS is offered."""
        return "NFCSSL supported" in self.banner


PERSONAS = {
    p.key: p
    for p in (
        Persona("gsx-legacy", "GSX Server 3 / ESX 2.x authd without SSL", "B1", tls_versions=()),
        Persona("esx-classic-903", "ESX 3.x/4.x service console vmware-authd-mks (903)", "B3", port=903,
                tls_versions=("1.0", "1.2")),
        Persona("esx-classic", "ESX 4.x authd (902)", "B4", tls_versions=("1.0", "1.2")),
        Persona("vmserver1", "VMware Server 1.x", "B3", tls_versions=("1.0",)),
        Persona("esxi55", "ESXi 5.5", "B5", tls_versions=("1.2", "1.1", "1.0")),
        Persona("esxi6", "ESXi 6.0", "B6", tls_versions=("1.2", "1.1", "1.0")),
        Persona("esxi8", "ESXi 8.0", "B7", tls_versions=("1.2", "1.3")),
        Persona("ws902", "VMware Workstation (Windows) port 902", "B8", ttl=128, tls_versions=("1.2", "1.3")),
        Persona("ws902-b9", "VMware Workstation (Windows) port 902, older build", "B9", ttl=128),
        Persona("ws912", "VMware Workstation (Windows) port 912, no SSL", "B10", port=912, ttl=128, tls_versions=()),
    )
}
