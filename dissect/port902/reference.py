"""Cross-check sessions against Wireshark's own dissection (``analyze --reference``).

dissect902 parses port 902 itself; Wireshark is the reference implementation every analyst
trusts.  :class:`ReferenceCheck` is an analysis observer: after the analysis it runs each
capture through tshark with pyshark (``pip install 'dissect902[reference]'``, plus the
``tshark`` program), groups Wireshark's packets by ``tcp.stream``, matches the streams to the
sessions by their addresses and first frame, and compares what both read:

  first_frame, packets in each direction    TCP (every frame of the stream)
  TLS #1 ClientHello frame, JA3, SNI        Wireshark's TLS dissector (it finds TLS on 902 by
  TLS #1 ServerHello frame, version, cipher    itself, after the authd banner)
  server certificate SHA-1                  the first certificate's bytes, hashed here

Each difference becomes a ``reference_mismatch`` weird row (so ``--strict`` fails on it) and a
row of ``ReferenceCheck.rows`` / the JSON ``reference`` block.  Fields one side did not see
(a capture that began mid-connection, TLS Wireshark did not dissect) are not compared.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field

from .errors import Port902Error

FIELDS = ("first_frame", "packets_c2s", "packets_s2c", "client_hello_frame", "ja3", "sni",
          "server_hello_frame", "tls_version", "cipher", "server_cert_sha1")


class ReferenceUnavailable(Port902Error):
    """tshark is not installed (pyshark alone cannot dissect)."""


def require_reference() -> None:
    """Raise unless pyshark and tshark are both there; the message says what to install."""
    from .extras import require

    require("pyshark", "--reference")
    if shutil.which("tshark") is None:
        raise ReferenceUnavailable("--reference needs the tshark program (Wireshark's command line), which is "
                                   "not on PATH: apt-get install tshark")


def _endpoint(ip: str, port: str | int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass
class _Stream:
    a: str                # the first packet's source
    b: str
    first_frame: int
    packets: dict[str, int] = field(default_factory=dict)   # source endpoint -> packets
    hello: dict | None = None
    server_hello: dict | None = None


def _version_name(code: str | None) -> str | None:
    names = {"0x0301": "TLS 1.0", "0x0302": "TLS 1.1", "0x0303": "TLS 1.2", "0x0304": "TLS 1.3", "0x0300": "SSL 3.0"}
    return names.get((code or "").lower(), code)


def _values(layer, name: str) -> list:
    f = layer.get_field(name)
    return [] if f is None else list(f.all_fields)


def _handshake(stream: _Stream, frame: int, src: str, tls_layers) -> None:
    for tls in tls_layers:
        types = [v.show for v in _values(tls, "handshake_type")]
        if "1" in types and stream.hello is None:
            sni = tls.get_field("handshake_extensions_server_name")
            ja3 = tls.get_field("handshake_ja3")
            stream.hello = {"frame": frame, "src": src, "sni": sni.show if sni is not None else None,
                            "ja3": ja3.show if ja3 is not None else None}
        if "2" in types and stream.server_hello is None:
            suites = _values(tls, "handshake_ciphersuite")
            cipher = suites[0].showname_value.rsplit(" (", 1)[0] if suites else None
            supported = tls.get_field("handshake_extensions_supported_version")
            legacy = tls.get_field("handshake_version")
            version = _version_name(supported.show if supported is not None else
                                    legacy.show if legacy is not None else None)
            stream.server_hello = {"frame": frame, "cipher": cipher, "version": version, "cert_sha1": None}
        if stream.server_hello is not None and stream.server_hello["cert_sha1"] is None:
            certs = _values(tls, "handshake_certificate")
            if certs:
                der = bytes.fromhex(certs[0].raw_value or certs[0].show.replace(":", ""))
                digest = hashlib.sha1(der).hexdigest().upper()
                stream.server_hello["cert_sha1"] = ":".join(digest[i:i + 2] for i in range(0, 40, 2))


def wireshark_streams(path: str, ports: set[int]) -> list[_Stream]:
    """tshark's view of the TCP streams on ``ports`` in ``path``, in stream order."""
    import pyshark

    display = " || ".join(f"tcp.port == {p}" for p in sorted(ports))
    streams: dict[int, _Stream] = {}
    cap = pyshark.FileCapture(path, display_filter=display, keep_packets=False)
    try:
        for pkt in cap:
            net = pkt.ip if hasattr(pkt, "ip") else getattr(pkt, "ipv6", None)
            if net is None or not hasattr(pkt, "tcp"):
                continue
            src = _endpoint(str(net.src), pkt.tcp.srcport)
            dst = _endpoint(str(net.dst), pkt.tcp.dstport)
            number = int(pkt.number)
            sid = int(pkt.tcp.stream)
            stream = streams.get(sid)
            if stream is None:
                stream = streams[sid] = _Stream(src, dst, number)
            stream.packets[src] = stream.packets.get(src, 0) + 1
            tls_layers = pkt.get_multiple_layers("tls")
            if tls_layers:
                _handshake(stream, number, src, tls_layers)
    finally:
        cap.close()
    return [streams[k] for k in sorted(streams)]


def _ours(session) -> dict:
    d = session.to_dict()
    tls = d.get("tls") or {}
    details = (tls.get("handshake_details") or [{}])[0] if tls else {}
    hello = details.get("client_hello") or {}
    server = details.get("server_hello") or {}
    return {
        "first_frame": d.get("first_frame"),
        "packets_c2s": d["packets"]["client_to_server"], "packets_s2c": d["packets"]["server_to_client"],
        "client_hello_frame": details.get("frame") if hello else None,
        "ja3": hello.get("ja3_hash"), "sni": hello.get("sni"),
        "server_hello_frame": server.get("frame"), "tls_version": server.get("version"),
        "cipher": server.get("cipher"), "server_cert_sha1": tls.get("server_cert_sha1") if tls else None,
    }


def _theirs(stream: _Stream, client: str) -> dict:
    server = stream.b if stream.a == client else stream.a
    hello, sh = stream.hello or {}, stream.server_hello or {}
    return {
        "first_frame": stream.first_frame,
        "packets_c2s": stream.packets.get(client, 0), "packets_s2c": stream.packets.get(server, 0),
        "client_hello_frame": hello.get("frame"), "ja3": hello.get("ja3"), "sni": hello.get("sni"),
        "server_hello_frame": sh.get("frame"), "tls_version": sh.get("version"), "cipher": sh.get("cipher"),
        "server_cert_sha1": sh.get("cert_sha1"),
    }


# TLS fields are compared only when both sides saw the handshake; TCP fields always
_TLS_HELLO = ("client_hello_frame", "ja3", "sni")
_TLS_SERVER = ("server_hello_frame", "tls_version", "cipher", "server_cert_sha1")


def compare(sessions, streams: list[_Stream]) -> tuple[list[dict], list[dict]]:
    """(rows, unmatched): one row per compared field; sessions or streams without a partner."""
    by_pair: dict[frozenset, list[_Stream]] = {}
    for st in streams:
        by_pair.setdefault(frozenset((st.a, st.b)), []).append(st)
    rows, unmatched, used = [], [], set()
    for s in sessions:
        candidates = [st for st in by_pair.get(frozenset((s.client, s.server)), []) if id(st) not in used]
        if not candidates:
            unmatched.append({"uid": s.uid, "side": "dissect902", "client": s.client, "server": s.server,
                              "first_frame": s.first_frame})
            continue
        stream = min(candidates, key=lambda st: abs(st.first_frame - (s.first_frame or 0)))
        used.add(id(stream))
        ours, theirs = _ours(s), _theirs(stream, s.client)
        for name in FIELDS:
            if name in _TLS_HELLO and (ours["client_hello_frame"] is None or theirs["client_hello_frame"] is None):
                continue
            if name in _TLS_SERVER and (ours["server_hello_frame"] is None or theirs["server_hello_frame"] is None):
                continue
            if name == "server_cert_sha1" and (ours[name] is None or theirs[name] is None):
                continue
            rows.append({"uid": s.uid, "field": name, "dissect902": ours[name], "wireshark": theirs[name],
                         "match": ours[name] == theirs[name]})
    for st in streams:
        if id(st) not in used:
            unmatched.append({"uid": None, "side": "wireshark", "client": st.a, "server": st.b,
                              "first_frame": st.first_frame})
    return rows, unmatched


class ReferenceCheck:
    """Analysis observer: compares every session with Wireshark's dissection after the run."""

    name = "reference"

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.unmatched: list[dict] = []
        self.tshark: str | None = None

    def select(self, selection) -> None:
        self._ports = set(selection.tcp_ports)

    def packet(self, pkt) -> None:  # tshark reads the file itself
        pass

    def finish(self, analysis) -> None:
        from .analyzers.session import Weird

        self.tshark = _tshark_version()
        for cap in analysis.captures:
            if cap.format not in ("pcap", "pcapng"):
                continue
            sessions = [s for s in analysis.sessions if s.source == cap.path]
            ports = set(getattr(self, "_ports", ())) | {s.server_port for s in sessions}
            rows, unmatched = compare(sessions, wireshark_streams(cap.path, ports))
            for row in rows:
                row["source"] = cap.path
                if not row["match"]:
                    analysis.capture_weird.append(Weird(
                        None, None, "reference_mismatch",
                        f"{row['field']}: dissect902 {row['dissect902']!r}, Wireshark {row['wireshark']!r}",
                        row["uid"], cap.path))
            self.rows.extend(rows)
            self.unmatched.extend({**u, "source": cap.path} for u in unmatched)

    @property
    def mismatches(self) -> list[dict]:
        return [r for r in self.rows if not r["match"]]

    def summary(self) -> str:
        uids = {r["uid"] for r in self.rows}
        text = (f"{len(uids)} session(s), {len(self.rows)} field(s) compared with {self.tshark or 'tshark'} "
                f"(pyshark): {len(self.mismatches)} differ")
        if self.unmatched:
            text += f"; {len(self.unmatched)} connection(s) seen by only one side"
        return text

    def to_json(self) -> dict:
        return {"tshark": self.tshark, "compared": len(self.rows), "mismatches": self.mismatches,
                "unmatched": self.unmatched, "summary": self.summary()}


def _tshark_version() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["tshark", "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.splitlines()[0] if out else ""
    return first.split(" (Git")[0].replace("TShark (Wireshark) ", "Wireshark ") or None


__all__ = ["FIELDS", "ReferenceCheck", "ReferenceUnavailable", "compare", "require_reference", "wireshark_streams"]
