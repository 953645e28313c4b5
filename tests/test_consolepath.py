"""Console paths on 443/7331/7343: HTTP request lines, ClientHello SNI, per-connection outcome."""

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissect.port902.analyzers import consolepath as cp
from dissect.port902.proto import http
from dissect.port902.analysis import analyze
from dissect.port902.io.capture import IPPROTO_TCP, Packet
from dissect.port902.net.tcp import STATES
from dissect.port902.infer.diagnose import Diagnostics
from dissect.port902.lab.certs import host_cert
from dissect.port902.lab.tlsbio import TlsPair

DOCTOR = Path(__file__).resolve().parent.parent / "samples" / "doctor"
SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08

WEBMKS = (b"GET /ticket/52cf8c6493437cb7d1511bfc481bb7d5 HTTP/1.1\r\nHost: esxi-a.corp.example\r\n"
          b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
RELAY = (b"GET /console/?vmId=vm-42&vmName=web01&host=vc:443&sessionTicket=cst-VCT-52e5--tp-B5-72"
         b"&thumbprint=AA:BB HTTP/1.1\r\nHost: vc:7331\r\nUpgrade: websocket\r\n\r\n")


def hello(sni=None, version="1.2") -> bytes:
    pair = TlsPair(host_cert("consolepath.test"), version, sni=sni)
    return pair.handshake()[0][1]


def test_http_request_webmks():
    req = http.parse_http_request(WEBMKS)
    assert req.method == "GET" and req.target.startswith("/ticket/") and req.version == "1.1"
    assert req.upgrade == "websocket" and req.host == "esxi-a.corp.example"


def test_http_request_cut_by_segment_keeps_what_came():
    req = http.parse_http_request(WEBMKS[:70])
    assert req is not None and req.target.startswith("/ticket/") and req.upgrade is None


@pytest.mark.parametrize("data", [b"", b"GET", b"HTTP/1.1 101 Switching Protocols\r\n\r\n", b"\x16\x03\x01\x00\x05",
                                  b"GET /x HTTP/2\r\n", b"GET  /x HTTP/1.1\r\n"])
def test_not_a_request(data):
    assert http.parse_http_request(data) is None


def test_redaction():
    assert http.redact_target("/ticket/52cf8c6493437cb7") == "/ticket/<redacted>"
    red = http.redact_target(http.parse_http_request(RELAY).target)
    assert "sessionTicket=<redacted>" in red and "cst-VCT" not in red and "thumbprint=AA:BB" in red
    assert http.redact_target("/sdk") == "/sdk"


def test_client_hello_sni_complete_and_truncated():
    data = hello("esxi-a.corp.example")
    sni, alpn, complete = cp.client_hello_info(data)
    assert sni == "esxi-a.corp.example" and complete
    # the same hello cut where a segment could end: SNI still read when its extension came whole
    found = [cp.client_hello_info(data[:n]) for n in range(9, len(data))]
    assert all(f is None or f[0] in (None, "esxi-a.corp.example") for f in found)
    assert any(f and f[0] == "esxi-a.corp.example" and not f[2] for f in found)
    assert cp.client_hello_info(hello())[0] is None


def test_client_hello_tls13():
    assert cp.client_hello_info(hello("vcenter.corp.example", "1.3"))[0] == "vcenter.corp.example"


@pytest.mark.parametrize("data", [b"", b"\x16\x03\x01", b"\x17\x03\x03\x00\x10" + bytes(16),
                                  b"\x16\x03\x03\x00\x04\x02\x00\x00\x00", b"GET / HTTP/1.1\r\n"])
def test_not_a_client_hello(data):
    assert cp.client_hello_info(data) is None


def conn(**kw):
    c = cp.ConsoleConn("10.0.0.1", 50000, kw.pop("server", "10.0.0.5"), kw.pop("port", 443), 0.0, 1)
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def test_classify():
    assert cp.classify(conn(port=7331)) == "vcenter-relay"
    assert cp.classify(conn(target="/console/?vmId=1")) == "vcenter-relay"
    assert cp.classify(conn(target="/ticket/abc")) == "esxi-webmks"
    assert cp.classify(conn(target="/sdk")) == "vsphere-api"
    assert cp.classify(conn(), esxi_ips={"10.0.0.5"}) == "esxi-https"
    assert cp.classify(conn(upgrade="websocket"), esxi_ips={"10.0.0.5"}) == "esxi-webmks"
    assert cp.classify(conn(), vcenter_ips={"10.0.0.5"}) == "vcenter-https"
    assert cp.classify(conn()) == "https"


# -- the tracker, fed packets by hand ----------------------------------------------------------------------

C, S = ipaddress.ip_address("10.0.0.1").packed, ipaddress.ip_address("10.0.0.5").packed


def pkt(frame, ts, from_client, flags, payload=b"", sport=50000, port=443):
    src, dst, sp, dp = (C, S, sport, port) if from_client else (S, C, port, sport)
    return Packet(frame, ts, IPPROTO_TCP, src, dst, sp, dp, 0, 0, flags, 1000, payload, len(payload), 60)


def test_tracker_full_connection():
    t = cp.ConsolePathTracker()
    t.feed(pkt(1, 0.0, True, SYN))
    t.feed(pkt(2, 0.001, False, SYN | ACK))
    t.feed(pkt(3, 0.002, True, ACK | PSH, hello("esxi-a.corp.example")))
    t.feed(pkt(4, 0.004, False, ACK | PSH, b"\x16\x03\x03\x00\x30\x02" + bytes(50)))
    t.feed(pkt(9, 5.0, True, FIN | ACK))
    t.feed(pkt(10, 5.001, False, FIN | ACK))
    t.close()
    (c,) = t.connections()
    assert (c.state, c.sni, c.syn_frame, c.synack_frame, c.hello_frame, c.server_hello_frame) == \
        ("closed", "esxi-a.corp.example", 1, 2, 3, 4)
    assert c.duration_s == pytest.approx(5.001) and c.frames == [1, 2, 3, 4]
    assert t.live == 0 and t.table == {}


def test_tracker_no_answer_refused_and_port_reuse():
    t = cp.ConsolePathTracker()
    for i in range(3):
        t.feed(pkt(1 + i, float(i), True, SYN, port=7343))
    t.feed(pkt(5, 4.0, True, SYN, sport=50001, port=7331))
    t.feed(pkt(6, 4.001, False, RST | ACK, sport=50001, port=7331))
    t.feed(pkt(7, 6.0, True, SYN, sport=50001, port=7331))  # the same 4-tuple again: a new attempt
    t.close()
    states = sorted((c.server_port, c.state, c.syn_count) for c in t.connections())
    assert states == [(7331, "no_answer", 1), (7331, "refused", 1), (7343, "no_answer", 3)]


def test_tracker_http_request_and_midstream():
    t = cp.ConsolePathTracker()
    t.feed(pkt(1, 0.0, True, ACK | PSH, RELAY, port=7331))  # no SYN seen: picked up mid-way
    t.feed(pkt(2, 1.0, False, FIN | ACK, port=7331))
    t.feed(pkt(3, 2.0, True, FIN | ACK, sport=40000))  # a lone FIN of a connection never seen: ignored
    t.close()
    (c,) = t.connections()
    assert c.client_ip == "10.0.0.1" and c.server_port == 7331 and c.state == "partial"
    assert c.method == "GET" and c.upgrade == "websocket" and c.request_frame == 1
    d = c.to_dict()
    assert "<redacted>" in d["http_target"] and "cst-VCT" in c.to_dict(show_secrets=True)["http_target"]


def test_tracker_memory_is_bounded():
    t = cp.ConsolePathTracker(max_live=10, max_finished=25)
    for i in range(100):
        t.feed(pkt(i + 1, float(i), True, SYN, sport=30000 + i))
    assert t.live <= 10 and len(t.table) <= 20
    t.close()
    assert len(t.finished) == 25 and t.dropped == 75


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_fuzz_segment_parsers(data):
    http.parse_http_request(data)
    cp.client_hello_info(data)
    cp.client_hello_info(b"\x16\x03\x01" + data)
    cp.client_hello_info(b"\x16\x03\x01\x01\x00\x01\x00\x00\xfc\x03\x03" + data)


@settings(max_examples=100)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([SYN, SYN | ACK, ACK, FIN | ACK, RST, ACK | PSH]),
                          st.binary(max_size=40), st.sampled_from([50000, 50001])), max_size=30))
def test_fuzz_tracker(events):
    t = cp.ConsolePathTracker(max_live=4, max_finished=8)
    for n, (from_client, flags, payload, sport) in enumerate(events, 1):
        t.feed(pkt(n, n * 0.1, from_client, flags, payload, sport=sport))
    t.close()
    for c in t.connections():
        assert c.state in STATES


# -- on lab captures -------------------------------------------------------------------------------------

def paths_of(name, **kw):
    return analyze(DOCTOR / name, observers=[Diagnostics(**kw)]).extras["diagnostics"].console_paths


def test_relay_paths_in_html5_capture():
    paths = paths_of("html5-console.pcap")
    relay = [p for p in paths if p["kind"] == "vcenter-relay"]
    assert sorted(p["server_port"] for p in relay) == [7331, 7343]
    clear = next(p for p in relay if p["server_port"] == 7331)
    target = clear["http_target"]
    assert target.startswith("/console/?vmId=vm-42") and "sessionTicket=<redacted>" in target
    assert clear["upgrade"] == "websocket" and clear["client"].startswith("10.40.8.35:")
    tls = next(p for p in relay if p["server_port"] == 7343)
    assert tls["sni"] == "vcenter.corp.example" and tls["http_target"] is None
    mks = [p for p in paths if p["kind"] == "authd-902-mks"]
    assert len(mks) == 1 and mks[0]["client"].startswith("10.40.0.5:") and mks[0]["session_uid"]
    shown = paths_of("html5-console.pcap", show_secrets=True)
    assert any("cst-VCT-" in (p["http_target"] or "") for p in shown)


def test_webmks_on_esxi_443():
    paths = paths_of("esxi-webmks.pcap")
    (webmks,) = [p for p in paths if p["kind"] == "esxi-https"]
    assert webmks["sni"] == "esxi-a.corp.example" and webmks["server"] == "10.40.0.11:443"
    assert webmks["state"] == "closed" and webmks["duration_s"] > 3
    assert any(p["kind"] == "vcenter-https" for p in paths)
