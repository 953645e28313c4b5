"""DNS parser: byte literals for every section and every way a message can be broken."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dissect.port902.proto import dns
from dissect.port902.errors import Malformed
from dissect.port902.lab import background


def qname(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode("latin-1") for p in name.split(".")) + b"\0"


QUERY = bytes.fromhex("1a2b 0100 0001 0000 0000 0000") + qname("esxi-a.corp.example") + b"\x00\x01\x00\x01"


def test_query_header_and_question():
    m = dns.parse(QUERY)
    assert m.id == 0x1A2B and not m.is_response and m.opcode == 0 and m.rcode_name == "NOERROR"
    (q,) = m.questions
    assert q.name == "esxi-a.corp.example" and q.qtype == 1 and q.type_name == "A" and q.qclass == 1
    assert m.answers == [] and m.question is q


def test_response_with_cname_a_and_aaaa_compressed():
    # answer 1: CNAME of the question name (pointer to 12) -> "esxi-a-mgmt" + pointer to "corp.example"
    corp = 12 + 1 + len("esxi-a")
    cname_rdata = bytes([11]) + b"esxi-a-mgmt" + struct.pack("!H", 0xC000 | corp)
    an1 = struct.pack("!HHHIH", 0xC00C, 5, 1, 300, len(cname_rdata)) + cname_rdata
    target = len(QUERY) + 12  # where the CNAME rdata (the target name) starts in the message
    an2 = struct.pack("!HHHIH", 0xC000 | target, 1, 1, 60, 4) + bytes([10, 40, 0, 11])
    an3 = struct.pack("!HHHIH", 0xC000 | target, 28, 1, 60, 16) + bytes.fromhex("fd000040000000000000000000000011")
    msg = bytes.fromhex("1a2b 8180 0001 0003 0000 0000") + QUERY[12:] + an1 + an2 + an3
    m = dns.parse(msg)
    assert m.is_response and m.rcode == 0 and len(m.answers) == 3
    assert m.cnames() == ["esxi-a-mgmt.corp.example"]
    assert m.addresses() == ["10.40.0.11", "fd00:40::11"]
    assert m.answers[1].name == "esxi-a-mgmt.corp.example" and m.answers[1].ttl == 60
    assert [r.type_name for r in m.answers] == ["CNAME", "A", "AAAA"]


def test_nxdomain_with_soa_authority():
    soa = qname("corp.example") + struct.pack("!HHIH", 6, 1, 300, 22) + bytes(22)
    msg = bytes.fromhex("0001 8183 0001 0000 0001 0000") + QUERY[12:] + soa
    m = dns.parse(msg)
    assert m.rcode_name == "NXDOMAIN" and m.answers == [] and m.authority == 1 and m.addresses() == []


def test_lab_messages_parse():
    q = background.dns_query(7, "vcenter.corp.example", 28)
    r = background.dns_response(q, [bytes(range(16))])
    assert dns.parse(q).question.type_name == "AAAA"
    assert dns.parse(r).addresses() == ["1:203:405:607:809:a0b:c0d:e0f"]


@pytest.mark.parametrize("code,name", [(0, "NOERROR"), (2, "SERVFAIL"), (3, "NXDOMAIN"), (5, "REFUSED"),
                                       (14, "RCODE14")])
def test_rcode_names(code, name):
    msg = struct.pack("!HHHHHH", 1, 0x8180 | code, 0, 0, 0, 0)
    assert dns.parse(msg).rcode_name == name
    assert dns.rcode_name(code) == name


def test_unknown_types_keep_length():
    rr = struct.pack("!HHHIH", 0xC00C, 16, 1, 5, 3) + b"\x02hi"
    m = dns.parse(bytes.fromhex("0001 8180 0001 0001 0000 0000") + QUERY[12:] + rr)
    assert m.answers[0].type_name == "TXT" and m.answers[0].value is None and m.answers[0].rdlength == 3
    assert dns.type_name(4242) == "TYPE4242"


def test_hostile_label_bytes_are_kept_and_dots_escaped():
    evil = b"\x1b[2J" + b"a.b"
    msg = bytes.fromhex("0001 0100 0001 0000 0000 0000") + bytes([len(evil)]) + evil + b"\x03com\x00\x00\x01\x00\x01"
    name = dns.parse(msg).question.name
    assert name == "\x1b[2Ja\\.b.com"  # raw bytes preserved (escaped only on output), inner dot escaped


def test_root_name():
    msg = bytes.fromhex("0001 0100 0001 0000 0000 0000") + b"\x00\x00\x02\x00\x01"
    assert dns.parse(msg).question.name == "."


@pytest.mark.parametrize("data,why", [
    (b"", "header"),
    (b"\x00" * 11, "header"),
    (bytes.fromhex("0001 0140 0000 0000 0000 0000"), "Z bit"),
    (bytes.fromhex("0001 0100 0009 0000 0000 0000"), "questions"),
    (bytes.fromhex("0001 0100 0001 0000 0000 0000") + b"\x05ab", "past the end"),
    (bytes.fromhex("0001 0100 0001 0000 0000 0000") + b"\xc0\x0c\x00\x01\x00\x01", "loops or points forward"),
    (bytes.fromhex("0001 0100 0001 0000 0000 0000") + b"\x01a\xc0\x20" + bytes(20), "forward"),
    (bytes.fromhex("0001 0100 0001 0000 0000 0000") + b"\x40abc\x00\x00\x01\x00\x01", "reserved label"),
    (bytes.fromhex("0001 0100 0001 0000 0000 0000") + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01",
     "longer than"),
    (bytes.fromhex("0001 0100 0001 0000 0000 0000") + b"\x01a\x00\x00", "question cut short"),
    (bytes.fromhex("0001 0100 0001 0000 0000 0000") + b"\xc0", "pointer cut short"),
])
def test_malformed(data, why):
    with pytest.raises(Malformed, match=why):
        dns.parse(data)


def test_bad_address_length_is_malformed():
    rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 3) + b"\x01\x02\x03"
    with pytest.raises(Malformed, match="rdata"):
        dns.parse(bytes.fromhex("0001 8180 0001 0001 0000 0000") + QUERY[12:] + rr)


def test_truncated_answers_strict_and_lenient():
    rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + bytes([10, 0, 0, 1])
    msg = bytes.fromhex("0001 8180 0001 0002 0000 0000") + QUERY[12:] + rr + rr[:7]
    with pytest.raises(Malformed):
        dns.parse(msg)
    m = dns.parse(msg, strict=False)
    assert m.truncated and m.addresses() == ["10.0.0.1"]


def test_hostile_answer_count_is_bounded():
    rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + bytes(4)
    msg = bytes.fromhex("0001 8180 0001 ffff 0000 0000") + QUERY[12:] + rr * 300
    m = dns.parse(msg, strict=False)
    assert len(m.answers) == dns.MAX_RECORDS


labels = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=".\\"),
                 min_size=1, max_size=20)


@given(st.lists(labels, min_size=1, max_size=5), st.sampled_from([1, 28, 255]), st.integers(0, 0xFFFF))
def test_query_round_trip(parts, qtype, txid):
    name = ".".join(parts)
    m = dns.parse(background.dns_query(txid, name, qtype))
    assert m.question.name == name and m.question.qtype == qtype and m.id == txid


@settings(max_examples=400)
@given(st.binary(max_size=600), st.booleans())
def test_fuzz_never_crashes(data, strict):
    try:
        m = dns.parse(data, strict=strict)
    except Malformed:
        return
    assert isinstance(m.rcode_name, str)
    for r in m.answers:
        assert isinstance(r.name, str)


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=80), st.integers(0, 200))
def test_fuzz_mutated_response(noise, at):
    rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + bytes([10, 0, 0, 1])
    msg = bytearray(bytes.fromhex("0001 8180 0001 0001 0000 0000") + QUERY[12:] + rr)
    at %= len(msg)
    msg[at:at + len(noise)] = noise
    try:
        dns.parse(bytes(msg), strict=False)
    except Malformed:
        pass


# -- the fast readers (scan_question, answer_addresses) give exactly what parse gives ---------------------------

def full_parse_view(data: bytes):
    """What the diagnosis reads of ``parse(data, strict=False)``: None when it raises, else
    (flags, first question name, its qtype, addresses)."""
    try:
        m = dns.parse(data, strict=False)
    except Malformed:
        return None
    q = m.question
    return m.flags, q.name if q else None, q.qtype if q else 0, m.addresses()


def fast_view(data: bytes):
    try:
        flags, name, qtype, pos = dns.scan_question(data)
    except Malformed:
        return None
    return flags, name, qtype, dns.answer_addresses(data, pos, (data[6] << 8) | data[7])


def assert_same_view(data: bytes):
    assert fast_view(data) == full_parse_view(data), data.hex()


@pytest.mark.parametrize("data", [
    QUERY,
    bytes.fromhex("0001 0100 0001 0000 0000 0000") + b"\x00\x00\x02\x00\x01",  # the root
    bytes.fromhex("0001 0100 0001 0000 0000 0000") + b"\x04\x1b[.b\x03c\\m\x00\x00\x01\x00\x01",  # dot, backslash
    bytes.fromhex("0001 0100 0001 0000 0000 0000") + b"\x2e" + b"a" * 46 + b"\x00\x00\x01\x00\x01",  # length 0x2e
    bytes.fromhex("0001 0100 0001 0000 0000 0000") + b"\x01a\xc0\x00\x00\x01\x00\x01",  # pointer into the header
    bytes.fromhex("0001 0100 0002 0000 0000 0000") + QUERY[12:] + b"\xc0\x0c\x00\x1c\x00\x01",  # 2nd question
    bytes.fromhex("0001 0100 0002 0000 0000 0000") + QUERY[12:] + b"\xc0\x40\x00\x1c\x00\x01",  # bad 2nd one
    bytes.fromhex("0001 2100 0001 0000 0000 0000") + QUERY[12:],  # opcode 4
    QUERY[:-1], QUERY[:-2], QUERY[:-3], QUERY[:-4], QUERY[:-5], QUERY[:12],
    bytes.fromhex("0001 0100 0001 0000 0000 0000") + b"\x03a.b\x03com\x00\x00\x01\x00\x01",  # a dot, no backslash
    bytes.fromhex("0001 8180 0000 0001 0000 0000") + struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + bytes(4),
])
def test_fast_readers_on_edge_cases(data):
    assert_same_view(data)


def test_fast_readers_on_every_answer_shape():
    a = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + bytes([10, 0, 0, 1])
    aaaa = struct.pack("!HHHIH", 0xC00C, 28, 1, 60, 16) + bytes(range(16))
    chaos_a = struct.pack("!HHHIH", 0xC00C, 1, 3, 60, 4) + bytes(4)  # class CH: no address
    bad_len = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 3) + bytes(3)
    cname_bad = struct.pack("!HHHIH", 0xC00C, 5, 1, 60, 2) + b"\xc0\xff"  # target points forward
    cname_long = struct.pack("!HHHIH", 0xC00C, 5, 1, 60, 1) + b"\x01a\x00"  # target past its rdata
    forward = struct.pack("!HHHIH", 0xC0FF, 1, 1, 60, 4) + bytes(4)
    # a CNAME whose target ("a" + pointer) runs 2 bytes past its rdata, into a record that would read
    cname_overlap = struct.pack("!HHHIH", 0xC00C, 5, 1, 60, 2) + b"\x01a" + a
    to_header = struct.pack("!HHHIH", 0xC002, 1, 1, 60, 4) + bytes(4)  # points at the flags: label type 0x80
    reserved = b"\x41" + b"a" * 65 + b"\x00" + a[2:]  # label type 0x40
    for answers in ([a, aaaa], [a, chaos_a, aaaa], [a, bad_len, aaaa], [a, cname_bad, aaaa], [a, cname_long, aaaa],
                    [forward, a], [a, a[:9]], [a] * 300, [qname("x.y") + a[2:]], [cname_overlap, a],
                    [to_header, a], [reserved, a], [a, to_header, a]):
        data = bytes.fromhex(f"0001 8180 0001 {len(answers):04x} 0000 0000") + QUERY[12:] + b"".join(answers)
        assert_same_view(data)
        assert_same_view(data[:-1])


@pytest.mark.parametrize("octets", [254, 255, 256])
def test_fast_readers_at_the_name_length_limit(octets):
    labels = [b"a" * 63] * ((octets - 1) // 64) + [b"b" * ((octets - 1) % 64 - 1)]
    long_name = b"".join(bytes([len(x)]) + x for x in labels if x) + b"\x00"
    a = struct.pack("!HHIH", 1, 1, 60, 4) + bytes([10, 0, 0, 1])
    head = bytes.fromhex("0001 8180 0001 0002 0000 0000")
    assert_same_view(head + long_name + b"\x00\x01\x00\x01")  # the question
    assert_same_view(head + QUERY[12:] + long_name + a + b"\xc0\x0c" + a)  # an owner name
    cname = struct.pack("!HHHIH", 0xC00C, 5, 1, 60, len(long_name)) + long_name
    assert_same_view(head + QUERY[12:] + cname + b"\xc0\x0c" + a)  # a CNAME target
    suffix = 12 + len(QUERY[12:]) + 12  # a pointer whose target makes the name too long
    assert_same_view(head + QUERY[12:] + cname + b"\x01z\xc0" + bytes([suffix]) + a)


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_fast_readers_on_random_bytes(data):
    assert_same_view(data)
    assert_same_view(bytes.fromhex("0001 8180 0001 0003 0000 0000") + data)


@st.composite
def dns_messages(draw):
    """Messages shaped like DNS, with compression pointers (good and bad), odd labels,
    every answer type the readers treat differently, then cut or overwritten."""
    def name(at: int) -> bytes:
        out = b""
        for label in draw(st.lists(st.binary(min_size=0, max_size=66), max_size=4)):
            out += bytes([min(len(label), 63) | draw(st.sampled_from([0, 0, 0, 0x40, 0x80]))]) + label[:63]
        end = draw(st.sampled_from(["zero", "zero", "pointer", "pointer12"]))
        if end == "zero":
            return out + b"\x00"
        target = 12 if end == "pointer12" else draw(st.integers(0, at + len(out) + 4))
        return out + struct.pack("!H", 0xC000 | target)

    flags = draw(st.sampled_from([0x0100, 0x8180, 0x8183, 0x8182, 0x8380, 0x8580, 0x0140, 0x2900])) \
        ^ draw(st.sampled_from([0, 0, 0, draw(st.integers(0, 0xFFFF))]))
    qd = draw(st.sampled_from([0, 1, 1, 1, 2, 5]))
    rrs = draw(st.integers(0, 4))
    an = draw(st.sampled_from([rrs, rrs, rrs + 1, 300]))
    m = struct.pack("!HHHHHH", draw(st.integers(0, 0xFFFF)), flags, qd, an, 0, 0)
    for _ in range(min(qd, 3)):
        m += name(len(m)) + struct.pack("!HH", draw(st.sampled_from([1, 28, 255, 5, 12])), 1)
    for _ in range(rrs):
        m += b"\xc0\x0c" if draw(st.booleans()) else name(len(m))
        rtype = draw(st.sampled_from([1, 28, 5, 1, 28, 2]))
        rclass = draw(st.sampled_from([1, 1, 1, 3]))
        if rtype == 5:
            rdata = name(len(m) + 10)
        else:
            rdata = draw(st.binary(min_size=0, max_size=20)) if draw(st.booleans()) else \
                bytes(draw(st.sampled_from([4, 16])))
        rdlength = len(rdata) + draw(st.sampled_from([0, 0, 0, -1, 1]))
        m += struct.pack("!HHIH", rtype, rclass, 300, max(0, rdlength)) + rdata
    if draw(st.booleans()):
        m = m[:draw(st.integers(0, len(m)))]
    if m and draw(st.booleans()):
        at = draw(st.integers(0, len(m) - 1))
        m = m[:at] + bytes([draw(st.integers(0, 255))]) + m[at + 1:]
    return m


@settings(max_examples=1500, deadline=None)
@given(dns_messages())
def test_fast_readers_on_structured_messages(data):
    assert_same_view(data)


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=80), st.integers(0, 200))
def test_fast_readers_on_mutated_responses(noise, at):
    q = background.dns_query(7, "esx-01.corp.example", 28)
    msg = bytearray(background.dns_response(q, [bytes(range(16)), bytes(16)]))
    at %= len(msg)
    msg[at:at + len(noise)] = noise
    assert_same_view(bytes(msg))
