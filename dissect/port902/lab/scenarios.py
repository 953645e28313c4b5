"""Labelled scenarios: connections built from the lab's layers, with the facts a dissector must find.

Why: tests and benchmarks need captures whose ground truth is known *by construction*. A
``Scenario`` collects TCP/UDP flows, numbers them (``C01``…), and on ``write`` produces the
capture and a labels document (schema ``LABELS_SCHEMA``, described in ``label_schema()``) that
maps every connection to its feature, persona, transport, expected facts and the frame numbers
of its key moments.

Growth: every builder takes the scenario (seed, default network conditions, key log) plus
explicit parameters, and draws randomness from a per-connection generator derived from the
seed and the connection id — adding a connection never changes the others. A larger lab can
loop over personas, traffic models and ``Conditions`` and get deterministic labels per seed.

Models, not observations: ``soap_over_902`` (HTTP/1.1 SOAP inside TLS #1 after a login) and
``vmxargs`` (``CONNECT_ARGV``) have no public wire definition (protocol.md §6); their labels
carry ``"model": true``. The 903 leg of ``classic_handoff`` is likewise a model (§7).
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
from dataclasses import dataclass, field, replace
from typing import Iterable

from . import authd, background, nfc, rfb, soap
from .certs import HostCert, host_cert
from .channel import CLIENT, SERVER, Channel, Step
from .pace import Pace
from .pcapwriter import CaptureWriter
from .personas import PERSONAS, Persona
from .tcp import TcpConversation
from .tlsbio import TlsPair
from .udp import UdpFlow

LABELS_SCHEMA = "dissect902-lab-labels/1"
EPOCH = 1715677200.0            # 2024-05-14 09:00:00 UTC, start of every sample
FEATURES = ("MKS", "NFC", "SOAP", "VMXARGS", "NONE")
TRANSPORTS = ("tls", "tls+tls2", "tls+clear", "plain", "ssh", "udp", "none")
OUTCOMES = {"closed": "closed", "reset": "reset", "no_answer": "no_answer", "refused": "refused",
            "established": "open", "udp": "udp"}

# every connection's "expected" block has exactly these keys: name -> (default, meaning)
EXPECTED_FIELDS = {
    "banner": (None, "greeting line without CRLF"),
    "banner_id": (None, "B1..B10 (protocol.md §2.1)"),
    "ssl_required": (None, "the banner says 'SSL Required'"),
    "tls_handshakes": (0, "0, 1 (TLS #1) or 2 (TLS #1 and TLS #2 on the same stream)"),
    "tls_version": (None, "TLS #1 version as Python names it: TLSv1, TLSv1.2, TLSv1.3"),
    "tls_cipher": (None, "TLS #1 cipher suite, OpenSSL name"),
    "tls2_version": (None, "TLS #2 version"),
    "tls2_cipher": (None, "TLS #2 cipher suite"),
    "sni": (None, "server name in the ClientHello, if any"),
    "cert_sha1": (None, "SHA-1 thumbprint of the server certificate, vSphere form AA:BB:…"),
    "cert_sha256": (None, "SHA-256 thumbprint of the server certificate"),
    "login": (None, "ok | failed | unanswered | null (no login)"),
    "login_kind": (None, "ticket | password | session"),
    "login_attempts": (0, "USER/PASS pairs sent"),
    "login_failures": (0, "attempts answered 530 (or not answered)"),
    "users": ([], "USER arguments in order"),
    "command": (None, "handoff command: CONNECT | PROXY | CONNECT_ARGV"),
    "target": (None, "vmx path, or ha-nfc / ha-nfcssl"),
    "continues_in_clear": (False, "cleartext application bytes follow TLS #1"),
    "nfc_mode": (None, "nbd | nbdssl | nfclib | nfclib-ssl"),
    "nfc_bytes": (None, "disk bytes read or file bytes uploaded"),
    "app": (None, "what the flow carries: authd, https, dns, ssh, vpxa-heartbeat"),
    "model": (False, "the feature is the lab's model, not an observed wire format"),
}
EXPECTED_DEFAULTS = {name: default for name, (default, _) in EXPECTED_FIELDS.items()}


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


def label_schema() -> dict:
    """A human-readable description of the labels document (kept next to the code it describes)."""
    return {
        "schema": LABELS_SCHEMA,
        "scenario": "builder name", "seed": "int", "description": "what the capture shows",
        "capture": {"file": "str", "format": "pcap|pcapng", "link": "links.LINKTYPES key",
                    "ts_resolution": "us|ns", "packets": "int", "start_ts": "float", "end_ts": "float"},
        "connections[]": {
            "uid": "C01…, stable per builder call order",
            "proto": "tcp|udp",
            "client/server": {"ip": "str", "port": "int"},
            "start_ts/end_ts": "first SYN (or datagram), even if before the capture / last packet in the capture",
            "captured_from_start": "false when the capture begins mid-connection: expected facts stay ground "
                                   "truth, but those established before the first captured frame are not visible",
            "feature": "|".join(FEATURES),
            "service": "what listens: authd, https, ssh, dns, vpxa-heartbeat",
            "persona": "personas.PERSONAS key or null",
            "transport": "|".join(TRANSPORTS),
            "outcome": "|".join(sorted(set(OUTCOMES.values()))),
            "payload_bytes": {"c2s": "TCP/UDP payload bytes, retransmissions excluded", "s2c": "…"},
            "expected": {name: meaning for name, (_, meaning) in EXPECTED_FIELDS.items()},
            "conditions": "rtt_s, mss, vantage, loss_rate, capture_from, injected[] (loss/reorder events)",
            "related": "links to other connections, e.g. handoff_from",
            "frames": {"first": "1-based frame number", "last": "int", "count": "int"},
            "events[]": {"what": "mark name", "frame": "int", "ts": "float"},
            "notes": "free text",
        },
    }


# -- building blocks ------------------------------------------------------------------------------

def _greet_and_tls(sc: Scenario, ch: Channel, pace: Pace, host: Host, tls: str | None, sni: str | None) -> dict:
    """TCP open, banner, TLS #1 if the persona requires it; returns the expected-facts base."""
    profile = host.profile
    ch.conv.open(mark="syn")
    ch.send(SERVER, authd.banner(profile.banner_id), pace("reply"), "banner")
    facts = {"banner": profile.banner, "banner_id": profile.banner_id, "ssl_required": profile.ssl_required,
             "app": "authd"}
    if profile.ssl_required:
        pair = sc.tls(host, tls or profile.tls_versions[0], sni)
        ch.start_tls(pair, "tls1")
        facts.update(tls_handshakes=1, tls_version=pair.version, tls_cipher=pair.cipher, sni=sni,
                     cert_sha1=host.cert.sha1, cert_sha256=host.cert.sha256)
    return facts


def _second_tls(sc: Scenario, ch: Channel, host: Host, version: str, facts: dict) -> None:
    ch.abandon_tls()
    pair = sc.tls(host, version)
    ch.start_tls(pair, "tls2")
    facts.update(tls_handshakes=2, tls2_version=pair.version, tls2_cipher=pair.cipher)


def mks_console(sc: Scenario, client: Client, host: Host, at: float, seconds: float, *, tls1: str = "1.2",
                tls2: str | None = None, vm: str = "vm01", sni: str | None = None,
                conditions: Conditions | None = None, end: str = "close") -> Flow:
    """An MKS console (protocol.md §4.2): what each phase is for.

    SYN/SYN-ACK/ACK · ``banner`` (plaintext, ssl required) · TLS #1 (``tls1_client_hello``,
    ``tls1_server_hello``: certificate readable in TLS 1.2) · ticket login ``user``/``pass``/
    ``login_ok`` (331/230 echo the ticket) · ``thumbprint`` (16-char token → ``200 <sha1>``) ·
    ``connect`` (``CONNECT <vmx> mks``) · ``handoff`` (``200 Connect <vmx>``, last TLS #1 record,
    no close_notify) · TLS #2 on the raw stream (``tls2_client_hello``) · ``mks_token`` (16 bytes,
    first TLS #2 record) · ``rfb_server_init`` · ``rfb_set_encodings`` · ``rfb_first_update``
    (full screen) · ``seconds`` of console use · close_notify + FIN (``fin``), or ``end="open"``
    leaves the session running at the end of the capture.
    """
    flow, ch, pace, rng = sc.authd_tcp(client, host, at, conditions)
    facts = _greet_and_tls(sc, ch, pace, host, tls1, sni)
    ticket, token = authd.ticket(rng), authd.client_token(rng)
    vmx = authd.datastore_path(rng, vm)
    ch.play(authd.mks_control(pace, ticket, token, host.cert.sha1, vmx))
    _second_tls(sc, ch, host, tls2 or tls1, facts)
    screen = rfb.Screen(rng, name=vm)
    ch.play(rfb.mks_opening(screen, pace, token))
    ch.play(rfb.console_use(screen, pace, rng, seconds))
    if end == "close":
        ch.close(CLIENT, pace.between(0.3, 1.2), notify=True)
    facts.update(login="ok", login_kind="ticket", login_attempts=1, users=[ticket], command="CONNECT", target=vmx)
    sc.label(flow, feature="MKS", service="authd", transport="tls+tls2", persona=host.persona, expected=facts,
             notes=f"console of {vm}, {screen.width}x{screen.height}; RFB inside TLS #2 after the 16-byte token")
    return flow


def nfc_vddk(sc: Scenario, client: Client, host: Host, at: float, mode: str, size: int, *, tls1: str = "1.2",
             tls2: str | None = None, vm: str = "vm-db01", conditions: Conditions | None = None) -> Flow:
    """A VDDK disk read (protocol.md §5.3 a, §5.5); ``mode`` is ``"nbd"`` or ``"nbdssl"``.

    Phases: handshake · ``banner`` · TLS #1 · ``session`` (SESSION + BANNER, one flight, no
    reply) · banner re-sent inside TLS · ``thumbprint`` (THUMBPRINT_SHA2 PlainText on SHA256
    servers) · ``proxy`` (``PROXY vpxa-nfc[ssl]``) · ``handoff`` (``200 Connect ha-nfc[ssl]``) ·
    nbd: cleartext from ``nfc_first_message`` on | nbdssl: TLS #2 (``tls2_client_hello``) first ·
    classic 264-byte handshake · AIO ``aio_open_session``, ``aio_open_file``, ``aio_first_read``
    (reads of 256 KiB in 64 KiB fragments) … ``aio_close_session`` · ``nfc_session_complete`` ·
    FIN from the client.
    """
    if mode not in ("nbd", "nbdssl"):
        raise ValueError("mode must be 'nbd' or 'nbdssl'")
    flow, ch, pace, rng = sc.authd_tcp(client, host, at, conditions)
    facts = _greet_and_tls(sc, ch, pace, host, tls1, None)
    session = authd.ticket(rng)
    thumb = host.cert.sha256 if host.profile.sha256 else host.cert.sha1
    ch.play(authd.nfc_vddk_control(pace, session, host.profile.banner_id, thumb, ssl=mode == "nbdssl"))
    if mode == "nbdssl":
        _second_tls(sc, ch, host, tls2 or tls1, facts)
    else:
        ch.abandon_tls()
    disk = authd.datastore_path(rng, vm, ".vmdk")
    ch.play(nfc.vddk_handshake(pace) + nfc.vddk_read(pace, rng, disk, size))
    ch.close(CLIENT, pace("program"))
    facts.update(login_kind="session", users=[], command="PROXY",
                 target="ha-nfcssl" if mode == "nbdssl" else "ha-nfc", continues_in_clear=mode == "nbd",
                 nfc_mode=mode, nfc_bytes=size)
    sc.label(flow, feature="NFC", service="authd", persona=host.persona,
             transport="tls+tls2" if mode == "nbdssl" else "tls+clear", expected=facts,
             notes=f"VDDK {mode} read of {size} bytes from {disk}")
    return flow


def nfclib_upload(sc: Scenario, client: Client, host: Host, at: float, size: int, path: str, *, ssl: bool = False,
                  tls1: str = "1.2", conditions: Conditions | None = None) -> Flow:
    """An nfclib/photon-style file upload (protocol.md §5.3 b, §11.5).

    Phases: handshake · ``banner`` · TLS #1 · ``session`` · ``thumbprint`` (``PlainText`` or a
    16-char token with ``ssl``) → ``200 <sha1>`` · ``proxy`` (``PROXY nfc``/``nfcssl``) ·
    ``handoff`` · [TLS #2 with ``ssl``] · ``nfc_first_message`` (CLIENTRANDOM) · ``nfc_file_put``
    · FILE_DATA chunks ≤ 256 KiB · ``nfc_end_of_file`` · ``nfc_putfile_done`` ·
    ``nfc_session_complete`` (echoed) · FIN.
    """
    flow, ch, pace, rng = sc.authd_tcp(client, host, at, conditions)
    facts = _greet_and_tls(sc, ch, pace, host, tls1, None)
    token = authd.client_token(rng) if ssl else "PlainText"
    service = "nfcssl" if ssl else "nfc"
    ch.play(authd.nfclib_control(pace, authd.ticket(rng), service, token, host.cert.sha1))
    if ssl:
        _second_tls(sc, ch, host, tls1, facts)
    else:
        ch.abandon_tls()
    ch.play(nfc.nfclib_upload(pace, rng, path, size, token))
    ch.close(CLIENT, pace("program"))
    facts.update(login_kind="session", command="PROXY", target="ha-nfcssl" if ssl else "ha-nfc",
                 continues_in_clear=not ssl, nfc_mode="nfclib-ssl" if ssl else "nfclib", nfc_bytes=size)
    sc.label(flow, feature="NFC", service="authd", persona=host.persona,
             transport="tls+tls2" if ssl else "tls+clear", expected=facts, notes=f"upload of {size} bytes to {path}")
    return flow


def credential_login(sc: Scenario, client: Client, host: Host, at: float,
                     attempts: Iterable[tuple[str, str, bool]], *, per_connection: bool = False,
                     tls: str | None = None, silent_failures: bool = False,
                     conditions: Conditions | None = None) -> list[Flow]:
    """Password logins (protocol.md §3.5, §11.2): Hydra style on one connection, or Medusa style
    (``per_connection``) with a new connection per attempt.

    Phases per connection: handshake · ``banner`` · TLS #1 (SSL personas only; plaintext on
    legacy and 912 daemons) · per attempt ``user`` → 331, ``pass`` → ``login_ok`` (230) or
    ``login_failed`` (``530 Login incorrect.``; no reply with ``silent_failures``) · FIN from the
    client. Returns the flows in order.
    """
    attempts = list(attempts)
    groups = [[a] for a in attempts] if per_connection else [attempts]
    flows = []
    t = at
    for group in groups:
        flow, ch, pace, rng = sc.authd_tcp(client, host, t, conditions)
        facts = _greet_and_tls(sc, ch, pace, host, tls, None)
        for n, (user, password, ok) in enumerate(group):
            steps = authd.login(pace, user, password, ok, silent_failure=silent_failures)
            if n:
                steps[0] = Step(steps[0].side, steps[0].data, pace("attempt"), steps[0].mark)
            ch.play(steps)
        ch.close(CLIENT, pace.between(0.3, 2.0) if silent_failures and not group[-1][2] else pace("program"))
        fails = sum(1 for _, _, ok in group if not ok)
        outcome = "ok" if any(ok for _, _, ok in group) else ("unanswered" if silent_failures else "failed")
        facts.update(login=outcome, login_kind="password", login_attempts=len(group), login_failures=fails,
                     users=[u for u, _, _ in group])
        transport = "tls" if host.profile.ssl_required else "plain"
        sc.label(flow, feature="NONE", service="authd", persona=host.persona, transport=transport, expected=facts,
                 notes="credential login" + (" (brute force)" if fails > 1 or per_connection else ""))
        flows.append(flow)
        t = ch.conv.ready("client") + pace("attempt")
    return flows


def probe(sc: Scenario, client: Client, host: Host, at: float, text: bytes = b"TEST\r\n\r\n") -> Flow:
    """A scanner's plaintext probe (OpenVAS ``TEST``, protocol.md §2.3, §11.1.2).

    Phases: handshake · ``banner`` · ``probe`` line · SSL-required daemon: the server closes
    (``fin`` from the server) | non-SSL daemon: ``530 Please login with USER and PASS.`` then the
    client closes.
    """
    flow, ch, pace, _ = sc.authd_tcp(client, host, at)
    profile = host.profile
    ch.conv.open(mark="syn")
    ch.send(SERVER, authd.banner(profile.banner_id), pace("reply"), "banner")
    ch.send(CLIENT, text, pace("program"), "probe")
    answer = authd.probe_answer(profile.ssl_required)
    if answer is None:
        ch.close(SERVER, pace("reply"))
    else:
        ch.send(SERVER, answer, pace("reply"), "please_login")
        ch.close(CLIENT, pace("program"))
    sc.label(flow, feature="NONE", service="authd", persona=host.persona, transport="plain",
             expected={"banner": profile.banner, "banner_id": profile.banner_id,
                       "ssl_required": profile.ssl_required, "app": "authd"},
             notes="scanner probe before TLS" + (" (server closes)" if answer is None else ""))
    return flow


def soap_over_902(sc: Scenario, client: Client, host: Host, at: float, *, user: str = "vpxuser",
                  tls: str = "1.2", vms: int = 40) -> Flow:
    """SOAP over 902 — the lab's model (no public wire definition, protocol.md §6).

    Phases: handshake · ``banner`` · TLS #1 · password login (``user``/``pass``/``login_ok``) ·
    ``soap_<Method>`` for RetrieveServiceContent, Login, RetrieveProperties (large response),
    Logout — each an HTTP/1.1 POST /sdk and its 200 response inside TLS #1 · close_notify + FIN.
    """
    flow, ch, pace, rng = sc.authd_tcp(client, host, at)
    facts = _greet_and_tls(sc, ch, pace, host, tls, None)
    ch.play(authd.login(pace, user, "s3cr3t-" + str(rng.randrange(10**6)), ok=True))
    for method, req, resp in soap.session(rng, host.name, user, vms):
        ch.play([Step(CLIENT, req, pace("program"), f"soap_{method}"), Step(SERVER, resp, pace("http"))])
    ch.close(CLIENT, pace("program"), notify=True)
    facts.update(login="ok", login_kind="password", login_attempts=1, users=[user], model=True)
    sc.label(flow, feature="SOAP", service="authd", persona=host.persona, transport="tls", expected=facts,
             notes="MODEL: vim25 SOAP as HTTP/1.1 inside TLS #1 after USER/PASS; not observed on the wire")
    return flow


def vmxargs(sc: Scenario, client: Client, host: Host, at: float, *, vm: str = "vm-app02", tls: str = "1.2") -> Flow:
    """VMXARGS — the lab's model of a ``CONNECT_ARGV`` exchange (protocol.md §3.3, §6).

    Phases: handshake · ``banner`` · TLS #1 · ticket login · ``connect_argv`` (``CONNECT_ARGV
    <vmx> -s …``) · ``vmxargs_reply`` (``200 Connect <vmx>``) · FIN from the client shortly after,
    with no second handshake.
    """
    flow, ch, pace, rng = sc.authd_tcp(client, host, at)
    facts = _greet_and_tls(sc, ch, pace, host, tls, None)
    ticket = authd.ticket(rng)
    vmx = authd.datastore_path(rng, vm)
    ch.play(authd.login(pace, ticket, ticket, ok=True))
    ch.play(authd.vmxargs_control(pace, vmx, ["-s", "vmx.stdio.keep=TRUE", "-s", "mks.enable3d=FALSE"]))
    ch.close(CLIENT, pace.between(0.05, 0.2))
    facts.update(login="ok", login_kind="ticket", login_attempts=1, users=[ticket], command="CONNECT_ARGV",
                 target=vmx, model=True)
    sc.label(flow, feature="VMXARGS", service="authd", persona=host.persona, transport="tls", expected=facts,
             notes="MODEL: CONNECT_ARGV syntax and reply are assumptions")
    return flow


def unanswered(sc: Scenario, client: Client, host: Host, at: float, retries=(1.0, 2.0, 4.0)) -> Flow:
    """SYNs to the authd port that nobody answers: ``syn`` then retransmissions after each gap."""
    flow, ch, *_ = sc.authd_tcp(client, host, at)
    ch.conv.syn_unanswered(at, retries, mark="syn")
    sc.label(flow, feature="NONE", service="authd", persona=host.persona, transport="none",
             notes=f"no SYN-ACK; {len(retries) + 1} SYNs")
    return flow


def refused(sc: Scenario, client: Client, host: Host, at: float, retries=()) -> Flow:
    """A SYN to the authd port answered by RST/ACK (nothing listening); optional retries."""
    flow, ch, *_ = sc.authd_tcp(client, host, at)
    ch.conv.refuse(at, retries, mark="syn")
    sc.label(flow, feature="NONE", service="authd", persona=host.persona, transport="none",
             notes="connection refused (RST/ACK)")
    return flow


def classic_handoff(sc: Scenario, client: Client, host: Host, at: float, seconds: float, *, tls: str = "1.0",
                    vm: str = "w2k3-sql") -> tuple[Flow, Flow]:
    """Classic ESX: a short 903 session, then the console on 902 (seed article; protocol.md §7).

    903 (model — the real 903 dialogue is not public): handshake · ``banner`` (B3) · TLS #1 ·
    ticket login · close_notify + FIN. Then, 0.2–0.9 s later, the same client opens 902 on the
    same host and runs a full ``mks_console``; its label links back via ``related.handoff_from``.
    """
    control = host.as_persona("esx-classic-903")
    flow, ch, pace, rng = sc.authd_tcp(client, control, at)
    facts = _greet_and_tls(sc, ch, pace, control, tls, None)
    ticket = authd.ticket(rng)
    ch.play(authd.login(pace, ticket, ticket, ok=True))
    end = ch.close(CLIENT, pace("program"), notify=True)
    facts.update(login="ok", login_kind="ticket", login_attempts=1, users=[ticket], model=True)
    sc.label(flow, feature="MKS", service="authd", persona=control.persona, transport="tls", expected=facts,
             notes="MODEL: classic ESX service-console step on 903 before the 902 console")
    console = mks_console(sc, client, host.as_persona("esx-classic"), end + pace.between(0.2, 0.9), seconds,
                          tls1=tls, vm=vm)
    console.label["related"] = {"handoff_from": flow.uid}
    flow.label["related"] = {"handoff_to": console.uid}
    return flow, console


# -- background ------------------------------------------------------------------------------------

def dns_lookup(sc: Scenario, client: Client, resolver: str, name: str, answer: str, at: float) -> Flow:
    """A DNS A/AAAA query and its answer (``dns_query``, ``dns_response``)."""
    flow = sc.udp(client, resolver, 53, at)
    rng = sc.rng_for(flow.uid)
    query = background.dns_query(rng.getrandbits(16), name, 28 if ":" in answer else 1)
    t = flow.conn.send("client", query, at, "dns_query")
    flow.conn.send("server", background.dns_response(query, [ipaddress.ip_address(answer).packed]),
                   t + rng.uniform(0.0003, 0.004), "dns_response")
    sc.label(flow, feature="NONE", service="dns", transport="udp", expected={"app": "dns"}, notes=f"{name} -> {answer}")
    return flow


def https_session(sc: Scenario, client: Client, server: Host, at: float, requests: int = 4,
                  tls: str = "1.2") -> Flow:
    """HTTPS to port 443 (vSphere UI/API): TLS with SNI, ``requests`` GETs, close_notify + FIN."""
    flow, ch, pace, rng = sc.tcp(client, server.ip, 443, at)
    ch.conv.open(mark="syn")
    pair = sc.tls(server, tls, sni=server.name)
    ch.start_tls(pair, "tls1")
    ch.play(background.https_exchange(pace, rng, server.name, requests))
    ch.close(CLIENT, pace.between(0.5, 2.0), notify=True)
    sc.label(flow, feature="NONE", service="https", transport="tls",
             expected={"app": "https", "tls_handshakes": 1, "tls_version": pair.version, "tls_cipher": pair.cipher,
                       "sni": server.name, "cert_sha1": server.cert.sha1, "cert_sha256": server.cert.sha256})
    return flow


def ssh_session(sc: Scenario, client: Client, server: Host, at: float, commands: int = 3) -> Flow:
    """An interactive SSH session to port 22 (banners, key exchange, echoed keystrokes)."""
    flow, ch, pace, rng = sc.tcp(client, server.ip, 22, at)
    ch.conv.open(mark="syn")
    ch.play(background.ssh_session(pace, rng, commands))
    ch.close(CLIENT, pace.between(0.2, 1.0))
    sc.label(flow, feature="NONE", service="ssh", transport="ssh", expected={"app": "ssh"})
    return flow


def heartbeats(sc: Scenario, host: Host, vcenter: str, at: float, count: int, interval: float = 10.0) -> Flow:
    """vpxa heartbeats host → vCenter on UDP 902 (the *other* protocol on port 902, §9)."""
    flow = sc.udp(Client(host.name, host.ip, "linux"), vcenter, 902, at, client_port=902)
    for n in range(count):
        flow.conn.send("client", background.vpxa_heartbeat(n + 1, host.ip), at + n * interval,
                       "heartbeat" if n == 0 else None)
    sc.label(flow, feature="NONE", service="vpxa-heartbeat", transport="udp", expected={"app": "vpxa-heartbeat"},
             notes="UDP 902 is not authd")
    return flow
