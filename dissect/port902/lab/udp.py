"""A UDP flow between two endpoints, with the same time model as ``tcp.TcpConversation``.

Why: captures around ESXi also carry UDP — DNS lookups before a console opens, and vpxa
heartbeats on UDP 902 that share the port number with authd but are another protocol
(protocol.md §9). The dissector must ignore them; the lab must produce them.
"""

from __future__ import annotations

import random

from .ip import pack_address, udp_packet


class UdpFlow:
    """Datagrams between a client and a server port; ``send`` returns when the peer has it."""

    def __init__(self, client_ip: str, client_port: int, server_ip: str, server_port: int, start_ts: float,
                 rtt: float = 0.001, *, vantage: float = 0.5, client_ttl: int = 64, server_ttl: int = 64,
                 rng: random.Random | None = None):
        rng = rng or random.Random(f"udp {client_ip}:{client_port}>{server_ip}:{server_port}")
        self.client_ip, self.client_port = client_ip, client_port
        self.server_ip, self.server_port = server_ip, server_port
        self.start_ts = start_ts
        self._ends = {
            "client": (pack_address(client_ip), client_port, client_ttl, vantage * rtt / 2),
            "server": (pack_address(server_ip), server_port, server_ttl, (1 - vantage) * rtt / 2),
        }
        self._ids = {"client": rng.getrandbits(16), "server": rng.getrandbits(16)}
        self._packets: list[tuple[float, int, bytes, str | None]] = []
        self.payload = {"client": 0, "server": 0}

    def send(self, side: str, payload: bytes, at: float, mark: str | None = None) -> float:
        """One datagram from ``side`` (``"client"``/``"server"``) seen at ``at``."""
        peer = "server" if side == "client" else "client"
        src, sport, ttl, _ = self._ends[side]
        dst, dport, _, peer_dist = self._ends[peer]
        packet = udp_packet(src, dst, sport, dport, payload, self._ids[side], ttl)
        self._ids[side] = (self._ids[side] + 1) & 0xFFFF
        self._packets.append((at, len(self._packets), packet, mark))
        self.payload[side] += len(payload)
        return at + 2 * peer_dist

    def records(self) -> list[tuple[float, bytes, str | None]]:
        """Time-ordered ``(ts, ip_packet, mark)``."""
        return [(t, p, m) for t, _, p, m in sorted(self._packets, key=lambda r: (r[0], r[1]))]

    def packets(self) -> list[tuple[float, bytes]]:
        """Time-ordered ``(ts, ip_packet)``."""
        return [(t, p) for t, p, _ in self.records()]
