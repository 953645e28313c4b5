"""UDP 902: vpxa heartbeats from ESXi hosts to vCenter — same port number, not authd.

Protocol (protocol.md §9): every managed host's vpxa sends a small datagram to vCenter on
UDP 902 at a regular interval; vCenter marks a host "not responding" when they stop.  No
public specification exists.  The layout below is the one Wireshark's ``vmware_hb``
dissector reads (wireshark/wireshark ``epan/dissectors/packet-vmware-hb.c``, commit
1dd94363; "No spec/doc is available", reverse engineered), all integers little-endian::

    u32 magic · u32 build number · u32 server id · u8 host-key length · host key (ASCII) ·
    i32 change gen · i32 spec gen · i32 bundle version · u32 heartbeat counter ·
    u8 IPv4-text length · ESXi IPv4 address (ASCII) · verification signature (the rest)

nDPI recognises the datagram by UDP destination 902, 66 bytes of payload and a first byte of
0xA4 (ntop/nDPI ``src/lib/protocols/vmware.c``); we report that as ``ndpi_shape``.

Why it matters to the diagnosis: a heartbeat names its host (IP and build, hence the ESXi
release) and its vCenter (the destination), which tells "which address is vCenter" and
"which addresses are ESXi hosts" even when everything on TCP is encrypted.  It must never
be mistaken for authd: authd is TCP only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import Malformed

__all__ = ["HEAD", "MIDDLE", "NDPI_LENGTH", "NDPI_FIRST_BYTE", "BUILDS", "Heartbeat", "parse", "esxi_version"]

#: magic, build number, server id, host-key length
HEAD = struct.Struct("<IIIB")
#: change gen, spec gen, bundle version, heartbeat counter, IPv4-text length
MIDDLE = struct.Struct("<iiiIB")
NDPI_LENGTH = 66
NDPI_FIRST_BYTE = 0xA4
MAX_HOST_KEY = 64  # host keys seen are short hex strings; a longer one is not a heartbeat

# ESXi build number -> release name.  Source: VMware's published list "Build numbers and
# versions of VMware ESXi/ESX" (KB 2143832), as carried in Wireshark's vmware_hb value table
# (packet-vmware-hb.c, commit 1dd94363).  Only GA and Update releases are kept here (patch
# builds are too many to be worth the lines); an unknown build reports None, never a guess.
BUILDS = {
    164009: "ESXi 4.0 GA",
    208167: "ESXi 4.0 Update 1",
    261974: "ESXi 4.0 Update 2",
    398348: "ESXi 4.0 Update 3",
    504850: "ESXi 4.0 Update 4",
    260247: "ESXi 4.1 GA",
    348481: "ESXi 4.1 Update 1",
    502767: "ESXi 4.1 Update 2",
    800380: "ESXi 4.1 Update 3",
    469512: "ESXi 5.0 GA",
    623860: "ESXi 5.0 Update 1",
    914586: "ESXi 5.0 Update 2",
    1311175: "ESXi 5.0 Update 3",
    799733: "ESXi 5.1 GA",
    1065491: "ESXi 5.1 Update 1",
    1483097: "ESXi 5.1 Update 2",
    2323236: "ESXi 5.1 Update 3",
    1331820: "ESXi 5.5 GA",
    1623387: "ESXi 5.5 Update 1",
    2068190: "ESXi 5.5 Update 2",
    3029944: "ESXi 5.5 Update 3",
    2494585: "ESXi 6.0 GA",
    3029758: "ESXi 6.0 Update 1",
    3620759: "ESXi 6.0 Update 2",
    4600944: "ESXi 6.0 Patch 4",
    5050593: "ESXi 6.0 Update 3",
    4564106: "ESXi 6.5 GA",
    5969303: "ESXi 6.5 Update 1",
    8294253: "ESXi 6.5 Update 2",
    13932383: "ESXi 6.5 Update 3",
    8169922: "ESXi 6.7 GA",
    10302608: "ESXi 6.7 Update 1",
    13006603: "ESXi 6.7 Update 2",
    14320388: "ESXi 6.7 Update 3",
    15843807: "ESXi 7.0 GA",
    16850804: "ESXi 7.0 Update 1",
    17630552: "ESXi 7.0 Update 2",
    18644231: "ESXi 7.0 Update 3",
    20513097: "ESXi 8.0 IA",
    21495797: "ESXi 8.0 Update 1",
    22380479: "ESXi 8.0 Update 2",
}


def esxi_version(build: int | None) -> str | None:
    """Release name of an ESXi build number, or None when not in :data:`BUILDS`."""
    return BUILDS.get(build) if build is not None else None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    magic: int
    build: int
    server_id: int
    host_key: str
    change_gen: int
    spec_gen: int
    bundle_version: int
    counter: int
    host_ip: str
    signature_len: int
    length: int  # whole payload

    @property
    def version(self) -> str | None:
        return esxi_version(self.build)

    @property
    def ndpi_shape(self) -> bool:
        """66 bytes and first byte 0xA4, as nDPI checks."""
        return self.length == NDPI_LENGTH and self.magic & 0xFF == NDPI_FIRST_BYTE


def _ascii(raw: bytes, what: str) -> str:
    if not all(0x20 < b < 0x7F for b in raw):
        raise Malformed(f"heartbeat: {what} is not printable ASCII")
    return raw.decode("ascii")


def parse(data: bytes) -> Heartbeat:
    """Parse one UDP 902 payload; Malformed when it does not have the heartbeat layout."""
    n = len(data)
    if n < HEAD.size:
        raise Malformed(f"heartbeat: {n} bytes, the fixed head needs {HEAD.size}")
    magic, build, server_id, key_len = HEAD.unpack_from(data)
    if key_len > MAX_HOST_KEY:
        raise Malformed(f"heartbeat: host key of {key_len} bytes")
    pos = HEAD.size
    if pos + key_len + MIDDLE.size > n:
        raise Malformed("heartbeat: host key or counters run past the datagram")
    host_key = _ascii(data[pos:pos + key_len], "host key")
    pos += key_len
    change_gen, spec_gen, bundle, counter, ip_len = MIDDLE.unpack_from(data, pos)
    pos += MIDDLE.size
    if not 7 <= ip_len <= 15 or pos + ip_len > n:
        raise Malformed(f"heartbeat: IPv4 text of {ip_len} bytes does not fit")
    host_ip = _ascii(data[pos:pos + ip_len], "host address")
    parts = host_ip.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise Malformed("heartbeat: host address is not a dotted IPv4 address")
    pos += ip_len
    return Heartbeat(magic, build, server_id, host_key, change_gen, spec_gen, bundle, counter, host_ip,
                     n - pos, n)
