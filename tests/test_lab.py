"""The traffic lab is ground truth, so it is checked against independent readers: scapy and tshark.

Covers: every container variant of ``CaptureWriter`` (format, link type, byte order, timestamp
resolution, gzip, snaplen, pcapng block kinds and several interfaces); TCP sequence/ACK
consistency (tshark's analysis flags appear exactly where loss, reordering or unanswered SYNs
were injected); real TLS (tshark decodes the handshakes and the certificate thumbprint matches);
the bundled samples agree with their labels; and regenerating a sample reproduces its labels.

Tests that need tshark are marked ``tshark``; they are skipped when tshark is missing unless
``DISSECT902_REQUIRE_TSHARK`` is set, in which case they fail.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
try:
    import dissect.port902.lab  # noqa: F401
except ModuleNotFoundError:              # running from a checkout without installing
    sys.path.insert(0, str(ROOT))

from dissect.port902.lab import CaptureWriter, TcpConversation, TlsPair, host_cert, thumbprint  # noqa: E402
from dissect.port902.lab import authd, nfc, rfb, samples, scenario, scenarios  # noqa: E402
from dissect.port902.lab.labels import EXPECTED_DEFAULTS, FEATURES, LABELS_SCHEMA, TRANSPORTS  # noqa: E402
from dissect.port902.lab.ip import udp_packet, pack_address  # noqa: E402
from dissect.port902.lab.links import LINKTYPES  # noqa: E402
from dissect.port902.lab.pace import Pace  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from scapy.all import IP, TCP, UDP, IPv6, PcapNgReader, rdpcap  # noqa: E402

SAMPLES_DIR = ROOT / "samples"
TSHARK = shutil.which("tshark")
LINK_HEADER = {"ethernet": 14, "vlan": 18, "qinq": 22, "sll": 16, "sll2": 20, "raw": 0, "null": 4, "loop": 4}
START = 1715677200.0


def need_tshark() -> str:
    """tshark's path; skip (or fail when DISSECT902_REQUIRE_TSHARK is set) if it is missing."""
    if TSHARK:
        return TSHARK
    if os.environ.get("DISSECT902_REQUIRE_TSHARK"):
        pytest.fail("tshark is required (DISSECT902_REQUIRE_TSHARK is set) but was not found")
    pytest.skip("tshark not installed")


def tshark_fields(path, fields, *extra) -> list[list[str]]:
    """Rows of tab-separated tshark fields for ``path``."""
    args = [need_tshark(), "-r", str(path), "-T", "fields", "-E", "occurrence=a"]
    for field in fields:
        args += ["-e", field]
    out = subprocess.run(args + list(extra), capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def tshark_conversations(path, proto: str) -> set[frozenset]:
    """Endpoint pairs of tshark's ``conv,<proto>`` statistics."""
    out = subprocess.run([need_tshark(), "-r", str(path), "-q", "-z", f"conv,{proto}"],
                         capture_output=True, text=True, check=True).stdout
    pairs = set()
    for line in out.splitlines():
        if "<->" in line:
            a, _, b = line.split()[:3]
            pairs.add(frozenset((a, b)))
    return pairs


def endpoint(end: dict) -> str:
    return f"{end['ip']}:{end['port']}"


@pytest.fixture(scope="module")
def traffic() -> list[tuple[float, bytes]]:
    """A small mixed packet list: IPv4 and IPv6 TCP connections and a UDP datagram."""
    v4 = TcpConversation("10.0.0.1", 50000, "10.0.0.2", 902, START, rtt=0.002)
    v4.open()
    v4.server_send(authd.banner("B7"))
    v4.client_send(b"x" * 4000)
    v4.server_send(b"y" * 300)
    v4.close()
    v6 = TcpConversation("fd00::1", 50001, "fd00::2", 912, START + 1)
    v6.open()
    v6.client_send(b"USER root\r\n")
    v6.reset(by="server")
    udp = (START + 2, udp_packet(pack_address("10.0.0.1"), pack_address("10.0.0.53"), 5353, 53, b"q" * 30))
    return sorted(v4.packets() + v6.packets() + [udp])


def expected_ports(traffic) -> list[tuple[int, int]]:
    ports = []
    for _, packet in traffic:
        offset = 40 if packet[0] >> 4 == 6 else 20
        ports.append(struct.unpack("!HH", packet[offset: offset + 4]))
    return ports


def ip_layer(packet, link: str):
    """The IP packet of a scapy record, cut at the link header's known length.

    scapy must itself find the IP layer except behind BSD loopback headers, where it does not
    map the IPv6 address-family values (and reads DLT_NULL in the reader's byte order).
    """
    raw = bytes(packet)[LINK_HEADER[link]:]
    layer = IPv6 if raw[0] >> 4 == 6 else IP
    if link not in ("null", "loop"):
        assert packet.haslayer(layer), f"scapy did not decode {link}"
    return layer(raw)


def assert_checksums_valid(ip) -> None:
    """Rebuilding with scapy gives the same IP/TCP/UDP checksums the lab wrote."""
    rebuilt = ip.__class__(bytes(ip))
    for layer in (IP, TCP, UDP):
        if rebuilt.haslayer(layer) and hasattr(rebuilt[layer], "chksum"):
            written = rebuilt[layer].chksum
            del rebuilt[layer].chksum
            assert ip.__class__(bytes(rebuilt))[layer].chksum == written, layer.__name__


# -- writer ----------------------------------------------------------------------------------

PCAP_VARIANTS = [("pcap", link, "<", "us") for link in LINKTYPES] + [
    ("pcap", "ethernet", ">", "us"), ("pcap", "ethernet", "<", "ns"), ("pcap", "ethernet", ">", "ns"),
    ("pcap", "null", ">", "us"), ("pcap", "sll2", ">", "ns"),
]


@pytest.mark.parametrize("fmt,link,byteorder,resolution", PCAP_VARIANTS)
def test_pcap_variant_reads_back_with_scapy(tmp_path, traffic, fmt, link, byteorder, resolution):
    path = tmp_path / f"{link}.pcap"
    with CaptureWriter(path, fmt, link, resolution, byteorder) as writer:
        assert writer.write_many(traffic) == len(traffic)
    head = path.read_bytes()[:24]
    magic = {"us": 0xA1B2C3D4, "ns": 0xA1B23C4D}[resolution]
    assert struct.unpack(byteorder + "I", head[:4])[0] == magic
    assert struct.unpack(byteorder + "I", head[20:24])[0] == LINKTYPES[link]
    packets = rdpcap(str(path))
    assert len(packets) == len(traffic)
    for (ts, original), packet in zip(traffic, packets):
        ip = ip_layer(packet, link)
        assert bytes(ip) == original
        assert abs(float(packet.time) - ts) < 1e-6
        assert_checksums_valid(ip)


@pytest.mark.parametrize("byteorder", "<>")
@pytest.mark.parametrize("resolution", ["us", "ns"])
def test_pcapng_multi_interface_reads_back_with_scapy(tmp_path, traffic, byteorder, resolution):
    path = tmp_path / "multi.pcapng"
    links = list(LINKTYPES)
    with CaptureWriter(path, "pcapng", links[0], resolution, byteorder) as writer:
        ids = [0] + [writer.add_interface(link, resolution) for link in links[1:]]
        for iface, link in zip(ids, links):
            writer.write_many(traffic, interface=iface)
    with PcapNgReader(str(path)) as reader:
        packets = list(reader)
    assert len(packets) == len(traffic) * len(links)
    for n, packet in enumerate(packets):
        link = links[n // len(traffic)]
        assert bytes(ip_layer(packet, link)) == traffic[n % len(traffic)][1]


def _variant_files(tmp_path: Path, traffic) -> list[tuple[Path, int]]:
    """Every container variant tshark must read, with the packet count each holds."""
    files = []
    for fmt, link, byteorder, resolution in PCAP_VARIANTS:
        path = tmp_path / f"{link}{'BE' if byteorder == '>' else 'LE'}{resolution}.pcap"
        with CaptureWriter(path, fmt, link, resolution, byteorder) as writer:
            writer.write_many(traffic)
        files.append((path, len(traffic)))
    for byteorder in "<>":
        for resolution in ("us", "ns"):
            path = tmp_path / f"multi{'BE' if byteorder == '>' else 'LE'}{resolution}.pcapng"
            with CaptureWriter(path, "pcapng", "ethernet", resolution, byteorder) as writer:
                for link in list(LINKTYPES)[1:]:
                    writer.add_interface(link, resolution)
                for iface in range(len(LINKTYPES)):
                    for ts, packet in traffic:
                        writer.write(ts, packet, interface=iface)
            files.append((path, len(traffic) * len(LINKTYPES)))
    for block in ("spb", "opb"):
        path = tmp_path / f"{block}.pcapng"
        with CaptureWriter(path, "pcapng", "ethernet", block=block) as writer:
            writer.write_many(traffic)
        files.append((path, len(traffic)))
    for fmt in ("pcap", "pcapng"):
        path = tmp_path / f"compressed.{fmt}.gz"
        with CaptureWriter(path, fmt, "sll", compress=True) as writer:
            writer.write_many(traffic)
        files.append((path, len(traffic)))
    return files


@pytest.mark.tshark
def test_every_variant_reads_back_with_tshark(tmp_path, traffic):
    files = _variant_files(tmp_path, traffic)
    ports = expected_ports(traffic)
    fields = ["frame.time_epoch", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
              "tcp.checksum.status", "ip.checksum.status", "udp.checksum.status"]
    options = ["-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda f: tshark_fields(f[0], fields, *options), files))
    for (path, count), rows in zip(files, results):
        assert len(rows) == count, path.name
        for n, row in enumerate(rows):
            epoch, tsport, tdport, usport, udport, tcheck, icheck, ucheck = row
            src, dst = (tsport, tdport) if tsport else (usport, udport)
            assert (int(src), int(dst)) == ports[n % len(traffic)], path.name
            assert "0" not in (tcheck, icheck, ucheck), f"bad checksum in {path.name} frame {n + 1}"
            if "spb" not in path.name:        # simple packet blocks carry no timestamp
                assert abs(float(epoch) - traffic[n % len(traffic)][0]) < 2e-6, path.name


def test_gzip_output_is_gzip_and_reads_back(tmp_path, traffic):
    path = tmp_path / "c.pcap.gz"
    with CaptureWriter(path, compress=True) as writer:
        writer.write_many(traffic)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    plain = tmp_path / "c.pcap"
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    assert len(rdpcap(str(plain))) == len(traffic)


def test_snaplen_truncates_records(tmp_path, traffic):
    for fmt in ("pcap", "pcapng"):
        path = tmp_path / f"snap.{fmt}"
        with CaptureWriter(path, fmt, "ethernet", snaplen=96) as writer:
            writer.write_many(traffic)
            writer.write(START + 5, traffic[0][1][:40], orig_len=1500)
        data = path.read_bytes()
        if fmt == "pcap":
            records, offset = [], 24
            while offset < len(data):
                _, _, incl, orig = struct.unpack_from("<IIII", data, offset)
                records.append((incl, orig))
                offset += 16 + incl
        else:
            records, offset = [], 0
            while offset < len(data):
                kind, total = struct.unpack_from("<II", data, offset)
                if kind == 6:
                    records.append(struct.unpack_from("<II", data, offset + 20))
                offset += total
        sizes = [len(p) + 14 for _, p in traffic] + [1514]
        assert [orig for _, orig in records] == sizes
        assert [incl for incl, _ in records] == [min(96, s) for s in sizes[:-1]] + [54]
        assert any(incl < orig for incl, orig in records)


@pytest.mark.tshark
def test_snaplen_truncation_seen_by_tshark(tmp_path, traffic):
    path = tmp_path / "snap.pcapng"
    with CaptureWriter(path, "pcapng", "ethernet", snaplen=80) as writer:
        writer.write_many(traffic)
    rows = tshark_fields(path, ["frame.cap_len", "frame.len"])
    assert [(int(c), int(l)) for c, l in rows] == [(min(80, len(p) + 14), len(p) + 14) for _, p in traffic]


def test_single_interface_pcap_rejects_more(tmp_path):
    with CaptureWriter(tmp_path / "x.pcap") as writer:
        with pytest.raises(ValueError):
            writer.add_interface("raw")


def test_null_link_uses_file_byte_order_and_loop_network_order(tmp_path, traffic):
    v4 = traffic[0][1]
    for link, byteorder, expected in (("null", "<", b"\x02\0\0\0"), ("null", ">", b"\0\0\0\x02"),
                                      ("loop", "<", b"\0\0\0\x02")):
        path = tmp_path / f"{link}{byteorder}.pcap"
        with CaptureWriter(path, link=link, byteorder=byteorder) as writer:
            writer.write(START, v4)
        assert path.read_bytes()[40:44] == expected


# -- bulk frames (the benchmark's generator) ---------------------------------------------------

def test_bulk_frames_are_what_scapy_reads(tmp_path):
    from dissect.port902.lab import bulk
    from scapy.all import Dot1Q, Ether
    frames = []
    for cip, sip, vlan in (("10.0.0.1", "10.0.0.2", 0), ("2001:db8::1", "2001:db8::2", 100)):
        path = bulk.tcp_path(pack_address(cip), pack_address(sip), 40000, 902, b"\x02" * 6, b"\x04" * 6, vlan,
                             swin=1026)
        frames.append((cip, sip, vlan, bulk.tcp_frame(path, 0, 2**32 + 5, 7, 0x8002, bulk.SYN_OPTS)))
        frames.append((sip, cip, vlan, bulk.tcp_frame(path, 1, 9, 6, 0x5018, b"220 hello\r\n")))
        frames.append((cip, sip, vlan, bulk.udp_frame(pack_address(cip), pack_address(sip), 5353, 53,
                                                      b"\x02" * 6, b"\x04" * 6, b"query", vlan)))
    for src, dst, vlan, frame in frames:
        pkt = Ether(frame)
        assert (Dot1Q in pkt) == bool(vlan) and (not vlan or pkt[Dot1Q].vlan == vlan)
        ip = pkt[IPv6] if ":" in src else pkt[IP]
        assert (ip.src, ip.dst) == (src, dst)
        if UDP in pkt:
            assert pkt[UDP].load == b"query"
            wire = pkt[UDP].chksum
            del pkt[UDP].chksum
            assert Ether(bytes(pkt))[UDP].chksum == wire          # a correct UDP checksum
            continue
        tcp = pkt[TCP]
        if tcp.flags == "S":
            assert tcp.seq == 5 and tcp.dataofs == 8 and dict(tcp.options)["MSS"] == 1460
        else:
            assert (tcp.seq, tcp.ack, str(tcp.flags), tcp.window, tcp.load) == (9, 6, "PA", 1026, b"220 hello\r\n")
        assert tcp.chksum == 0                                      # as with checksum offload
        assert len(frame) == (18 if vlan else 14) + (40 if ":" in src else 20) + tcp.dataofs * 4 + len(tcp.payload)


def test_bulk_capture_matches_its_manifest(tmp_path):
    """``scripts/gen_bulk_capture.py`` on the lab's bulk path: dissect902 finds the ground truth."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import benchmark
        import gen_bulk_capture
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    pcap, out = tmp_path / "bulk.pcap", tmp_path / "bulk.json"
    manifest = gen_bulk_capture.generate(str(pcap), 6000, conn_every=300, quiet=True)
    assert manifest["packets"] >= 6000 and manifest["sessions_expected"] >= 10
    assert manifest["file_size"] == pcap.stat().st_size
    subprocess.run([sys.executable, "-m", "dissect.port902.cli.main", "analyze", str(pcap), "--format", "json",
                    "-o", str(out), "-q"], check=True)
    checks = benchmark.check_analysis(json.loads(out.read_text()), manifest)
    assert [c for c in checks if c["hard"] and not c["ok"]] == []
    assert all(c["ok"] for c in checks if c["check"].startswith(("sessions with", "TLS handshakes")))


# -- TCP ---------------------------------------------------------------------------------------

def _conversation(port: int, **conditions) -> TcpConversation:
    conv = TcpConversation("10.1.0.1", port, "10.1.0.2", 902, START + port % 100, rtt=0.004, **conditions)
    t = conv.open()
    t = conv.server_send(authd.banner("B7"), at=t + 0.0005)
    for n in range(4):
        t = conv.client_send(b"C" * (300 + n), at=t + 0.001)
        t = conv.server_send(b"S" * 60000, at=t + 0.002)
        t = conv.client_send(b"k" * 8, at=t + 0.3)     # think time: delayed ACK path
    conv.close(at=t + 0.01)
    return conv


@pytest.mark.tshark
def test_tcp_analysis_flags_only_where_conditions_were_injected(tmp_path):
    clean = _conversation(40001)
    lossy = _conversation(40002, loss=[("s2c", 7), ("s2c", 50), ("c2s", 2)])
    shuffled = _conversation(40003, reorder=[("s2c", 12)])
    silent = TcpConversation("10.1.0.1", 40004, "10.1.0.3", 902, START + 20)
    silent.syn_unanswered()
    refused = TcpConversation("10.1.0.1", 40005, "10.1.0.4", 902, START + 21)
    refused.refuse()
    v6 = TcpConversation("fd00::1", 40006, "fd00::2", 902, START + 22)
    t = v6.open()
    v6.server_send(b"z" * 20000, at=t)
    v6.close()
    convs = [clean, lossy, shuffled, silent, refused, v6]
    path = tmp_path / "tcp.pcap"
    with CaptureWriter(path) as writer:
        writer.write_many(sorted(p for c in convs for p in c.packets()))
    assert {e["kind"] for e in lossy.events} == {"loss"} and len(lossy.events) == 3
    rows = tshark_fields(path, ["tcp.srcport", "tcp.dstport", "tcp.analysis.retransmission",
                                "tcp.analysis.fast_retransmission", "tcp.analysis.out_of_order",
                                "tcp.analysis.flags", "tcp.checksum.status"],
                         "-o", "tcp.check_checksum:TRUE")
    flagged: dict[int, set] = {}
    for sport, dport, retrans, fast, ooo, flags, status in rows:
        assert status == "1"
        port = int(sport) if int(sport) != 902 else int(dport)
        if flags:
            kinds = flagged.setdefault(port, set())
            kinds |= {name for name, value in (("retrans", retrans), ("fast", fast), ("ooo", ooo)) if value}
    assert set(flagged) == {40002, 40003, 40004}
    assert flagged[40002] & {"retrans", "fast"}
    assert "ooo" in flagged[40003]
    assert "retrans" in flagged[40004]
    expected = {frozenset((f"10.1.0.1:{c.client_port}", f"{c.server_ip}:902")) for c in convs if not c.ipv6}
    expected.add(frozenset(("fd00::1:40006", "fd00::2:902")))
    assert tshark_conversations(path, "tcp") == expected


def test_tcp_sequence_numbers_and_payload_are_consistent():
    conv = _conversation(40010, loss=[("s2c", 3)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        packets = [IP(p) for _, p in conv.packets()]
    streams = {"c2s": {}, "s2c": {}}
    for pkt in packets:
        assert_checksums_valid(pkt)
        seg = pkt[TCP]
        key = "c2s" if seg.dport == 902 else "s2c"
        if len(seg.payload):
            previous = streams[key].setdefault(seg.seq, bytes(seg.payload))
            assert previous == bytes(seg.payload)          # a retransmission repeats the bytes
    for key, side in (("c2s", conv.client), ("s2c", conv.server)):
        offset = 0
        for relative, chunk in sorted(((s - side.isn - 1) % 2**32, v) for s, v in streams[key].items()):
            assert relative == offset                          # contiguous: no gap, no overlap
            offset += len(chunk)
        assert offset == side.payload
    syn = packets[0][TCP]
    assert syn.flags == "S" and dict(syn.options)["MSS"] == 1460 and "SAckOK" in dict(syn.options)
    assert dict(syn.options)["WScale"] == 7 and "Timestamp" in dict(syn.options)
    times = [t for t, _ in conv.packets()]
    assert times == sorted(times)


def test_capture_from_drops_the_beginning():
    conv = TcpConversation("10.1.0.1", 40020, "10.1.0.2", 902, START, capture_from=START + 1)
    t = conv.open()
    conv.client_send(b"a" * 100, at=t)
    conv.server_send(b"b" * 100, at=START + 2)
    conv.close(at=START + 3)
    packets = conv.packets()
    assert packets[0][0] >= START + 1
    assert not any(IP(p)[TCP].flags.S for _, p in packets)


def test_unanswered_syn_backs_off():
    conv = TcpConversation("10.1.0.1", 40030, "10.1.0.9", 902, START)
    conv.syn_unanswered(retries=(1.0, 2.0, 4.0))
    assert [round(t - START, 6) for t, _ in conv.packets()] == [0.0, 1.0, 3.0, 7.0]
    assert conv.state == "no_answer"


# -- TLS and certificates ------------------------------------------------------------------

def test_certificate_subject_and_thumbprints_are_stable():
    from cryptography import x509
    cert = host_cert("esxi-test.lab.example")
    again = host_cert.__wrapped__("esxi-test.lab.example")
    assert again.der == cert.der                                  # deterministic key and certificate
    parsed = x509.load_der_x509_certificate(cert.der)
    subject = parsed.subject.rfc4514_string()
    for part in ("C=US", "ST=California", "L=Palo Alto", "O=VMware\\, Inc",
                 "OU=VMware ESX Server Default Certificate", "CN=esxi-test.lab.example"):
        assert part in subject
    assert parsed.issuer == parsed.subject
    assert cert.sha1 == ":".join(f"{b:02X}" for b in hashlib.sha1(cert.der).digest())
    assert len(cert.sha1) == 59 and len(cert.sha256) == 95 and cert.sha256 == thumbprint(cert.der, "sha256")


@pytest.mark.parametrize("version", ["1.0", "1.2", "1.3"])
def test_tls_pair_handshakes_and_carries_data(version):
    pair = TlsPair(host_cert("esxi-test.lab.example"), version, sni="esxi-test.lab.example")
    flights = pair.handshake()
    assert flights[0][0] == "C" and flights[0][1][:1] == b"\x16" and flights[0][1][5] == 1   # ClientHello
    assert flights[1][0] == "S" and flights[1][1][5] == 2                                   # ServerHello
    assert pair.version == {"1.0": "TLSv1", "1.2": "TLSv1.2", "1.3": "TLSv1.3"}[version]
    record = pair.client_write(b"USER root\r\n")
    assert record[0] == 23 and len(record) > 16
    assert pair.server_write(b"x" * 40000)[0] == 23


@pytest.mark.tshark
def test_tshark_decodes_both_handshakes_and_the_certificate(tmp_path):
    sc = scenario.Scenario("tls_check", 7, keylog=tmp_path / "k.keys")
    host = scenario.Host("esxi-tls.lab.example", "10.7.0.11", "esxi8")
    client = scenario.Client("c", "10.7.0.50", "windows")
    flow = scenarios.mks_console(sc, client, host, sc.at(0), 2, tls1="1.2", tls2="1.3")
    labels = sc.write(tmp_path / "tls.pcap")
    events = {e["what"]: e["frame"] for e in labels["connections"][0]["events"]}
    rows = tshark_fields(tmp_path / "tls.pcap", ["frame.number", "tls.handshake.type", "tls.handshake.certificate"],
                         "-d", "tcp.port==902,tls", "-Y", "tls.handshake")
    by_frame = {int(r[0]): r for r in rows}
    assert "1" in by_frame[events["tls1_client_hello"]][1].split(",")
    assert "2" in by_frame[events["tls1_server_hello"]][1].split(",")
    certs = [r[2] for r in rows if r[2]]
    assert certs, "certificate not visible in TLS 1.2 #1"
    der = bytes.fromhex(certs[0].split(",")[0].replace(":", ""))
    assert thumbprint(der) == host.cert.sha1 == flow.label["expected"]["cert_sha1"]
    # TLS #2 starts on the raw stream: a handshake record carrying a ClientHello
    second = events["tls2_client_hello"]
    payload = tshark_fields(tmp_path / "tls.pcap", ["tcp.payload"], "-Y", f"frame.number=={second}")
    hello = bytes.fromhex(payload[0][0].replace(":", ""))
    assert hello[:2] == b"\x16\x03" and hello[5] == 1
    # the key log lets tshark decrypt TLS #1: the authd lines are inside
    plain = tshark_fields(tmp_path / "tls.pcap", ["frame.number", "data.data"], "-d", "tcp.port==902,tls",
                          "-o", f"tls.keylog_file:{tmp_path / 'k.keys'}", "-Y", "data")
    text = {int(n): bytes.fromhex(d.split(",")[0].replace(":", "")) for n, d in plain}
    assert text[events["user"]].startswith(b"USER 52")
    assert text[events["handoff"]].startswith(b"200 Connect /vmfs/volumes/")


# -- dialogue bytes ---------------------------------------------------------------------------

def test_banner_lengths_match_protocol_reference():
    sizes = {"B1": 47, "B2": 61, "B5": 150, "B6": 152, "B7": 170, "B8": 135}
    assert {k: len(authd.banner(k)) for k in sizes} == sizes
    assert authd.banner("B10").startswith(b"220 VMware Authentication Daemon Version 1.0, ")


def test_nfc_and_rfb_message_sizes():
    assert len(nfc.message(nfc.SESSION_COMPLETE)) == 264
    assert nfc.aio(nfc.AIO_IO, 3, nfc.io_request(1, 0, 512))[:4] == b"\x7a\xda\x00\xa1"
    assert len(nfc.io_request(1, 0, 512)) == 44
    assert len(nfc.file_data(b"abc")) == 264 + 8 + 3
    assert len(rfb.key_event(True, 0x61)) == 8 and len(rfb.pointer_event(0, 1, 2)) == 6
    assert len(rfb.update_request(True, 0, 0, 10, 10)) == 10
    assert rfb.set_encodings()[4:8] == struct.pack("!i", rfb.ZRLE)


def test_mks_control_is_the_documented_sequence():
    pace = Pace(random.Random(1))
    steps = authd.mks_control(pace, "52aa", "AAAAAAAAAAAAAAAA", "AB:CD", "/vmfs/volumes/x/vm/vm.vmx")
    assert [s.data for s in steps] == [
        b"USER 52aa\r\n", b"331 Password required for 52aa.\r\n", b"PASS 52aa\r\n",
        b"230 User 52aa logged in.\r\n", b"THUMBPRINT AAAAAAAAAAAAAAAA\r\n", b"200 AB:CD\r\n",
        b"CONNECT /vmfs/volumes/x/vm/vm.vmx mks\r\n", b"200 Connect /vmfs/volumes/x/vm/vm.vmx\r\n"]


# -- samples -------------------------------------------------------------------------------------

def _labels(sample) -> dict:
    return json.loads((SAMPLES_DIR / f"{sample.stem}.labels.json").read_text())


@pytest.mark.parametrize("sample", samples.SAMPLES, ids=lambda s: s.filename)
def test_sample_exists_and_labels_are_complete(sample):
    labels = _labels(sample)
    assert labels["schema"] == LABELS_SCHEMA
    assert labels["capture"]["file"] == sample.filename
    assert (SAMPLES_DIR / sample.filename).exists()
    for conn in labels["connections"]:
        assert conn["feature"] in FEATURES and conn["transport"] in TRANSPORTS
        assert set(conn["expected"]) == set(EXPECTED_DEFAULTS)
        assert conn["frames"]["count"] > 0


def test_samples_fit_the_size_budget():
    total = sum((SAMPLES_DIR / s.filename).stat().st_size for s in samples.SAMPLES)
    assert total < 3.2e6


@pytest.mark.tshark
@pytest.mark.parametrize("sample", samples.SAMPLES, ids=lambda s: s.filename)
def test_sample_agrees_with_tshark(sample):
    labels = _labels(sample)
    path = SAMPLES_DIR / sample.filename
    conns = labels["connections"]
    for proto in ("tcp", "udp"):
        expected = {frozenset((endpoint(c["client"]), endpoint(c["server"]))) for c in conns if c["proto"] == proto}
        assert tshark_conversations(path, proto) == expected, proto
    rows = tshark_fields(path, ["frame.number", "tcp.srcport", "tcp.dstport", "tcp.analysis.flags", "tcp.payload",
                                "tls.handshake.type", "tls.handshake.certificate"],
                         "-d", "tcp.port==902,tls", "-d", "tcp.port==903,tls")
    assert len(rows) == labels["capture"]["packets"]
    frame = {int(r[0]): r for r in rows}
    noisy = {c["client"]["port"] for c in conns if c["outcome"] == "no_answer" or (
        c["conditions"] and (c["conditions"]["injected"] or c["conditions"]["capture_from"]))}
    servers = {c["server"]["port"] for c in conns}
    flagged = {int(r[2]) if int(r[1]) in servers else int(r[1]) for r in rows if r[3]}
    assert flagged <= noisy
    for conn in conns:
        events = {}
        for event in conn["events"]:
            events.setdefault(event["what"], event["frame"])
        payload = {name: bytes.fromhex(frame[n][4].replace(":", "")) for name, n in events.items() if frame[n][4]}
        e = conn["expected"]
        if "banner" in events:
            assert payload["banner"] == e["banner"].encode() + b"\r\n"
        if "tls1_client_hello" in events:
            assert payload["tls1_client_hello"][5] == 1
            assert "1" in frame[events["tls1_client_hello"]][5].split(",")
        if "tls2_client_hello" in events:
            assert payload["tls2_client_hello"][:2] == b"\x16\x03" and payload["tls2_client_hello"][5] == 1
            assert e["tls_handshakes"] == 2
        if "nfc_first_message" in events and e["continues_in_clear"]:
            assert struct.unpack("<I", payload["nfc_first_message"][:4])[0] == nfc.CLIENTRANDOM
        if e["cert_sha1"] and e["tls_version"] in ("TLSv1", "TLSv1.2") and "tls1_server_hello" in events:
            ports = {str(conn["client"]["port"]), str(conn["server"]["port"])}
            first, last = conn["frames"]["first"], conn["frames"]["last"]
            certs = [frame[n][6] for n in range(first, last + 1) if frame[n][6] and {frame[n][1], frame[n][2]} == ports]
            der = bytes.fromhex(certs[0].split(",")[0].replace(":", ""))
            assert thumbprint(der) == e["cert_sha1"]


def _structure(labels: dict) -> list:
    """The parts of the labels that must not change between regenerations with one seed."""
    return [(c["uid"], c["proto"], c["client"], c["server"], c["feature"], c["service"], c["persona"],
             c["transport"], c["outcome"], c["expected"], [e["what"] for e in c["events"]])
            for c in labels["connections"]]


@pytest.mark.parametrize("name", ["esxi8-console.pcap", "legacy-login.pcap", "unanswered-syn.pcap"])
def test_regenerating_a_sample_reproduces_its_labels(tmp_path, name):
    sample = next(s for s in samples.SAMPLES if s.filename == name)
    fresh = samples.write_sample(sample, tmp_path)
    assert _structure(fresh) == _structure(_labels(sample))
    assert fresh["capture"]["packets"] == _labels(sample)["capture"]["packets"]
