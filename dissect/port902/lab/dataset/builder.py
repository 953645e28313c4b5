"""Drawing and building one dataset capture: its container, its conditions, its sessions.

Job: ``CaptureBuilder`` draws, from a generator seeded by ``(seed, capture index)``, the site
(``site.draw_site``), the container and capture point (``CaptureSpec``: pcap/pcapng, µs/ns,
byte order, gzip, link type, span or host capture with TSO/GRO, snaplen), per-connection network
conditions, and the sessions: features cycle through MKS, NFC, SOAP, VMXARGS, NONE, then follow
weights; each goes to a server whose persona can serve it, with a traffic plan (``console``,
``sessions.NfcPlan``, ``soapsession``) and, for a share of them, a capture that starts inside
the session (after TLS #1 began, mostly inside its feature phase). Dialogues follow protocol.md
§3-§7 through the builders of ``scenarios`` and ``sessions``; background traffic §9.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from .. import console, sessions, soapsession
from .. import scenarios as S
from ..netem import EmuTcp, NetConditions
from ..scenario import EPOCH, Client, Flow, Host
from .options import (ALT_PORTS, CAPTURE_PROFILES, CONDITIONS, FEATURE_CYCLE, FEATURE_WEIGHTS, MSS_CHOICES,
                      NFC_STYLES, NONE_KINDS, SNAPLENS, SPAN_LINKS, SUPPORT, Options, log_uniform, pick)
from .scenario import DatasetScenario
from .site import ERAS, SiteHost, draw_site


def capture_name(seed: int, index: int, prefix: str = "lab") -> str:
    """File stem of capture ``index`` of dataset ``seed``."""
    return f"{prefix}-{seed}-{index:04d}"


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


class CaptureBuilder:
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
            profile = pick(rng, {k: v[2] for k, v in CAPTURE_PROFILES.items() if v[2] > 0})
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
                spec.link = "ethernet" if windows else pick(rng, {"sll2": 3, "sll": 1, "ethernet": 2})
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
            spec.link = pick(rng, SPAN_LINKS)
            if kind == "snaplen":
                spec.snaplen = pick(rng, SNAPLENS)
        return spec

    def _conditions(self, vantage: float | None = None) -> NetConditions:
        rng = self.rng
        p = CONDITIONS[self.spec.network]
        rtt = log_uniform(rng, *p["rtt"])
        jitter = rtt * rng.uniform(*p["jitter"])
        loss = rng.uniform(*p["loss"]) if p["loss"][1] > 0 and rng.random() < 0.6 else 0.0
        mss = pick(rng, MSS_CHOICES)
        if mss > 1500 and self.spec.network not in ("lan", "clean"):
            mss = 1460
        if vantage is None:
            if self.spec.kind == "host":
                vantage = 0.0
            else:
                vantage = rng.uniform(0.55, 0.98) if rng.random() < 0.75 else rng.uniform(0.02, 0.45)
        return NetConditions(rtt=rtt, mss=mss, loss_rate=loss, vantage=vantage,
                             bandwidth=log_uniform(rng, *p["bw"]), jitter=jitter)

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
                feature = pick(rng, FEATURE_WEIGHTS)
            self._session(feature, sc.at(at))
        if opts.background:
            self._background(span)
        return sc

    def _session(self, feature: str, at: float) -> None:
        rng, sc = self.rng, self.sc
        kind = pick(rng, NONE_KINDS) if feature == "NONE" else None
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
                S.classic_handoff(sc, client, host, at, log_uniform(rng, 3, 240), tls=tls1 or "1.0",
                                  vm=sessions._vm_name(rng))
            else:
                plan = console.draw_plan(rng)
                if plan.seconds > self.opts.max_console_s:
                    plan = console.ConsolePlan(**{**asdict(plan), "seconds": self.opts.max_console_s})
                sessions.mks_session(sc, client, host, at, plan, tls1=tls1, tls2=tls2,
                                     end=pick(rng, {"notify": 5, "fin": 2, "rst": 1, "server": 0.5, "open": 0.7}))
        elif feature == "NFC":
            phase = "handoff"
            sessions.nfc_session(sc, client, host, at, self._nfc_plan(host), tls1=tls1, tls2=tls2,
                                 end=pick(rng, {"fin": 6, "notify": 1, "rst": 1}))
        elif feature == "SOAP":
            phase = "soap_RetrieveServiceContent"
            sessions.soap_session(sc, client, host, at, soapsession.draw_plan(rng), tls=tls1,
                                  user=rng.choice(("vpxuser", "root", "svc-monitor", "administrator@vsphere.local")),
                                  ticket_login=rng.random() < 0.3, end=pick(rng, {"notify": 4, "fin": 2, "rst": 1}))
        elif feature == "VMXARGS":
            phase = "connect_argv"
            sessions.vmxargs_session(sc, client, host, at, tls=tls1, options=rng.randint(1, 6),
                                     linger=log_uniform(rng, 0.02, 3.0),
                                     end=pick(rng, {"fin": 4, "rst": 1, "notify": 1}))
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
        style = pick(rng, NFC_STYLES[host.persona])
        write = rng.random() < 0.4
        size = int(log_uniform(rng, opts.min_bytes, opts.max_bytes))
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
            sessions.tls_only(sc, client, host, at, tls=tls1, end=pick(rng, {"notify": 3, "fin": 2, "rst": 1}))
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
            what = pick(rng, {"dns": 3, "https": 3, "ssh": 1, "heartbeat": 1})
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
