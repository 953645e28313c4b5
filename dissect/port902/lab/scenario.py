"""A scenario: the machines, the network conditions, the flows, and the capture plus labels they make.

Why: tests and benchmarks need captures whose ground truth is known *by construction*. A
``Scenario`` collects TCP/UDP flows (``tcp.TcpConversation``, ``udp.UdpFlow``), numbers them
(``C01``…), and on ``write`` produces the capture (``pcapwriter``) and its labels document
(``labels``: schema ``LABELS_SCHEMA``) that maps every connection to its feature, persona,
transport, expected facts and the frame numbers of its key moments.

Growth: every connection draws randomness from a generator derived from the scenario seed and
the connection id (``rng_for``) — adding a connection never changes the others. ``Host`` carries
a persona (``personas``: port, banner, TLS versions, TTL; protocol.md §2) and a deterministic
certificate (``certs``, §8); ``Client`` an OS whose stack decides TTL and TCP timestamps;
``Conditions`` the network between them. The connection builders live in ``scenarios``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
from dataclasses import dataclass, field, replace

from .certs import HostCert, host_cert
from .channel import Channel
from .labels import EXPECTED_DEFAULTS, FEATURES, LABELS_SCHEMA, OUTCOMES, TRANSPORTS
from .pace import Pace
from .pcapwriter import CaptureWriter
from .personas import PERSONAS, Persona
from .tcp import TcpConversation
from .tlsbio import TlsPair
from .udp import UdpFlow

EPOCH = 1715677200.0            # 2024-05-14 09:00:00 UTC, start of every sample


@dataclass(frozen=True)
class Host:
    """A server: name (certificate CN), IPv4 and optional IPv6 address, persona per port."""

    name: str
    ip: str
    persona: str = "esxi8"
    ip6: str | None = None

    @property
    def profile(self) -> Persona:
        """The persona record."""
        return PERSONAS[self.persona]

    @property
    def cert(self) -> HostCert:
        """The host certificate (deterministic per name)."""
        return host_cert(self.name)

    def as_persona(self, key: str) -> "Host":
        """The same machine answering as another persona (e.g. classic ESX's 903 listener)."""
        return replace(self, persona=key)

    def address(self, ipv6: bool) -> str:
        """The address a client of the given IP version connects to."""
        if ipv6 and not self.ip6:
            raise ValueError(f"{self.name} has no IPv6 address")
        return self.ip6 if ipv6 else self.ip


CLIENT_STACKS = {"windows": (128, False), "linux": (64, True)}     # os -> (initial TTL, TCP timestamps)


@dataclass(frozen=True)
class Client:
    """A client machine; its ``os`` decides the IP TTL and whether TCP timestamps are used."""

    name: str
    ip: str
    os: str = "windows"

    @property
    def ttl(self) -> int:
        """Initial IP TTL / hop limit of the client's stack."""
        return CLIENT_STACKS[self.os][0]

    @property
    def timestamps(self) -> bool:
        """Whether the stack negotiates TCP timestamps (Linux yes, Windows no)."""
        return CLIENT_STACKS[self.os][1]

    @property
    def ipv6(self) -> bool:
        """Whether the client speaks IPv6."""
        return ipaddress.ip_address(self.ip).version == 6


@dataclass(frozen=True)
class Conditions:
    """Network conditions for a connection (see ``tcp.TcpConversation``)."""

    rtt: float = 0.0006
    mss: int | None = None
    loss_rate: float = 0.0
    vantage: float = 0.9            # capture near the servers (a span port at the ESXi uplinks)
    bandwidth: float = 125e6
    loss: tuple = ()
    reorder: tuple = ()
    capture_from: float | None = None


@dataclass
class Flow:
    """One connection of a scenario and its label."""

    uid: str
    conn: TcpConversation | UdpFlow
    label: dict = field(default_factory=dict)


class Scenario:
    """A set of labelled flows that can be written as one capture."""

    def __init__(self, name: str, seed: int, description: str = "", start: float = EPOCH,
                 conditions: Conditions | None = None, keylog: str | os.PathLike | None = None):
        self.name, self.seed, self.description, self.start = name, seed, description, start
        self.conditions = conditions or Conditions()
        self.keylog = keylog
        self.flows: list[Flow] = []
        self._ports: dict[str, int] = {}

    def at(self, offset: float) -> float:
        """Absolute time ``offset`` seconds after the scenario start."""
        return self.start + offset

    def rng_for(self, uid: str) -> random.Random:
        """The generator of connection ``uid`` (independent of other connections)."""
        return random.Random(f"{self.seed}/{self.name}/{uid}")

    def _next_uid(self) -> str:
        return f"C{len(self.flows) + 1:02d}"

    def ephemeral_port(self, client: Client) -> int:
        """The client's next source port (sequential from a seeded start, like Windows)."""
        if client.name not in self._ports:
            self._ports[client.name] = random.Random(f"{self.seed}/port/{client.name}").randrange(49152, 60000)
        self._ports[client.name] += 1
        return self._ports[client.name]

    def tcp(self, client: Client, server_ip: str, port: int, at: float, conditions: Conditions | None = None,
            server_ttl: int = 64) -> tuple[Flow, Channel, Pace, random.Random]:
        """A new TCP connection flow with its channel, pace and generator."""
        uid = self._next_uid()
        rng = self.rng_for(uid)
        c = conditions or self.conditions
        conv = TcpConversation(
            client.ip, self.ephemeral_port(client), server_ip, port, at, rtt=c.rtt, mss=c.mss,
            vantage=c.vantage, bandwidth=c.bandwidth, client_ttl=client.ttl, server_ttl=server_ttl,
            timestamps=client.timestamps, loss=c.loss, loss_rate=c.loss_rate, reorder=c.reorder,
            capture_from=c.capture_from, rng=random.Random(rng.getrandbits(64)),
        )
        flow = Flow(uid, conv)
        self.flows.append(flow)
        pace = Pace(rng)
        return flow, Channel(conv, pace), pace, rng

    def authd_tcp(self, client: Client, host: Host, at: float,
                  conditions: Conditions | None = None) -> tuple[Flow, Channel, Pace, random.Random]:
        """A new TCP connection from ``client`` to ``host``'s authd port (address family of the client)."""
        return self.tcp(client, host.address(client.ipv6), host.profile.port, at, conditions, host.profile.ttl)

    def udp(self, client: Client, server_ip: str, port: int, at: float, client_port: int | None = None) -> Flow:
        """A new UDP flow."""
        uid = self._next_uid()
        c = self.conditions
        flow = Flow(uid, UdpFlow(client.ip, client_port or self.ephemeral_port(client), server_ip, port, at,
                                 rtt=c.rtt, vantage=c.vantage, client_ttl=client.ttl, rng=self.rng_for(uid)))
        self.flows.append(flow)
        return flow

    def tls(self, host: Host, version: str, sni: str | None = None) -> TlsPair:
        """A TLS pair for ``host``'s certificate, logging keys if the scenario keeps a key log."""
        return TlsPair(host.cert, version, sni=sni, keylog=self.keylog)

    def label(self, flow: Flow, *, feature: str, service: str, transport: str, persona: str | None = None,
              expected: dict | None = None, notes: str = "", related: dict | None = None) -> dict:
        """Attach the label of ``flow`` (frames are filled in by ``write``)."""
        if feature not in FEATURES or transport not in TRANSPORTS:
            raise ValueError(f"bad feature/transport {feature!r}/{transport!r}")
        unknown = set(expected or {}) - set(EXPECTED_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown expected keys {sorted(unknown)}")
        conn = flow.conn
        is_tcp = isinstance(conn, TcpConversation)
        sent = conn.payload_bytes() if is_tcp else (conn.payload["client"], conn.payload["server"])
        flow.label = {
            "uid": flow.uid,
            "proto": "tcp" if is_tcp else "udp",
            "client": {"ip": conn.client_ip, "port": conn.client_port},
            "server": {"ip": conn.server_ip, "port": conn.server_port},
            "start_ts": round(conn.start_ts, 6),
            "captured_from_start": not (is_tcp and conn.capture_from is not None and conn.capture_from > conn.start_ts),
            "feature": feature,
            "service": service,
            "persona": persona,
            "transport": transport,
            "outcome": OUTCOMES[conn.state if is_tcp else "udp"],
            "payload_bytes": {"c2s": sent[0], "s2c": sent[1]},
            "expected": {**EXPECTED_DEFAULTS, "users": [], **(expected or {})},
            "conditions": conn.conditions() if is_tcp else None,
            "related": related or {},
            "notes": notes,
        }
        return flow.label

    # -- output --------------------------------------------------------------------------------

    def records(self) -> list[tuple[float, int, int, bytes, str | None]]:
        """All packets, time-ordered: ``(ts, flow index, packet index, ip_packet, mark)``."""
        rows = [(t, i, j, packet, mark)
                for i, flow in enumerate(self.flows)
                for j, (t, packet, mark) in enumerate(flow.conn.records())]
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        return rows

    def write(self, path: str | os.PathLike, fmt: str = "pcap", link: str = "ethernet",
              labels_path: str | os.PathLike | None = None, **writer_options) -> dict:
        """Write the capture and its labels (``<stem>.labels.json`` beside it); returns the labels."""
        written = self._stream(path, fmt, link, self.records(), writer_options)
        labels = self._labels(path, fmt, link, writer_options, written, self._connections(written))
        self._save_labels(labels, path, labels_path)
        return labels

    # -- the parts of ``write`` that subclasses reuse ---------------------------------------------

    def _stream(self, path, fmt: str, link: str, rows, writer_options: dict) -> dict:
        """Write time-ordered ``(t, flow index, _, packet, mark)`` rows; return what labels need."""
        frames = [{"first": None, "last": None, "count": 0} for _ in self.flows]
        events: list[list] = [[] for _ in self.flows]
        last_ts: list[float | None] = [None for _ in self.flows]
        first_ts = end_ts = None
        number = 0
        with CaptureWriter(path, fmt, link, **writer_options) as writer:
            for t, i, _, packet, mark in rows:
                number += 1
                writer.write(t, packet)
                info = frames[i]
                info["first"] = info["first"] or number
                info["last"] = number
                info["count"] += 1
                last_ts[i] = t
                first_ts = t if first_ts is None else first_ts
                end_ts = t
                if mark:
                    events[i].append({"what": mark, "frame": number, "ts": round(t, 6)})
        return {"packets": number, "first_ts": first_ts, "end_ts": end_ts, "frames": frames, "events": events,
                "last_ts": last_ts}

    def _connections(self, written: dict) -> list[dict]:
        connections = []
        for i, flow in enumerate(self.flows):
            label = dict(flow.label)
            last = written["last_ts"][i]
            label["end_ts"] = None if last is None else round(last, 6)
            label["frames"] = written["frames"][i]
            label["events"] = written["events"][i]
            connections.append(label)
        return connections

    def _labels(self, path, fmt: str, link: str, writer_options: dict, written: dict, connections: list[dict],
                capture_extra: dict | None = None, extra: dict | None = None) -> dict:
        first, end = written["first_ts"], written["end_ts"]
        capture = {
            "file": os.path.basename(os.fspath(path)),
            "format": fmt,
            "link": link,
            "ts_resolution": writer_options.get("ts_resolution", "us"),
            "packets": written["packets"],
            "start_ts": None if first is None else round(first, 6),
            "end_ts": None if end is None else round(end, 6),
            **(capture_extra or {}),
        }
        return {"schema": LABELS_SCHEMA, "scenario": self.name, "seed": self.seed, "description": self.description,
                "capture": capture, **(extra or {}), "connections": connections}

    @staticmethod
    def _save_labels(labels: dict, path, labels_path=None) -> None:
        if labels_path is None:
            base = os.fspath(path)
            labels_path = base.rsplit(".", 2 if base.endswith(".gz") else 1)[0] + ".labels.json"
        with open(labels_path, "w") as handle:
            json.dump(labels, handle, indent=1)
            handle.write("\n")
