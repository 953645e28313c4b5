"""Plays a dialogue onto one TCP connection through its current layer: plain, TLS #1, TLS #2.

Why: the same authd line is a cleartext segment on a legacy daemon, one TLS #1 record on ESXi,
and after ``200 Connect`` the stream continues raw (NFC nbd) or under a *new* TLS handshake on
the raw stream (MKS, nbdssl). Keeping the layer switch here lets dialogue scripts stay pure
bytes and the TCP model stay protocol-agnostic.

A dialogue is a list of ``Step``s. ``Step.delay`` counts from the moment the sending side became
ready: its own previous send, or the arrival of the peer's last bytes, whichever is later — a
server "reply" delay and a user's "think" time are the same kind of number. A ``Step`` whose
``data`` is a tuple is several writes (several TLS records) sent as one flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .pace import Pace
from .tcp import TcpConversation
from .tlsbio import TlsPair

CLIENT, SERVER = "C", "S"


@dataclass(frozen=True)
class Step:
    """One write (or flight of writes) by one side."""

    side: str
    data: bytes | tuple[bytes, ...]
    delay: float = 0.0
    mark: str | None = None


class Channel:
    """A TCP connection plus the layer its application bytes currently travel in."""

    def __init__(self, conv: TcpConversation, pace: Pace):
        self.conv, self.pace = conv, pace
        self.tls: TlsPair | None = None
        self.tls_sessions: list[TlsPair] = []

    def ready(self, side: str) -> float:
        """When ``side`` can send next (capture clock)."""
        return self.conv.ready("client" if side == CLIENT else "server")

    def _wrap(self, side: str, data: bytes) -> bytes:
        if self.tls is None:
            return data
        return self.tls.client_write(data) if side == CLIENT else self.tls.server_write(data)

    def _raw(self, side: str, wire: bytes, at: float, mark: str | None) -> float:
        send = self.conv.client_send if side == CLIENT else self.conv.server_send
        return send(wire, at=at, mark=mark)

    def send(self, side: str, data: bytes | tuple[bytes, ...], delay: float = 0.0, mark: str | None = None) -> float:
        """Send application bytes through the current layer; returns when the peer holds them."""
        parts = data if isinstance(data, tuple) else (data,)
        wire = b"".join(self._wrap(side, part) for part in parts)
        return self._raw(side, wire, self.ready(side) + delay, mark)

    def play(self, steps: Iterable[Step]) -> float:
        """Send every step in order; returns when the last one has arrived."""
        done = self.ready(SERVER)
        for step in steps:
            done = self.send(step.side, step.data, step.delay, step.mark)
        return done

    def start_tls(self, pair: TlsPair, prefix: str = "tls1") -> float:
        """Run a TLS handshake on the raw stream (the client speaks first), then use it.

        Marks: ``<prefix>_client_hello`` on the ClientHello, ``<prefix>_server_hello`` on the
        server's first flight.
        """
        done = self.ready(CLIENT)
        first_server = True
        for index, (side, wire) in enumerate(pair.handshake()):
            if side == CLIENT:
                delay = self.pace("program") if index == 0 else self.pace("tls_client")
                mark = f"{prefix}_client_hello" if index == 0 else None
            else:
                delay = self.pace("tls_server")
                mark = f"{prefix}_server_hello" if first_server else None
                first_server = False
            done = self._raw(side, wire, self.ready(side) + delay, mark)
        self.tls = pair
        self.tls_sessions.append(pair)
        return done

    def abandon_tls(self) -> None:
        """Drop the TLS layer without close_notify (what authd clients do after ``200 Connect``)."""
        self.tls = None

    def close(self, by: str = CLIENT, delay: float = 0.0, notify: bool = False, mark: str | None = "fin") -> float:
        """Close the connection from ``by``; with ``notify`` send a TLS close_notify first."""
        if notify and self.tls is not None:
            alert = self.tls.client_close() if by == CLIENT else self.tls.server_close()
            self._raw(by, alert, self.ready(by) + delay, None)
            delay = 0.0
        name = "client" if by == CLIENT else "server"
        return self.conv.close(at=self.ready(by) + delay, by=name, mark=mark)

    def reset(self, by: str = CLIENT, delay: float = 0.0, mark: str | None = "rst") -> float:
        """Abort the connection with RST from ``by``."""
        name = "client" if by == CLIENT else "server"
        return self.conv.reset(at=self.ready(by) + delay, by=name, mark=mark)
