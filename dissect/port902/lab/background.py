"""Unrelated traffic around ESXi hosts: DNS, HTTPS (vSphere API on 443), SSH, vpxa heartbeats.

Why: real captures are never just port 902. The dissector's port-902 filter and its
content-based detection must skip these flows without misreporting them — in particular TLS on
443 (same record layer as authd's TLS #1) and UDP 902 heartbeats (same port number, different
protocol, protocol.md §9). Message formats: DNS per RFC 1035, SSH transport per RFC 4253
(binary packets; contents after NEWKEYS are random bytes of plausible sizes), heartbeat layout
per Wireshark's ``vmware_hb`` dissector with the 66-byte size nDPI keys on (§9).
"""

from __future__ import annotations

import random
import struct

from .channel import CLIENT, SERVER, Step
from .pace import Pace


def dns_query(txid: int, name: str, qtype: int = 1) -> bytes:
    """A recursive DNS query for ``name`` (type A by default)."""
    qname = b"".join(bytes([len(part)]) + part.encode() for part in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


def dns_response(query: bytes, addresses: list[bytes], ttl: int = 300) -> bytes:
    """The answer to ``query`` with one A/AAAA record per address (name compressed to the question)."""
    txid = struct.unpack("!H", query[:2])[0]
    qtype = 1 if not addresses or len(addresses[0]) == 4 else 28
    answers = b"".join(struct.pack("!HHHIH", 0xC00C, qtype, 1, ttl, len(a)) + a for a in addresses)
    return struct.pack("!HHHHHH", txid, 0x8180, 1, len(addresses), 0, 0) + query[12:] + answers


def vpxa_heartbeat(counter: int, host_ip: str, build: int = 22380479, server_id: int = 1,
                   host_key: str = "52a1f3c9") -> bytes:
    """A UDP 902 host→vCenter heartbeat, padded with a signature to nDPI's 66 bytes."""
    key, ip = host_key.encode(), host_ip.encode()
    body = (struct.pack("<IIIB", 0x000103A4, build, server_id, len(key)) + key
            + struct.pack("<iiiIB", 7, 3, 1, counter, len(ip)) + ip)
    return body + bytes((counter * 37 + i) & 0xFF for i in range(max(0, 66 - len(body))))


def https_exchange(pace: Pace, rng: random.Random, host: str, requests: int) -> list[Step]:
    """HTTP/1.1 requests and responses of varied size, to run inside an established TLS session."""
    steps = []
    for i in range(requests):
        path = rng.choice(("/sdk", "/ui/", "/rest/vcenter/vm", "/api/session", "/ui/assets/app.js"))
        req = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n"
               f"Cookie: VSPHERE-UI-JSESSIONID={rng.getrandbits(64):016X}\r\n\r\n").encode()
        size = rng.choice((512, 2048, 9000, 30000))
        body = rng.randbytes(size)
        resp = (f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
                ).encode() + body
        think = pace.between(0.2, 3.0) if i else pace("program")
        steps += [Step(CLIENT, req, think), Step(SERVER, resp, pace("http"))]
    return steps


def _ssh_packet(rng: random.Random, payload: bytes, block: int = 8) -> bytes:
    pad = block - (len(payload) + 5) % block
    pad += block if pad < 4 else 0
    return struct.pack("!IB", len(payload) + pad + 1, pad) + payload + rng.randbytes(pad)


def _namelist(*names: str) -> bytes:
    text = ",".join(names).encode()
    return struct.pack("!I", len(text)) + text


def _kexinit(rng: random.Random) -> bytes:
    lists = [
        _namelist("curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256",
                  "diffie-hellman-group16-sha512"),
        _namelist("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"),
        *[_namelist("chacha20-poly1305@openssh.com", "aes128-ctr", "aes256-ctr", "aes128-gcm@openssh.com")] * 2,
        *[_namelist("umac-64-etm@openssh.com", "hmac-sha2-256-etm@openssh.com", "hmac-sha2-256")] * 2,
        *[_namelist("none", "zlib@openssh.com")] * 2,
        _namelist(), _namelist(),
    ]
    return bytes([20]) + rng.randbytes(16) + b"".join(lists) + b"\0" + bytes(4)


def _string(data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + data


def _ed25519_reply(rng: random.Random) -> bytes:
    """KEX_ECDH_REPLY body: host key blob, server ephemeral key, signature (RFC 5656, 8709)."""
    host_key = _string(b"ssh-ed25519") + _string(rng.randbytes(32))
    signature = _string(b"ssh-ed25519") + _string(rng.randbytes(64))
    return _string(host_key) + _string(rng.randbytes(32)) + _string(signature)


def ssh_session(pace: Pace, rng: random.Random, commands: int) -> list[Step]:
    """SSH: version lines, KEXINIT both ways, ECDH, NEWKEYS, then encrypted interactive packets."""
    steps = [
        Step(SERVER, b"SSH-2.0-OpenSSH_8.8\r\n", pace("reply"), "ssh_banner"),
        Step(CLIENT, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", pace("program")),
        Step(CLIENT, _ssh_packet(rng, _kexinit(rng)), pace("program")),
        Step(SERVER, _ssh_packet(rng, _kexinit(rng)), pace("reply")),
        Step(CLIENT, _ssh_packet(rng, bytes([30]) + struct.pack("!I", 32) + rng.randbytes(32)), pace("program")),
        Step(SERVER, _ssh_packet(rng, bytes([31]) + _ed25519_reply(rng)) + _ssh_packet(rng, bytes([21])),
             pace("tls_server")),
        Step(CLIENT, _ssh_packet(rng, bytes([21])), pace("program")),
    ]

    def sealed(size: int) -> bytes:                             # chacha20-poly1305: length, data, tag
        return rng.randbytes(4 + size + 16)

    steps += [Step(CLIENT, sealed(48), pace("program")), Step(SERVER, sealed(48), pace("reply")),
              Step(CLIENT, sealed(112), pace("program")), Step(SERVER, sealed(32), pace("reply"))]
    for _ in range(commands):
        for _ in range(rng.randint(3, 12)):                   # keystrokes echoed
            steps += [Step(CLIENT, sealed(32), pace("keystroke")), Step(SERVER, sealed(32), pace("reply"))]
        steps.append(Step(SERVER, sealed(rng.choice((64, 400, 1800, 6000))), pace("http")))
    return steps
