"""What a session publishes about itself while it runs (stage 3): small records of facts.

The state machine (:mod:`.session`) fills these; the frozen session record
(``model.records``) carries them on.  ``Weird`` is the Zeek-style row for anything malformed or
unexpected; ``ClientHelloInfo`` / ``ServerHelloInfo`` keep a hello's fingerprint, not its bytes,
and :class:`Interner` shares identical ones between sessions; ``Handshake`` is one TLS handshake
on the stream while it grows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..proto import tls as tlsmod

@dataclass
class Weird:
    """Something malformed or unexpected, Zeek-style: a row, never a traceback."""

    ts: float | None
    frame: int | None
    kind: str
    detail: str
    uid: str = ""
    source: str = ""
    offset: int | None = None  # byte offset in the capture, for damage found while reading it

    def to_dict(self) -> dict:
        """A row of the JSON ``weird`` list (and of ``-f jsonl``'s weird records)."""
        return {"uid": self.uid or None, "source": self.source, "ts": self.ts, "frame": self.frame,
                "offset": self.offset, "kind": self.kind, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class ClientHelloInfo:
    """What a session keeps of a ClientHello: the fingerprint, not the bytes."""

    legacy_version: int
    offered_versions: tuple[int, ...]
    server_name: str | None
    alpn: tuple[str, ...]
    cipher_suites: tuple[int, ...]
    extension_types: tuple[int, ...]
    ja3_string: str
    ja3: str
    ja4: str
    ja4_r: str

    @classmethod
    def of(cls, ch) -> "ClientHelloInfo":
        return cls(ch.legacy_version, tuple(ch.offered_versions), ch.server_name,
                   tuple(a.decode("latin-1") if isinstance(a, bytes) else a for a in ch.alpn),
                   tuple(ch.cipher_suites), tuple(ch.extension_types), ch.ja3_string, ch.ja3, ch.ja4, ch.ja4_r)


@dataclass(frozen=True, slots=True)
class ServerHelloInfo:
    legacy_version: int
    selected_version: int
    cipher_suite: int
    extension_types: tuple[int, ...]

    @classmethod
    def of(cls, sh) -> "ServerHelloInfo":
        return cls(sh.legacy_version, sh.selected_version, sh.cipher_suite, tuple(t for t, _ in sh.extensions))


class Interner:
    """Shares identical hello and certificate summaries between sessions: a host and its
    clients repeat the same few fingerprints thousands of times, so each is kept once."""

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self.table: dict = {}

    def __call__(self, obj):
        if len(self.table) >= self.limit:
            return obj
        try:
            return self.table.setdefault(obj, obj)
        except TypeError:  # not hashable (a field holds a list): keep it as it is
            return obj


class HelloNames:
    """The negotiated version and cipher by name, from ``server_hello``: one definition for the
    live :class:`Handshake` and its frozen published form (``model.records.HandshakeRecord``)."""

    __slots__ = ()
    server_hello: ServerHelloInfo | None

    @property
    def version(self) -> str | None:
        if self.server_hello is not None:
            return tlsmod.version_name(self.server_hello.selected_version)
        return None

    @property
    def cipher(self) -> str | None:
        if self.server_hello is not None:
            return tlsmod.cipher_name(self.server_hello.cipher_suite)
        return None


@dataclass
class Handshake(HelloNames):
    """One TLS handshake on the stream (index 1 = TLS #1 after the banner), while it grows.

    Published frozen, as ``model.records.HandshakeRecord``, once the connection ends."""

    index: int
    ts: float
    frame: int
    client_hello: ClientHelloInfo | None = None
    server_hello: ServerHelloInfo | None = None
    server_hello_frame: int | None = None
    certificates: list = field(default_factory=list)  # tls.CertificateInfo
    certificate_frame: int | None = None
    alerts: list[tuple[float, int, str, str | None, str | None, bool]] = field(default_factory=list)
    client_app_records: int = 0
    server_app_records: int = 0
