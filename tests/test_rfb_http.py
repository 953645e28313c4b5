"""proto/rfb.py and proto/http.py: bytes in, objects out, whatever the chunking."""

import random
import struct

import pytest

from dissect.port902.lab import rfb as labrfb
from dissect.port902.proto.http import HttpStream
from dissect.port902.proto.rfb import RfbParser


def _feed(parser, from_client, data, step):
    out = []
    for i in range(0, len(data), step):
        out += parser.feed(from_client, data[i:i + step], float(i), i)
    return out


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_mks_stream(step):
    rng = random.Random(5)
    screen = labrfb.Screen(rng, 1280, 720, "db-02")
    client = (b"A" * 16 + labrfb.set_pixel_format() + labrfb.set_encodings()
              + labrfb.update_request(False, 0, 0, 1280, 720)
              + b"".join(labrfb.key_event(d, 0x61 + i) for i in range(5) for d in (True, False))
              + labrfb.pointer_event(1, 10, 20))
    server = (screen.server_init() + screen.cursor_shape()
              + screen.pseudo(labrfb.VMWARE_LED_STATE, payload=struct.pack("!I", 2))
              + screen.update([(0, 0, 1280, 720, 0.3), (5, 5, 64, 64, 1.0)]) + b"\x02")
    p = RfbParser()
    c = _feed(p, True, client, step)
    s = _feed(p, False, server, step)
    assert [m.name for m in c][:4] == ["Token", "SetPixelFormat", "SetEncodings", "FramebufferUpdateRequest"]
    assert sum(m.name == "KeyEvent" for m in c) == 10 and c[-1].fields == {"buttons": 1, "x": 10, "y": 20}
    assert (p.width, p.height, p.name) == (1280, 720, "db-02")
    updates = [m for m in s if m.name == "FramebufferUpdate"]
    assert [u.fields["encodings"] for u in updates] == [{"VMwareCursor": 1}, {"VMwareLEDState": 1}, {"ZRLE": 2}]
    assert sum(m.length for m in s) == len(server) and s[-1].name == "Bell"
    assert p.weird == []


def test_plain_vnc_opening_and_unknown_encoding():
    p = RfbParser(mks=False)
    server = b"RFB 003.008\n" + b"\x01\x01" + b"\x00\x00\x00\x00" + struct.pack("!HH", 640, 480) \
        + labrfb.PIXEL_FORMAT + struct.pack("!I", 3) + b"vm1"
    client = b"RFB 003.008\n" + b"\x01" + b"\x01"
    assert [m.name for m in p.feed(True, client, 0, 1)] == ["ProtocolVersion", "SecurityChoice", "ClientInit"]
    names = [m.name for m in p.feed(False, server, 0, 2)]
    assert names == ["ProtocolVersion", "SecurityTypes", "SecurityResult", "ServerInit"] and p.width == 640
    bad = struct.pack("!BxH", 0, 1) + struct.pack("!HHHHi", 0, 0, 8, 8, 21) + b"\x00" * 50  # JPEG: length unknown
    assert p.feed(False, bad, 1, 3) == [] and p.weird and p.weird[0][2] == "rfb_desync"
    assert p.feed(False, b"\x02", 2, 4) == []  # stopped: nothing more is guessed


@pytest.mark.parametrize("step", [1, 5, 10000])
def test_http_stream(step):
    req = (b"POST /sdk HTTP/1.1\r\nHost: esx\r\nSOAPAction: \"urn:vim25/8.0.2.0\"\r\nCookie: vmware_soap_session=x\r\n"
           b"Content-Length: 11\r\n\r\n<Envelope/>" + b"GET /folder HTTP/1.1\r\nAuthorization: Basic eA==\r\n\r\n")
    resp = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/xml\r\n\r\n"
            b"4\r\nabcd\r\n3;x=1\r\nefg\r\n0\r\n\r\n" + b"HTTP/1.1 500 Internal\r\nContent-Length: 2\r\n\r\nno"
            + b"HTTP/1.0 200 OK\r\n\r\nrest of the stream")
    c, s = HttpStream(True), HttpStream(False)
    cm = [m for i in range(0, len(req), step) for m in c.feed(req[i:i + step], 0.0, i)]
    sm = [m for i in range(0, len(resp), step) for m in s.feed(resp[i:i + step], 0.0, i)] + s.finish()
    assert [(m.method, m.target, m.body_bytes, m.credentials) for m in cm] == [
        ("POST", "/sdk", 11, True), ("GET", "/folder", 0, True)]
    assert cm[0].soap_action == "urn:vim25/8.0.2.0"
    assert [(m.status, m.body_bytes) for m in sm] == [(200, 7), (500, 2), (200, 18)]
    assert sm[0].content_type == "text/xml" and "Basic" not in repr(cm) and "vmware_soap_session" not in repr(cm)
