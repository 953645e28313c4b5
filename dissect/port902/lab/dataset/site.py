"""Drawing a site: the authd servers, their personas and certificates, and the clients of one capture.

Job: ``draw_site`` picks 1-3 servers whose personas come from one era (``ERAS``: modern, mixed,
legacy, Workstation with 902 and 912 on the same PC; protocol.md §2), random private addressing
(IPv6 on some sites), host names from a pool, and certificate subjects from a smaller pool —
``localhost.localdomain`` as on default ESXi certificates (§8) — plus clients by role: admin
PCs, vCenter, backup proxy, automation, scanner, monitoring, and two hosts nobody answers on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..certs import HostCert, host_cert
from ..scenario import Client, Host
from .options import pick

ERAS = {
    "modern": ("esxi8", "esxi8", "esxi6", "ws902"),
    "mixed": ("esxi55", "esxi6", "esxi8", "ws902-b9"),
    "legacy": ("esx-classic", "vmserver1", "gsx-legacy", "esxi55"),
    "workstation": ("ws902", "ws912", "ws902-b9", "esxi6"),
}
HOST_NAMES = ("esxi-01", "esxi-02", "esxi-03", "esx-prod-a", "esx-prod-b", "esxi-dmz-1", "esxi-bk-02", "esxi-lab",
              "esx4-01", "vmsrv01", "gsx-old", "ws-lab", "esxi-edge-07", "esxi-gpu-1", "esxi-vdi-3", "esxi-mgmt")
DOMAINS = ("corp.example", "lab.local", "dc1.example.net", "prod.internal", "site-b.example.org")
# certificate subjects: ESXi default certificates often say localhost.localdomain (protocol.md §8);
# a small pool keeps key generation (~0.7 s per key) cheap while thumbprints still vary
CERT_NAMES = {"localhost.localdomain": 3, "localhost": 1, "esxi-01.corp.example": 1, "esx-prod-a.prod.internal": 1,
              "esxi-lab.lab.local": 1, "vmsrv01.lab.local": 1, "esxi-dmz-1.dc1.example.net": 1,
              "esxi-bk-02.site-b.example.org": 1, "vcenter.corp.example": 1}


@dataclass(frozen=True)
class SiteHost(Host):
    """A ``Host`` whose certificate subject (``cert_name``) need not be its DNS name."""

    cert_name: str = ""

    @property
    def cert(self) -> HostCert:
        return host_cert(self.cert_name or self.name)


@dataclass
class Site:
    """Servers and clients of one capture."""

    hosts: list[Host]
    admins: list[Client]
    vcenter: Client
    backup: Client
    automation: Client
    scanner: Client
    monitor: Client
    resolver: str
    v6_clients: list[Client] = field(default_factory=list)
    dead: list[Host] = field(default_factory=list)


class _Addresses:
    """Random private addressing: a server subnet, a client subnet, optional IPv6 ULA prefix."""

    def __init__(self, rng: random.Random, ipv6: bool):
        kind = rng.choice(("10", "172", "192"))
        if kind == "10":
            net = f"10.{rng.randint(0, 254)}.{rng.randint(0, 254)}"
            cnet = f"10.{rng.randint(0, 254)}.{rng.randint(0, 254)}"
        elif kind == "172":
            net = f"172.{rng.randint(16, 31)}.{rng.randint(0, 254)}"
            cnet = f"172.{rng.randint(16, 31)}.{rng.randint(0, 254)}"
        else:
            net = f"192.168.{rng.randint(0, 254)}"
            cnet = net if rng.random() < 0.5 else f"192.168.{rng.randint(0, 254)}"
        self.rng = rng
        self.server_net, self.client_net = net, cnet
        self.prefix6 = f"fd{rng.getrandbits(8):02x}:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}" if ipv6 else None
        self.used: set[str] = set()

    def _take(self, net: str, low: int, high: int) -> str:
        for _ in range(1000):
            ip = f"{net}.{self.rng.randint(low, high)}"
            if ip not in self.used:
                self.used.add(ip)
                return ip
        raise RuntimeError("address pool exhausted")

    def server(self) -> str:
        return self._take(self.server_net, 10, 120)

    def client(self) -> str:
        return self._take(self.client_net, 121, 250)

    def v6(self, host_part: int) -> str | None:
        return f"{self.prefix6}::{host_part:x}" if self.prefix6 else None


def draw_site(rng: random.Random, era: str, everyone: bool = False) -> Site:
    """Servers (personas from ``era``; with ``everyone`` one of each) and clients with random
    addresses and names."""
    addr = _Addresses(rng, ipv6=rng.random() < 0.15)
    domain = rng.choice(DOMAINS)
    personas = list(dict.fromkeys(ERAS[era])) if everyone else list(ERAS[era])
    rng.shuffle(personas)
    personas.sort(key=lambda p: p == "ws912")      # 912 is the second listener of a 902 Workstation
    count = len(personas) if everyone else rng.choice((1, 2, 2, 3, 3))
    names = rng.sample(HOST_NAMES, count + 2)
    hosts = []
    for n in range(count):
        twin = next((h for h in hosts if h.persona.startswith("ws902")), None) if personas[n] == "ws912" else None
        if twin is not None:                     # Workstation listens on 902 and 912 on the same PC
            hosts.append(SiteHost(twin.name, twin.ip, "ws912", ip6=twin.ip6, cert_name=twin.cert_name))
            continue
        ip = addr.server()
        hosts.append(SiteHost(f"{names[n]}.{domain}", ip, personas[n % len(personas)],
                              ip6=addr.v6(int(ip.rsplit(".", 1)[1])), cert_name=pick(rng, CERT_NAMES)))
    if era == "workstation" and not any(h.persona == "ws912" for h in hosts) and not everyone:
        twin = next((h for h in hosts if h.persona.startswith("ws902")), None)
        if twin is not None and rng.random() < 0.7:          # the same Workstation PC: 902 and 912
            hosts.append(SiteHost(twin.name, twin.ip, "ws912", ip6=twin.ip6, cert_name=twin.cert_name))
    dead = [SiteHost(f"{names[count + k]}.{domain}", addr.server(), rng.choice(("esxi6", "esxi8", "esxi55")),
                     cert_name="localhost.localdomain") for k in range(2)]

    def client(name: str, os_name: str) -> Client:
        return Client(name, addr.client(), os_name)

    admins = [client(f"admin{k}", rng.choice(("windows", "windows", "linux"))) for k in range(rng.randint(1, 3))]
    v6_clients = []
    if addr.prefix6:
        v6_clients = [Client(f"admin6-{k}", f"{addr.prefix6}::{0x100 + k:x}", "windows") for k in range(2)]
    return Site(hosts, admins, Client("vcenter", addr.server(), "linux"),
                Client("backup", addr.client(), rng.choice(("linux", "windows"))),
                Client("automation", addr.client(), "linux"), Client("scanner", addr.client(), "linux"),
                Client("monitor", addr.client(), "linux"), addr.server(), v6_clients, dead)
