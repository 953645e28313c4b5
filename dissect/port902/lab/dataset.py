"""Labelled datasets on demand: many captures of random, field-like port-902 sites, deterministic per seed.

Why: the classifier must be trained and validated on more than six hand-built samples, and on
conditions nobody tuned it for. ``generate(out_dir, n_captures, seed)`` writes captures plus a
sidecar ``NAME.labels.json`` each (schema of ``scenarios.label_schema()`` plus the fields
below) and a ``dataset.json`` manifest. Everything is drawn from a generator seeded by
``(seed, capture index)``, so capture *k* is the same file whatever ``n_captures`` is, and a
run with the same seed gives identical labels (TLS randoms differ, their sizes do not).

What a capture draws (``build_capture``):

* **site** — 1-3 authd servers whose personas come from one era (modern ESXi 8/6 + Workstation
  902; mixed 5.5/6/8; legacy classic ESX/VMware Server/GSX/5.5; a Workstation PC with 902 and
  912); the first eight captures visit every era with one server per persona, so small datasets
  cover them all. Random private addressing (IPv6 on some sites), host names from a pool,
  certificate subjects from a smaller pool (``localhost.localdomain`` as on default ESXi
  certificates, §8), clients by role: admin PCs, vCenter, backup proxy, automation, scanner,
  monitoring; occasionally authd on a non-default port (no mid-session cut there).
* **sessions** — features cycle through MKS, NFC, SOAP, VMXARGS, NONE per capture (so every
  feature appears in small datasets), then follow weights; each is placed on a server whose
  persona can do it (VMXARGS only where the banner says ``VMXARGS supported``, nbdssl only with
  ``NFCSSL``, no TLS on ``gsx-legacy``/``ws912``). Traffic plans: ``console.draw_plan``
  (profiles idle/text/desktop/media/boot, seconds to three hours, 640x480-2560x1440),
  ``sessions.NfcPlan`` (VDDK AIO or FSSRVR, nfclib, photon; reads/downloads and
  writes/uploads; ``min_bytes``-``max_bytes`` log-uniform; io 64 KiB-1 MiB; queue depth 1-2;
  changed-block offsets), ``soapsession.draw_plan`` (collector/ui/automation/watcher, think
  times, keep-alive), VMXARGS with 1-6 options. NONE: Hydra-style and Medusa-style brute
  force with 530s (silent failures on Workstation), OpenVAS/nmap probes, banner grabs,
  TLS-only scans, unanswered SYNs (Windows or Linux back-off), refused connections.
* **TLS** — versions the persona accepts (1.0-1.3), cipher suites incl. CBC (SHA-1/SHA-256/
  SHA-384 MACs) and ChaCha20 for TLS ≤ 1.2 (Python's ``ssl`` cannot choose TLS 1.3 suites; the
  server picks AES-256-GCM), SNI on for some clients.
* **conditions** (``CONDITIONS``) — per connection RTT 0.1 ms-200 ms (log-uniform within the
  capture's profile), jitter, random loss 0-3 % with real retransmissions, MSS 536-9000,
  bandwidth; per capture: span port or *host* capture (TSO/LSO and GRO super-frames, IPv4 total
  length 0 on Windows LSO and above 64 KiB, ``offload.coalesce``), snaplen truncation,
  background traffic (DNS, HTTPS 443, SSH, UDP 902 heartbeats); a ``midstream_share`` of the
  eligible sessions (MKS, NFC, SOAP, VMXARGS, single-connection brute force) is captured from
  a point inside it: in 80 % of cases within the first 60 % of its feature phase (after the
  MKS token, the NFC hand-off, the first SOAP call, …), otherwise between the start of TLS #1
  and that phase — always leaving payload in both directions.
* **container** — pcap or pcapng, µs or ns, either byte order, sometimes gzip; link types
  ethernet, 802.1Q, QinQ, raw IP, Linux SLL / SLL2.

Labels add to the sample schema: per connection ``midstream`` (bool: the capture starts after
the connection did), ``traffic`` (the plan that generated it) and richer ``conditions``
(``jitter_s``, ``bandwidth_bps``, ``injected_total``); per capture ``capture.conditions``
(profile, vantage kind, snaplen, offload) and ``dataset`` (seed, index).
"""

from __future__ import annotations

import concurrent.futures
import heapq
import ipaddress
import json
import math
import multiprocessing
import multiprocessing.util
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

from . import console, sessions, soapsession
from . import scenarios as S
from .certs import HostCert, host_cert
from .channel import Channel
from .netem import EmuTcp, NetConditions
from .offload import coalesce
from .pace import Pace
from .scenarios import EPOCH, Client, Flow, Host, Scenario
from .tcp import TcpConversation
from .tlsbio import TlsPair

DATASET_SCHEMA = "dissect902-lab-dataset/1"
FEATURE_CYCLE = ("MKS", "NFC", "SOAP", "VMXARGS", "NONE")
FEATURE_WEIGHTS = {"MKS": 3.0, "NFC": 3.0, "SOAP": 1.5, "VMXARGS": 1.0, "NONE": 3.0}

# persona -> features it can serve (protocol.md §2.2 tokens: SSL, SOAP, VMXARGS, NFCSSL)
SUPPORT = {
    "gsx-legacy": {"NONE"},
    "ws912": {"NONE", "SOAP"},
    "vmserver1": {"MKS", "NONE"},
    "esx-classic": {"MKS", "NFC", "SOAP", "NONE"},
    "esxi55": {"MKS", "NFC", "SOAP", "VMXARGS", "NONE"},
    "esxi6": {"MKS", "NFC", "SOAP", "VMXARGS", "NONE"},
    "esxi8": {"MKS", "NFC", "SOAP", "VMXARGS", "NONE"},
    "ws902": {"MKS", "NFC", "SOAP", "NONE"},
    "ws902-b9": {"MKS", "NFC", "SOAP", "NONE"},
}
ERAS = {
    "modern": ("esxi8", "esxi8", "esxi6", "ws902"),
    "mixed": ("esxi55", "esxi6", "esxi8", "ws902-b9"),
    "legacy": ("esx-classic", "vmserver1", "gsx-legacy", "esxi55"),
    "workstation": ("ws902", "ws912", "ws902-b9", "esxi6"),
}
NFC_STYLES = {           # persona -> style weights
    "esxi8": {"vddk-aio": 5, "nfclib": 2, "photon": 1},
    "esxi6": {"vddk-fssrvr": 3, "vddk-aio": 1.5, "nfclib": 2, "photon": 1},
    "esxi55": {"vddk-fssrvr": 3, "vddk-aio": 0.5, "nfclib": 2, "photon": 1},
    "esx-classic": {"vddk-fssrvr": 2, "nfclib": 2, "photon": 2},
    "ws902": {"nfclib": 3, "photon": 1},
    "ws902-b9": {"nfclib": 3, "photon": 1},
}
NONE_KINDS = {"brute-single": 2.0, "brute-multi": 1.5, "probe": 1.5, "banner": 1.2, "tls-only": 2.0,
              "unanswered": 1.0, "refused": 0.8}
CIPHERS = {
    "1.2": {"ECDHE-RSA-AES128-GCM-SHA256": 4, "ECDHE-RSA-AES256-GCM-SHA384": 4, "ECDHE-RSA-CHACHA20-POLY1305": 1.5,
            "ECDHE-RSA-AES128-SHA256": 1, "ECDHE-RSA-AES256-SHA384": 1, "ECDHE-RSA-AES128-SHA": 1, "AES256-SHA": 0.7,
            "AES128-GCM-SHA256": 0.7, "AES256-SHA256": 0.5},
    "1.1": {"ECDHE-RSA-AES256-SHA": 2, "AES128-SHA": 1, "AES256-SHA": 1},
    "1.0": {"ECDHE-RSA-AES256-SHA": 2, "ECDHE-RSA-AES128-SHA": 1, "AES128-SHA": 1, "AES256-SHA": 1},
}
HOST_NAMES = ("esxi-01", "esxi-02", "esxi-03", "esx-prod-a", "esx-prod-b", "esxi-dmz-1", "esxi-bk-02", "esxi-lab",
              "esx4-01", "vmsrv01", "gsx-old", "ws-lab", "esxi-edge-07", "esxi-gpu-1", "esxi-vdi-3", "esxi-mgmt")
DOMAINS = ("corp.example", "lab.local", "dc1.example.net", "prod.internal", "site-b.example.org")
# certificate subjects: ESXi default certificates often say localhost.localdomain (protocol.md §8);
# a small pool keeps key generation (~0.7 s per key) cheap while thumbprints still vary
CERT_NAMES = {"localhost.localdomain": 3, "localhost": 1, "esxi-01.corp.example": 1, "esx-prod-a.prod.internal": 1,
              "esxi-lab.lab.local": 1, "vmsrv01.lab.local": 1, "esxi-dmz-1.dc1.example.net": 1,
              "esxi-bk-02.site-b.example.org": 1, "vcenter.corp.example": 1}
ALT_PORTS = (9020, 10902, 2902, 913, 8902, 4902)

# network profile -> RTT range (s, log-uniform), jitter as a share of the RTT, loss range, bandwidth (B/s)
CONDITIONS = {
    "clean": {"rtt": (0.0002, 0.001), "jitter": (0.0, 0.0), "loss": (0.0, 0.0), "bw": (1.25e8, 1.25e8)},
    "lan": {"rtt": (0.0001, 0.002), "jitter": (0.0, 0.15), "loss": (0.0, 0.0005), "bw": (1.25e8, 1.25e9)},
    "campus": {"rtt": (0.001, 0.012), "jitter": (0.02, 0.25), "loss": (0.0, 0.003), "bw": (1.25e7, 1.25e8)},
    "wan": {"rtt": (0.015, 0.2), "jitter": (0.02, 0.3), "loss": (0.0, 0.01), "bw": (1.25e6, 2.5e7)},
    "lossy": {"rtt": (0.002, 0.12), "jitter": (0.05, 0.3), "loss": (0.01, 0.03), "bw": (2.5e6, 1.25e8)},
}
# capture profiles: network profile(s) + capture kind; "varied" draws one per capture by weight
CAPTURE_PROFILES = {
    "clean": ("clean", "span", 0.0),
    "lan": ("lan", "span", 3.0),
    "campus": ("campus", "span", 1.5),
    "wan": ("wan", "span", 2.0),
    "lossy": ("lossy", "span", 1.0),
    "host": (("lan", "campus", "wan"), "host", 1.5),
    "truncated": (("lan", "campus", "wan"), "snaplen", 1.0),
}
CONDITION_CHOICES = ("varied", *CAPTURE_PROFILES)
MSS_CHOICES = {1460: 8, 1400: 1, 1380: 1, 1360: 0.6, 1260: 0.4, 1220: 0.3, 536: 0.25, 8960: 0.6, 9000: 0.3}
SNAPLENS = {68: 0.4, 96: 1.5, 128: 1.5, 200: 1.0, 256: 1.0, 512: 0.5}
SPAN_LINKS = {"ethernet": 5, "vlan": 2, "qinq": 0.4, "raw": 0.6, "sll": 0.5, "sll2": 0.6}


def _pick(rng: random.Random, weights: dict):
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    if low <= 0 or high <= low:
        return max(low, high)
    return math.exp(rng.uniform(math.log(low), math.log(high)))


@dataclass
class Options:
    """What ``generate`` varies; defaults are the CLI's."""

    sessions_per_capture: tuple[int, int] = (6, 12)
    conditions: str = "varied"
    midstream_share: float = 0.2
    min_bytes: int = 4096
    max_bytes: int = 64 << 20
    max_console_s: float = 10800.0
    background: bool = True
    keys: bool = False
    prefix: str = "lab"

    def __post_init__(self):
        if isinstance(self.sessions_per_capture, int):
            self.sessions_per_capture = (self.sessions_per_capture, self.sessions_per_capture)
        self.sessions_per_capture = tuple(self.sessions_per_capture)
        if self.conditions not in CONDITION_CHOICES:
            raise ValueError(f"conditions must be one of {CONDITION_CHOICES}")
        if not 0.0 <= self.midstream_share <= 1.0:
            raise ValueError("midstream_share must be within [0, 1]")
        if self.max_bytes < self.min_bytes:
            raise ValueError("max_bytes must be >= min_bytes")


# -- the scenario -------------------------------------------------------------------------------------

class DatasetScenario(Scenario):
    """A ``Scenario`` whose TCP connections are ``netem.EmuTcp`` (jitter, bounded memory), whose
    TLS pairs draw cipher suites and SNI per connection, and whose ``write`` streams packets
    (heap merge of the flows), applies offload super-frames and adds the dataset's label fields."""

    def __init__(self, name: str, seed: int, description: str = "", start: float = EPOCH,
                 conditions: S.Conditions | None = None, keylog: str | None = None, spill_dir: str | None = None):
        super().__init__(name, seed, description, start, conditions, keylog)
        self.spill_dir = spill_dir
        self.sni: str | None = None                 # SNI for the connections being built
        self.port_override: dict[tuple[str, str], int] = {}     # (host ip, persona) -> authd port
        self.pairs: dict[str, list[TlsPair]] = {}   # uid -> TLS pairs in order

    def tcp(self, client: Client, server_ip: str, port: int, at: float, conditions: S.Conditions | None = None,
            server_ttl: int = 64):
        uid = self._next_uid()
        rng = self.rng_for(uid)
        c = conditions or self.conditions
        mss = c.mss
        if mss and ipaddress.ip_address(client.ip).version == 6 and mss < 8000:
            mss = min(mss - 20, 1440)
        conv = EmuTcp(
            client.ip, self.ephemeral_port(client), server_ip, port, at, rtt=c.rtt, mss=mss,
            vantage=c.vantage, bandwidth=c.bandwidth, client_ttl=client.ttl, server_ttl=server_ttl,
            timestamps=client.timestamps, loss=c.loss, loss_rate=c.loss_rate, reorder=c.reorder,
            capture_from=c.capture_from, rng=random.Random(rng.getrandbits(64)),
            jitter=getattr(c, "jitter", 0.0), spill_dir=self.spill_dir,
        )
        flow = Flow(uid, conv)
        self.flows.append(flow)
        pace = Pace(rng)
        return flow, Channel(conv, pace), pace, rng

    def authd_tcp(self, client: Client, host: Host, at: float, conditions: S.Conditions | None = None):
        port = self.port_override.get((host.ip, host.persona), host.profile.port)
        return self.tcp(client, host.address(client.ipv6), port, at, conditions, host.profile.ttl)

    def tls(self, host: Host, version: str, sni: str | None = None) -> TlsPair:
        uid = self.flows[-1].uid
        made = self.pairs.setdefault(uid, [])
        rng = random.Random(f"{self.seed}/{self.name}/{uid}/tls{len(made)}")
        ciphers = None
        if version in CIPHERS:
            first = made[0] if made else None
            same = first is not None and first.requested_version == version and rng.random() < 0.85
            ciphers = first.ciphers if same else _pick(rng, CIPHERS[version])
        pair = TlsPair(host.cert, version, ciphers=ciphers, sni=sni if sni is not None else self.sni,
                       keylog=self.keylog)
        pair.ciphers = ciphers
        made.append(pair)
        return pair

    # -- output --------------------------------------------------------------------------------

    def write(self, path: str | os.PathLike, fmt: str = "pcap", link: str = "ethernet",
              labels_path: str | os.PathLike | None = None, *, offload: dict | None = None,
              local: tuple[str, ...] = (), capture_info: dict | None = None, dataset_info: dict | None = None,
              **writer_options) -> dict:
        """Stream the capture to ``path`` and write its labels; returns the labels."""
        local_packed = {ipaddress.ip_address(a).packed for a in local}

        def rows(i: int, flow: Flow) -> Iterator[tuple]:
            records = flow.conn.records()
            if offload and isinstance(flow.conn, TcpConversation):
                records = coalesce(records, local_packed, **offload)
            for j, (t, packet, mark) in enumerate(records):
                yield t, i, j, packet, mark

        merged = heapq.merge(*(rows(i, f) for i, f in enumerate(self.flows)))
        written = self._stream(path, fmt, link, merged, writer_options)
        connections = self._connections(written)
        for label, flow in zip(connections, self.flows):
            label["midstream"] = not label.get("captured_from_start", True)
            label.setdefault("traffic", None)
            if isinstance(flow.conn, EmuTcp):
                flow.conn.discard()
        labels = self._labels(path, fmt, link, writer_options, written, connections,
                              capture_extra={"conditions": capture_info or {}}, extra={"dataset": dataset_info or {}})
        self._save_labels(labels, path, labels_path)
        return labels


# -- drawing a site --------------------------------------------------------------------------------

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
                              ip6=addr.v6(int(ip.rsplit(".", 1)[1])), cert_name=_pick(rng, CERT_NAMES)))
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


# -- drawing a capture -------------------------------------------------------------------------------

@dataclass
class CaptureSpec:
    """Container and capture-point choices of one capture."""

    fmt: str
    link: str
    ts_resolution: str
    byteorder: str
    compress: bool
    profile: str
    network: str
    kind: str                       # span | host | snaplen
    snaplen: int = 262144
    local: tuple[str, ...] = ()
    offload: dict | None = None

    @property
    def extension(self) -> str:
        return ("pcapng" if self.fmt == "pcapng" else "pcap") + (".gz" if self.compress else "")

    def info(self) -> dict:
        return {"profile": self.profile, "network": self.network, "kind": self.kind, "snaplen": self.snaplen,
                "local": list(self.local), "offload": self.offload,
                "byteorder": "big" if self.byteorder == ">" else "little",
                "compressed": self.compress}


class _Builder:
    """Draws and builds one capture's connections."""

    def __init__(self, seed: int, index: int, opts: Options, spill_dir: str | None, keylog: str | None = None):
        self.seed, self.index, self.opts = seed, index, opts
        self.rng = random.Random(f"dissect902-dataset/{seed}/{index}")
        rng = self.rng
        name = capture_name(seed, index, opts.prefix)
        start = EPOCH + rng.uniform(-4 * 365, 365) * 86400
        first_rounds = index < 2 * len(ERAS)         # the first captures visit every era with all its personas
        self.era = list(ERAS)[index % len(ERAS)] if first_rounds or rng.random() < 0.7 else rng.choice(list(ERAS))
        self.site = draw_site(rng, self.era, everyone=first_rounds)
        self.spec = self._draw_spec()
        self.sc = DatasetScenario(name, seed, "", start=start, spill_dir=spill_dir, keylog=keylog)
        self.used: dict[Host, int] = {}

    # -- capture-level choices ---------------------------------------------------------------

    def _draw_spec(self) -> CaptureSpec:
        rng, opts = self.rng, self.opts
        profile = opts.conditions
        if profile == "varied":
            profile = _pick(rng, {k: v[2] for k, v in CAPTURE_PROFILES.items() if v[2] > 0})
        network, kind, _ = CAPTURE_PROFILES[profile]
        if not isinstance(network, str):
            network = rng.choice(network)
        fmt = "pcapng" if rng.random() < 0.4 else "pcap"
        spec = CaptureSpec(fmt, "ethernet", "ns" if rng.random() < 0.25 else "us", ">" if rng.random() < 0.1 else "<",
                           rng.random() < 0.08, profile, network, kind)
        if kind == "host":
            if rng.random() < 0.7:                  # a client machine (vCenter, backup proxy, admin PC)
                who = rng.choice([self.site.vcenter, self.site.backup, self.site.admins[0]])
                spec.local = (who.ip,)
                windows = who.os == "windows"
                spec.link = "ethernet" if windows else _pick(rng, {"sll2": 3, "sll": 1, "ethernet": 2})
            else:                                   # the ESXi host itself (pktcap-uw)
                host = rng.choice([h for h in self.site.hosts if h.persona != "ws912"] or self.site.hosts)
                spec.local = tuple(a for a in (host.ip, host.ip6) if a)
                windows = host.profile.ttl == 128
                spec.link = "ethernet"
            big = rng.random() < 0.1
            spec.offload = {"tso": True, "gro": (not windows) and rng.random() < 0.6,
                            "max_payload": (rng.randint(120000, 190000) if big
                                            else rng.choice((16384, 32768, 65483, 65483))),
                            "window": 0.002, "zero_length": windows and rng.random() < 0.7}
        else:
            spec.link = _pick(rng, SPAN_LINKS)
            if kind == "snaplen":
                spec.snaplen = _pick(rng, SNAPLENS)
        return spec

    def _conditions(self, vantage: float | None = None) -> NetConditions:
        rng = self.rng
        p = CONDITIONS[self.spec.network]
        rtt = _log_uniform(rng, *p["rtt"])
        jitter = rtt * rng.uniform(*p["jitter"])
        loss = rng.uniform(*p["loss"]) if p["loss"][1] > 0 and rng.random() < 0.6 else 0.0
        mss = _pick(rng, MSS_CHOICES)
        if mss > 1500 and self.spec.network not in ("lan", "clean"):
            mss = 1460
        if vantage is None:
            if self.spec.kind == "host":
                vantage = 0.0
            else:
                vantage = rng.uniform(0.55, 0.98) if rng.random() < 0.75 else rng.uniform(0.02, 0.45)
        return NetConditions(rtt=rtt, mss=mss, loss_rate=loss, vantage=vantage,
                             bandwidth=_log_uniform(rng, *p["bw"]), jitter=jitter)

    def _vantage_for(self, client: Client, host_ip: str) -> float | None:
        if self.spec.kind != "host":
            return None
        return 0.0 if client.ip in self.spec.local else 1.0

    # -- who talks to whom -----------------------------------------------------------------------

    def _involves_local(self, client: Client, host: Host) -> bool:
        if self.spec.kind != "host":
            return True
        return client.ip in self.spec.local or host.ip in self.spec.local

    def _client_for(self, feature: str, kind: str | None = None) -> Client:
        rng, site = self.rng, self.site
        if self.spec.kind == "host" and self.spec.local[0] not in {h.ip for h in site.hosts}:
            return next(c for c in (site.vcenter, site.backup, *site.admins) if c.ip == self.spec.local[0])
        if feature == "MKS":
            pool = site.admins * 3 + [site.vcenter] + site.v6_clients
        elif feature == "NFC":
            pool = [site.backup] * 3 + [site.vcenter, site.automation]
        elif feature in ("SOAP", "VMXARGS"):
            pool = [site.vcenter] * 2 + [site.automation] + ([site.admins[0]] if feature == "SOAP" else [])
        elif kind in ("unanswered", "refused"):
            pool = site.admins + [site.vcenter, site.monitor]
        elif kind in ("banner", "tls-only"):
            pool = [site.scanner] * 2 + [site.monitor]
        else:
            pool = [site.scanner]
        return rng.choice(pool)

    def _host_for(self, feature: str, client: Client, need=None) -> Host | None:
        hosts = [h for h in self.site.hosts if feature in SUPPORT.get(h.persona, ())]
        if need:
            hosts = [h for h in hosts if need(h)]
        if client.ipv6:
            hosts = [h for h in hosts if h.ip6]
        if self.spec.kind == "host" and self.spec.local[0] in {h.ip for h in self.site.hosts}:
            hosts = [h for h in hosts if h.ip in self.spec.local]
        if not hosts:
            return None
        least = min(self.used.get(h, 0) for h in hosts)      # spread sessions over the servers
        host = self.rng.choice([h for h in hosts if self.used.get(h, 0) == least])
        self.used[host] = self.used.get(host, 0) + 1
        return host

    def _tls_versions(self, host: Host) -> tuple[str | None, str | None]:
        versions = host.profile.tls_versions
        if not versions:
            return None, None
        rng = self.rng
        weights = [3.0 / (k + 1) for k in range(len(versions))]
        v1 = rng.choices(versions, weights=weights)[0]
        v2 = v1 if rng.random() < 0.85 else rng.choice(versions)
        return v1, v2

    # -- sessions ----------------------------------------------------------------------------------

    def build(self) -> DatasetScenario:
        rng, opts, sc = self.rng, self.opts, self.sc
        low, high = opts.sessions_per_capture
        count = rng.randint(low, high)
        span = rng.uniform(20, 40) * max(1, count)
        starts = sorted(rng.uniform(0, span) for _ in range(count))
        offset = rng.randrange(len(FEATURE_CYCLE))
        for host in self.site.hosts:            # authd.port is configurable (protocol.md §1): rarely moved
            if self.spec.kind == "span" and host.persona not in ("esx-classic", "ws912") and rng.random() < 0.05:
                sc.port_override[(host.ip, host.persona)] = rng.choice(ALT_PORTS)
        for n, at in enumerate(starts):
            if n < len(FEATURE_CYCLE):
                feature = FEATURE_CYCLE[(offset + n) % len(FEATURE_CYCLE)]
            else:
                feature = _pick(rng, FEATURE_WEIGHTS)
            self._session(feature, sc.at(at))
        if opts.background:
            self._background(span)
        return sc

    def _session(self, feature: str, at: float) -> None:
        rng, sc = self.rng, self.sc
        kind = _pick(rng, NONE_KINDS) if feature == "NONE" else None
        client = self._client_for(feature, kind)
        if feature == "NONE" and kind in ("unanswered", "refused"):
            host = rng.choice(self.site.dead) if self.spec.kind != "host" or client.ip in self.spec.local else None
        else:
            need = (lambda h: h.profile.ssl_required) if kind == "tls-only" else None
            host = self._host_for(feature, client, need)
        if host is None:                                         # nothing here can do it: a NONE session instead
            feature, kind = "NONE", rng.choice(("brute-single", "probe", "banner"))
            if self.spec.kind != "host":
                client = self._client_for(feature, kind)
            host = self._host_for("NONE", client)
            if host is None:
                return
        if client.ipv6 and not host.ip6:
            client = self.site.admins[0]
        sc.conditions = self._conditions(self._vantage_for(client, host.ip))
        sc.sni = host.name if rng.random() < (0.35 if feature == "NFC" else 0.12) else None
        tls1, tls2 = self._tls_versions(host)
        before = len(sc.flows)
        phase = None
        if feature == "MKS":
            phase = "mks_token"
            if host.persona == "esx-classic" and rng.random() < 0.6:
                S.classic_handoff(sc, client, host, at, _log_uniform(rng, 3, 240), tls=tls1 or "1.0",
                                  vm=sessions._vm_name(rng))
            else:
                plan = console.draw_plan(rng)
                if plan.seconds > self.opts.max_console_s:
                    plan = console.ConsolePlan(**{**asdict(plan), "seconds": self.opts.max_console_s})
                sessions.mks_session(sc, client, host, at, plan, tls1=tls1, tls2=tls2,
                                     end=_pick(rng, {"notify": 5, "fin": 2, "rst": 1, "server": 0.5, "open": 0.7}))
        elif feature == "NFC":
            phase = "handoff"
            sessions.nfc_session(sc, client, host, at, self._nfc_plan(host), tls1=tls1, tls2=tls2,
                                 end=_pick(rng, {"fin": 6, "notify": 1, "rst": 1}))
        elif feature == "SOAP":
            phase = "soap_RetrieveServiceContent"
            sessions.soap_session(sc, client, host, at, soapsession.draw_plan(rng), tls=tls1,
                                  user=rng.choice(("vpxuser", "root", "svc-monitor", "administrator@vsphere.local")),
                                  ticket_login=rng.random() < 0.3, end=_pick(rng, {"notify": 4, "fin": 2, "rst": 1}))
        elif feature == "VMXARGS":
            phase = "connect_argv"
            sessions.vmxargs_session(sc, client, host, at, tls=tls1, options=rng.randint(1, 6),
                                     linger=_log_uniform(rng, 0.02, 3.0),
                                     end=_pick(rng, {"fin": 4, "rst": 1, "notify": 1}))
        else:
            phase = self._none_session(kind, client, host, at, tls1)
        flows = sc.flows[before:]
        for k, flow in enumerate(flows):
            if flow.label.get("traffic") is None:
                if feature == "MKS":
                    model = "classic-903" if flow.label["persona"] == "esx-classic-903" else "console-classic"
                    flow.label["traffic"] = {"model": model}
                else:
                    flow.label["traffic"] = {"model": kind or feature.lower(), "connection": k + 1, "of": len(flows)}
        for flow in flows:
            pairs = sc.pairs.get(flow.uid)
            if pairs and flow.label["expected"]["tls_handshakes"]:
                flow.label["expected"]["sni"] = pairs[0].sni
        eligible = phase is not None and (host.ip, host.persona) not in sc.port_override
        for flow in flows:
            if eligible and flow.label["feature"] == feature and rng.random() < self.opts.midstream_share:
                self._cut(flow, phase)

    def _nfc_plan(self, host: Host) -> sessions.NfcPlan:
        rng, opts = self.rng, self.opts
        style = _pick(rng, NFC_STYLES[host.persona])
        write = rng.random() < 0.4
        size = int(_log_uniform(rng, opts.min_bytes, opts.max_bytes))
        if style.startswith("vddk"):
            size = max(512, size // 512 * 512)
        ssl = host.profile.nfcssl and style != "photon" and rng.random() < 0.5
        io_sizes = (65536, 131072, 262144, 524288, 1048576)
        return sessions.NfcPlan(
            style, write, size, ssl=ssl, io_size=rng.choice(io_sizes),
            queue_depth=2 if style == "vddk-aio" and rng.random() < 0.25 else 1,
            disk=rng.random() < 0.5,
            chunk=rng.choice((262144, 261880, 65536)) if style in ("nfclib", "photon") else 262144,
            sparse=rng.uniform(0.0, 0.6), scattered=style.startswith("vddk") and rng.random() < 0.3,
            direct=style.startswith("vddk") and rng.random() < 0.3)

    def _none_session(self, kind: str, client: Client, host: Host, at: float, tls1: str | None) -> str | None:
        rng, sc = self.rng, self.sc
        if kind == "unanswered":
            retries = (3.0, 6.0) if client.os == "windows" else (1.0, 2.0, 4.0, 8.0)[: rng.randint(1, 4)]
            S.unanswered(sc, client, host, at, retries=retries)
        elif kind == "refused":
            S.refused(sc, client, host, at, retries=(0.5, 1.0)[: rng.randint(0, 2)])
        elif kind == "probe":
            S.probe(sc, client, host, at, text=rng.choice(sessions.PROBES))
        elif kind == "banner":
            sessions.banner_grab(sc, client, host, at, end=rng.choice(("fin", "rst")))
        elif kind == "tls-only":
            sessions.tls_only(sc, client, host, at, tls=tls1, end=_pick(rng, {"notify": 3, "fin": 2, "rst": 1}))
        else:
            multi = kind == "brute-multi"
            tries = rng.randint(2, 5) if multi else rng.randint(1, 12)
            user = rng.choice(sessions.USERS)
            attempts = [(user if rng.random() < 0.8 else rng.choice(sessions.USERS), pw, False)
                        for pw in rng.sample(sessions.PASSWORDS, min(tries, len(sessions.PASSWORDS)))]
            if rng.random() < 0.2:
                attempts[-1] = (attempts[-1][0], attempts[-1][1], True)
            silent = host.persona.startswith("ws") and rng.random() < 0.5
            S.credential_login(sc, client, host, at, attempts, per_connection=multi, tls=tls1, silent_failures=silent)
            return "pass" if not multi and len(attempts) >= 3 else None
        return None

    def _cut(self, flow: Flow, phase: str) -> None:
        """Start the capture of ``flow`` inside it: after TLS #1 began, mostly inside the feature phase."""
        conv = flow.conn
        if not isinstance(conv, EmuTcp) or conv.state not in ("closed", "reset", "established"):
            return
        rng, marks = self.rng, conv.mark_times
        low = marks.get("tls1_server_hello", marks.get("banner"))
        start = marks.get(phase)
        if low is None or start is None:
            return
        end = conv.end_ts
        for attempt in range(3):
            if attempt == 0 and rng.random() < 0.8:
                cut = rng.uniform(start, start + 0.6 * max(0.0, end - start))
            else:
                cut = rng.uniform(low, start)
            if self._visible_after(conv, cut):
                break
        else:
            return
        conv.capture_from = cut
        flow.label["captured_from_start"] = False
        flow.label["conditions"] = conv.conditions()

    @staticmethod
    def _visible_after(conv: EmuTcp, cut: float) -> bool:
        """At least a few payload packets each way remain after ``cut``."""
        if conv._spilled:                                           # long transfers: plenty remains
            return cut < conv.end_ts - 1.0
        sides = {}
        for t, _, packet, _ in conv._packets:
            if t < cut:
                continue
            ihl = (packet[0] & 15) * 4 if packet[0] >> 4 == 4 else 40
            off = (packet[ihl + 12] >> 4) * 4
            if len(packet) > ihl + off:
                key = packet[ihl: ihl + 2]
                sides[key] = sides.get(key, 0) + 1
        return len(sides) == 2 and sum(sides.values()) >= 4

    # -- background ---------------------------------------------------------------------------------

    def _background(self, span: float) -> None:
        rng, sc, site = self.rng, self.sc, self.site
        vc_host = SiteHost(f"vcenter.{site.hosts[0].name.split('.', 1)[1]}", site.vcenter.ip, "esxi8",
                           cert_name="vcenter.corp.example")
        v4_clients = [c for c in (*site.admins, site.vcenter, site.backup, site.automation) if not c.ipv6]
        extras = rng.randint(1, max(2, len(sc.flows) // 2))
        for _ in range(extras):
            at = sc.at(rng.uniform(0, span))
            what = _pick(rng, {"dns": 3, "https": 3, "ssh": 1, "heartbeat": 1})
            client = rng.choice(v4_clients)
            server = rng.choice([vc_host, *site.hosts])
            if not self._involves_local(client, server):
                if self.spec.kind == "host" and self.spec.local[0] in {c.ip for c in v4_clients}:
                    client = next(c for c in v4_clients if c.ip == self.spec.local[0])
                else:
                    server = next((h for h in site.hosts if h.ip in self.spec.local), server)
                    if not self._involves_local(client, server):
                        continue
            sc.conditions = self._conditions(self._vantage_for(client, server.ip))
            sc.sni = None
            if what == "dns":
                if self.spec.kind == "host":
                    continue
                S.dns_lookup(sc, client, site.resolver, server.name, server.ip, at)
            elif what == "https":
                S.https_session(sc, client, server, at, requests=rng.randint(1, 8), tls=rng.choice(("1.2", "1.3")))
            elif what == "ssh" and server is not vc_host:
                S.ssh_session(sc, client, server, at, commands=rng.randint(1, 6))
            elif what == "heartbeat" and self.spec.kind != "host":
                host = rng.choice(site.hosts)
                S.heartbeats(sc, host, site.vcenter.ip, at, count=max(2, int(span / 10)))


def capture_name(seed: int, index: int, prefix: str = "lab") -> str:
    """File stem of capture ``index`` of dataset ``seed``."""
    return f"{prefix}-{seed}-{index:04d}"


def build_capture(seed: int, index: int, opts: Options | None = None, spill_dir: str | None = None,
                  keylog: str | None = None) -> tuple[DatasetScenario, CaptureSpec]:
    """Draw and build capture ``index`` of dataset ``seed`` (not yet written)."""
    opts = opts or Options()
    builder = _Builder(seed, index, opts, spill_dir, keylog)
    sc = builder.build()
    sc.description = (f"dataset seed {seed}, capture {index}: {builder.era} site, {builder.spec.profile} conditions "
                      f"({builder.spec.kind}, {builder.spec.network}), {len(sc.flows)} connections")
    return sc, builder.spec


def write_capture(out_dir: str | os.PathLike, seed: int, index: int, opts: Options | None = None) -> dict:
    """Build and write one capture with its labels; returns a manifest row."""
    opts = opts or Options()
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    stem = capture_name(seed, index, opts.prefix)
    keylog = os.path.join(out_dir, stem + ".keys") if opts.keys else None
    if keylog and os.path.exists(keylog):
        os.remove(keylog)
    sc, spec = build_capture(seed, index, opts, keylog=keylog)      # spill files go to TMPDIR
    filename = f"{stem}.{spec.extension}"
    path = os.path.join(out_dir, filename)
    labels = sc.write(path, spec.fmt, spec.link, offload=spec.offload, local=spec.local,
                      capture_info=spec.info(), dataset_info={"schema": DATASET_SCHEMA, "seed": seed, "index": index},
                      ts_resolution=spec.ts_resolution, byteorder=spec.byteorder, compress=spec.compress,
                      snaplen=spec.snaplen,
                      link_options={"local": spec.local} if spec.link in ("sll", "sll2") else None)
    authd = [c for c in labels["connections"] if c["service"] == "authd"]
    return {"file": filename, "labels": stem + ".labels.json",
            "packets": labels["capture"]["packets"], "bytes": os.path.getsize(path),
            "connections": len(labels["connections"]), "authd_sessions": len(authd),
            "midstream": sum(1 for c in authd if c["midstream"]),
            "features": {f: sum(1 for c in authd if c["feature"] == f) for f in S.FEATURES},
            "conditions": spec.info()}


def _job(args) -> dict:
    out_dir, seed, index, opts = args
    return write_capture(out_dir, seed, index, opts)


def _worker_init() -> None:
    """Give each worker process its own folder for the PEM files ``ssl`` loads (``tlsbio``), so
    two processes never write the same file at once; it is removed when the worker exits."""
    from . import tlsbio
    folder = tempfile.mkdtemp(prefix="dissect902-lab-")
    tlsbio._PEM_DIR[:] = [folder]
    multiprocessing.util.Finalize(None, shutil.rmtree, args=(folder, True), exitpriority=10)


def pool_context():
    """``fork`` where available (workers inherit loaded modules and cached certificates; works
    from notebooks and ``python -``), else the platform default."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def generate(out_dir: str | os.PathLike, n_captures: int, seed: int, *, sessions_per_capture=(6, 12),
             conditions: str = "varied", midstream_share: float = 0.2, min_bytes: int = 4096,
             max_bytes: int = 64 << 20, max_console_s: float = 10800.0, background: bool = True, prefix: str = "lab",
             keys: bool = False, workers: int = 1, first_index: int = 0,
             progress: Callable[[int, int, dict], None] | None = None) -> dict:
    """Write ``n_captures`` labelled captures to ``out_dir`` and a ``dataset.json`` manifest.

    Deterministic per ``(seed, capture index)``; ``workers`` > 1 builds captures in parallel
    processes (same output). ``sessions_per_capture`` is an int or a ``(low, high)`` range of
    authd sessions per capture (brute force across connections adds a few). ``conditions`` is
    ``"varied"`` or one of ``CAPTURE_PROFILES``. ``midstream_share`` is the probability that an
    eligible session (MKS, NFC, SOAP, VMXARGS, multi-attempt brute force) is captured from
    inside. ``max_bytes`` bounds NFC transfer sizes (generation is streamed: memory stays
    bounded, time grows with bytes). Returns the manifest.
    """
    opts = Options(sessions_per_capture=sessions_per_capture, conditions=conditions, midstream_share=midstream_share,
                   min_bytes=min_bytes, max_bytes=max_bytes, max_console_s=max_console_s, background=background,
                   keys=keys, prefix=prefix)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    jobs = [(out_dir, seed, first_index + k, opts) for k in range(n_captures)]
    rows: list[dict | None] = [None] * len(jobs)
    if workers > 1 and len(jobs) > 1:
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(),
                                                    initializer=_worker_init) as pool:
            futures = {pool.submit(_job, job): k for k, job in enumerate(jobs)}
            done = 0
            for future in concurrent.futures.as_completed(futures):
                k = futures[future]
                rows[k] = future.result()
                done += 1
                if progress:
                    progress(done, len(jobs), rows[k])
    else:
        for k, job in enumerate(jobs):
            rows[k] = _job(job)
            if progress:
                progress(k + 1, len(jobs), rows[k])
    manifest = {
        "schema": DATASET_SCHEMA,
        "seed": seed,
        "options": {**asdict(opts), "sessions_per_capture": list(opts.sessions_per_capture)},
        "captures": rows,
        "totals": {
            "captures": len(rows),
            "packets": sum(r["packets"] for r in rows),
            "bytes": sum(r["bytes"] for r in rows),
            "authd_sessions": sum(r["authd_sessions"] for r in rows),
            "midstream": sum(r["midstream"] for r in rows),
            "features": {f: sum(r["features"][f] for r in rows) for f in S.FEATURES},
        },
    }
    with open(os.path.join(out_dir, "dataset.json"), "w") as handle:
        json.dump(manifest, handle, indent=1)
        handle.write("\n")
    return manifest


# -- single named scenarios (the samples' builders), for ``dissect902 lab scenario`` ---------------

def scenario_names() -> list[str]:
    """Names of the bundled sample builders."""
    from . import samples
    return [s.build.__name__ for s in samples.SAMPLES]


def write_scenario(name: str, out_dir: str | os.PathLike, seed: int | None = None, keys: bool = False) -> dict:
    """Write one bundled sample scenario by builder name (``esxi8_console`` …); returns its labels."""
    from . import samples
    for sample in samples.SAMPLES:
        if sample.build.__name__ == name or sample.stem == name:
            os.makedirs(out_dir, exist_ok=True)
            return samples.write_sample(sample, out_dir, seed, keys=keys)
    raise KeyError(f"unknown scenario {name!r}; choose from {scenario_names()}")
