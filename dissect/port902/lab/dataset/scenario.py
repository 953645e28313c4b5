"""The scenario of a dataset capture: emulated TCP, drawn TLS suites, streamed output with offload.

Job: ``DatasetScenario`` is a ``scenario.Scenario`` whose TCP connections are ``netem.EmuTcp``
(jitter, packets spilled to disk for long transfers), whose TLS pairs draw a cipher suite per
connection (``options.CIPHERS``) and the capture's SNI choice, whose authd port may be moved
(protocol.md §1: ``authd.port`` is configurable), and whose ``write`` merges the flows' packets
by time, turns a host capture's segments into offload super-frames (``offload.coalesce``) and
adds the dataset's label fields (``midstream``, ``traffic``, ``capture.conditions``, ``dataset``).
"""

from __future__ import annotations

import heapq
import ipaddress
import os
import random
from typing import Iterator

from ..channel import Channel
from ..netem import EmuTcp
from ..offload import coalesce
from ..pace import Pace
from ..scenario import EPOCH, Client, Conditions, Flow, Host, Scenario
from ..tcp import TcpConversation
from ..tlsbio import TlsPair
from .options import CIPHERS, pick

class DatasetScenario(Scenario):
    """A ``Scenario`` whose TCP connections are ``netem.EmuTcp`` (jitter, bounded memory), whose
    TLS pairs draw cipher suites and SNI per connection, and whose ``write`` streams packets
    (heap merge of the flows), applies offload super-frames and adds the dataset's label fields."""

    def __init__(self, name: str, seed: int, description: str = "", start: float = EPOCH,
                 conditions: Conditions | None = None, keylog: str | None = None, spill_dir: str | None = None):
        super().__init__(name, seed, description, start, conditions, keylog)
        self.spill_dir = spill_dir
        self.sni: str | None = None                 # SNI for the connections being built
        self.port_override: dict[tuple[str, str], int] = {}     # (host ip, persona) -> authd port
        self.pairs: dict[str, list[TlsPair]] = {}   # uid -> TLS pairs in order

    def tcp(self, client: Client, server_ip: str, port: int, at: float, conditions: Conditions | None = None,
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

    def authd_tcp(self, client: Client, host: Host, at: float, conditions: Conditions | None = None):
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
            ciphers = first.ciphers if same else pick(rng, CIPHERS[version])
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
