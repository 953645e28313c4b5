"""Declared wire structures of capture files and links: pcap and pcapng headers and blocks, link types.

Magic numbers and block types from the pcap and pcapng specifications (draft-ietf-opsawg-pcap,
draft-ietf-opsawg-pcapng); link types and layouts from tcpdump.org's LINKTYPE_* list.
"""

from __future__ import annotations

import struct

# --- file formats ------------------------------------------------------------------

PCAP_MAGIC = {  # magic as read little-endian -> (byte order, ticks per second)
    0xA1B2C3D4: ("<", 1_000_000),
    0xD4C3B2A1: (">", 1_000_000),
    0xA1B23C4D: ("<", 1_000_000_000),
    0x4D3CB2A1: (">", 1_000_000_000),
}
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
PCAPNG_BLOCKS = {1: "IDB", 2: "OPB", 3: "SPB", 5: "ISB", 6: "EPB", 0x0A0D0D0A: "SHB"}
GZIP_MAGIC = b"\x1f\x8b"

# --- link types (LINKTYPE_* numbers from tcpdump.org) -----------------------------

LINKTYPES = {
    0: "NULL",
    1: "ETHERNET",
    12: "RAW",  # OpenBSD's DLT_RAW value, seen in old files
    14: "RAW",
    101: "RAW",
    108: "LOOP",
    113: "LINUX_SLL",
    228: "IPV4",
    229: "IPV6",
    276: "LINUX_SLL2",
}
# link type -> (offset of the EtherType or -1 when the IP version nibble decides,
#               offset of the network header)
_LINK_LAYOUT = {
    1: (12, 14),
    113: (14, 16),
    276: (0, 20),
    0: (-1, 4),
    108: (-1, 4),
    12: (-1, 0),
    14: (-1, 0),
    101: (-1, 0),
    228: (-1, 0),
    229: (-1, 0),
}
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58
IPV6_EXTENSION_HEADERS = (0, 43, 60, 51)  # hop-by-hop, routing, dest-opts, AH (44 fragment: stop)

AUTHD_GREETING = b"220 VMware Authentication Daemon"
_GREETING_LEN = len(AUTHD_GREETING)
RFB_GREETING = b"RFB 003."  # a VNC server's ProtocolVersion: plain VNC consoles on any port (analyzers/vnc.py)
_RFB_GREETING_LEN = len(RFB_GREETING)
DEFAULT_TCP_PORTS = frozenset({902, 903, 912})
# What is kept of a control port (Selection.tcp_control_ports): connection control (FIN, SYN or
# RST set), or a segment whose payload starts with a TLS handshake record (0x16) or an HTTP
# request line ("G" of GET).  One definition: the pure-Python decoder and the analysis' routing
# read these, and the C scanner's copies are checked against them when it is loaded (native.py).
CONTROL_TCP_FLAGS = 0x07
CONTROL_FIRST_BYTES = b"\x16G"
CHUNK_SIZE = 8 << 20
MAX_RECORD = 256 << 20  # larger than any sane packet; beyond it the file is corrupt

_U16 = struct.Struct("!H")
_PORTS = struct.Struct("!HH")
_TCP = struct.Struct("!HHIIBBH")  # sport dport seq ack offset/reserved flags window
_UDP = struct.Struct("!HHH")
_IPV4_LEN = struct.Struct("!H")
