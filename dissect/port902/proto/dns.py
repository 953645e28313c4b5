"""DNS messages (RFC 1035 §4): header, questions and the answers a diagnosis needs.

Why it is here: "the console won't open" is most often name resolution (seed article):
the vSphere client learns an ESXi host *name* from vCenter and must resolve it before it
can open 902.  The diagnosis reads DNS over UDP 53 from the capture and asks three
questions of every lookup: did an answer come, what was its RCODE, which addresses did it
give.  Nothing else of DNS matters here, so this parser is small: the 12-byte header, the
question section, A / AAAA / CNAME answers (other types are kept as type and length),
name decompression with loop protection.

Pipeline stage: a side analysis (``infer.diagnose``) hands one UDP payload in and gets a
:class:`Message` back, or :class:`~dissect.port902.errors.Malformed` for bytes that are not
DNS.  Its per-packet path uses the two fast readers instead, :func:`scan_question` and
:func:`answer_addresses`: they build no objects beyond what the diagnosis keeps, and give
exactly what ``parse(data, strict=False)`` gives for those fields (``tests/test_dns.py``
proves it on fuzzed and mutated messages).

A capture is hostile input: names keep their bytes (decoded latin-1, a ``.`` inside a label
escaped as ``\\.``) and are escaped only where they meet a terminal (``report.safe``).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from socket import AF_INET, inet_ntop

from ..errors import Malformed

__all__ = ["HEADER", "RR_FIXED", "QUESTION_FIXED", "RCODES", "TYPES", "CLASSES", "OPCODES",
           "Question", "Record", "Message", "parse", "parse_name", "rcode_name", "type_name",
           "scan_question", "answer_addresses"]

# -- wire layout (RFC 1035 §4.1), in wire order ---------------------------------------------------

#: id, flags, qdcount, ancount, nscount, arcount
HEADER = struct.Struct("!HHHHHH")
#: after the question name: qtype, qclass
QUESTION_FIXED = struct.Struct("!HH")
#: after the owner name: type, class, ttl, rdlength
RR_FIXED = struct.Struct("!HHIH")

# flag bits of the second header word
QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080

MAX_NAME = 255  # RFC 1035 §2.3.4, octets of a whole name on the wire
MAX_POINTERS = 64  # compression jumps before we call it a loop
MAX_RECORDS = 256  # records parsed per section; a message may claim 65535

# -- value names (IANA DNS parameters) -------------------------------------------------------------

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
          6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE"}
OPCODES = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE"}
TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
         33: "SRV", 41: "OPT", 64: "SVCB", 65: "HTTPS", 255: "ANY"}
CLASSES = {1: "IN", 3: "CH", 255: "ANY"}
ADDRESS_TYPES = {1: 4, 28: 16}  # type -> rdata length


def rcode_name(code: int) -> str:
    return RCODES.get(code, f"RCODE{code}")


def type_name(code: int) -> str:
    return TYPES.get(code, f"TYPE{code}")


@dataclass(frozen=True, slots=True)
class Question:
    name: str
    qtype: int
    qclass: int

    @property
    def type_name(self) -> str:
        return type_name(self.qtype)


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record; ``value`` is the address text (A/AAAA), the target name (CNAME)
    or None for types this parser does not read (their ``rdlength`` stays)."""

    name: str
    rtype: int
    rclass: int
    ttl: int
    rdlength: int
    value: str | None = None

    @property
    def type_name(self) -> str:
        return type_name(self.rtype)


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    flags: int
    questions: list[Question] = field(default_factory=list)
    answers: list[Record] = field(default_factory=list)
    authority: int = 0  # records in the authority section (not parsed)
    additional: int = 0
    truncated: bool = False  # the records ran past the bytes we have (lenient parse only)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & QR)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def rcode(self) -> int:
        return self.flags & 0xF

    @property
    def rcode_name(self) -> str:
        return rcode_name(self.rcode)

    @property
    def tc(self) -> bool:
        """The server truncated the answer (the client should retry over TCP)."""
        return bool(self.flags & TC)

    @property
    def question(self) -> Question | None:
        return self.questions[0] if self.questions else None

    def addresses(self) -> list[str]:
        """A and AAAA answers, in order."""
        return [r.value for r in self.answers if r.rtype in ADDRESS_TYPES and r.value is not None]

    def cnames(self) -> list[str]:
        return [r.value for r in self.answers if r.rtype == 5 and r.value is not None]


def _label_text(raw: bytes) -> str:
    return raw.decode("latin-1").replace("\\", "\\\\").replace(".", "\\.")


def parse_name(buf: bytes, offset: int) -> tuple[str, int]:
    """Read a (possibly compressed) name at ``offset``; returns (name, offset after it).

    The root is ``"."``; other names have no trailing dot.  Raises Malformed for a name that
    runs past the buffer, loops, points forward, uses a reserved label type, or exceeds 255
    octets.
    """
    labels: list[str] = []
    pos = offset
    end_of_name: int | None = None
    jumps = 0
    octets = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise Malformed(f"dns: name at {offset} runs past the end of the message")
        length = buf[pos]
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= n:
                raise Malformed("dns: compression pointer cut short")
            target = ((length & 0x3F) << 8) | buf[pos + 1]
            if end_of_name is None:
                end_of_name = pos + 2
            jumps += 1
            if jumps > MAX_POINTERS or target >= pos:
                raise Malformed(f"dns: compression pointer {target} from {pos} loops or points forward")
            pos = target
            continue
        if kind:
            raise Malformed(f"dns: reserved label type {kind:#x} at {pos}")
        if length == 0:
            if end_of_name is None:
                end_of_name = pos + 1
            break
        octets += length + 1
        if octets > MAX_NAME:
            raise Malformed(f"dns: name at {offset} longer than {MAX_NAME} octets")
        if pos + 1 + length > n:
            raise Malformed(f"dns: label at {pos} runs past the end of the message")
        labels.append(_label_text(buf[pos + 1:pos + 1 + length]))
        pos += 1 + length
    return (".".join(labels) if labels else "."), end_of_name


def _record(buf: bytes, pos: int) -> tuple[Record, int]:
    name, pos = parse_name(buf, pos)
    if pos + RR_FIXED.size > len(buf):
        raise Malformed("dns: resource record header cut short")
    rtype, rclass, ttl, rdlength = RR_FIXED.unpack_from(buf, pos)
    pos += RR_FIXED.size
    if pos + rdlength > len(buf):
        raise Malformed(f"dns: rdata of {rdlength} bytes runs past the end of the message")
    value = None
    size = ADDRESS_TYPES.get(rtype)
    if size is not None and rclass == 1:
        if rdlength != size:
            raise Malformed(f"dns: {type_name(rtype)} record with {rdlength} bytes of rdata")
        value = str(ipaddress.ip_address(buf[pos:pos + size]))
    elif rtype == 5:
        value, after = parse_name(buf, pos)
        if after > pos + rdlength:
            raise Malformed("dns: CNAME target runs past its rdata")
    return Record(name, rtype, rclass, ttl, rdlength, value), pos + rdlength


def parse(data: bytes, strict: bool = True) -> Message:
    """Parse one DNS message (the UDP payload).

    The header and the question section must be whole; with ``strict=False`` the answer
    section may be cut short (a snap length, a hostile count) and the message comes back
    with ``truncated=True`` and the answers read so far.
    """
    if len(data) < HEADER.size:
        raise Malformed(f"dns: {len(data)} bytes, a header needs {HEADER.size}")
    txid, flags, qd, an, ns, ar = HEADER.unpack_from(data)
    if flags & 0x0040:  # the Z bit: zero in every message that is really DNS
        raise Malformed("dns: reserved Z bit set")
    if qd > 4:  # real queries carry one question; a few at most
        raise Malformed(f"dns: {qd} questions")
    pos = HEADER.size
    questions = []
    for _ in range(qd):
        name, pos = parse_name(data, pos)
        if pos + QUESTION_FIXED.size > len(data):
            raise Malformed("dns: question cut short")
        qtype, qclass = QUESTION_FIXED.unpack_from(data, pos)
        pos += QUESTION_FIXED.size
        questions.append(Question(name, qtype, qclass))
    answers = []
    truncated = False
    for _ in range(min(an, MAX_RECORDS)):
        try:
            rec, pos = _record(data, pos)
        except Malformed:
            if strict:
                raise
            truncated = True
            break
        answers.append(rec)
    return Message(txid, flags, questions, answers, ns, ar, truncated)


# -- fast readers for the per-packet path -------------------------------------------------------------
#
# ``parse`` builds a Message, a Question and a Record per answer, and the text of every name; a
# diagnosis that sees every DNS packet of a busy capture needs much less: the flags, the first
# question and the address answers.  The two readers below walk the same bytes with the same
# checks as ``parse(data, strict=False)`` (the section order, every bound, the pointer rules of
# ``parse_name``) and return only those fields.  Keep them in step with ``parse``.

_RR_UNPACK = RR_FIXED.unpack_from


def scan_question(data: bytes) -> tuple[int, str | None, int, int]:
    """(flags, first question name or None, its qtype, offset after the question section).

    Raises :class:`Malformed` exactly when ``parse(data, strict=False)`` does (only the
    header and the question section can make it raise); the name is the one
    ``parse(...).question.name`` gives.  A message without a question gives (flags, None, 0, 12).
    """
    n = len(data)
    if n < 12:
        raise Malformed(f"dns: {n} bytes, a header needs {HEADER.size}")
    flags = (data[2] << 8) | data[3]
    if flags & 0x0040:
        raise Malformed("dns: reserved Z bit set")
    qd = (data[4] << 8) | data[5]
    if qd > 4:
        raise Malformed(f"dns: {qd} questions")
    if not qd:
        return flags, None, 0, 12
    # the first name: plain labels inline; a pointer or a reserved label type goes to parse_name
    pos = 12
    octets = 0
    labels: list[bytes] | None  # None: the name needs parse_name
    labels = []
    while True:
        if pos >= n:
            raise Malformed("dns: name at 12 runs past the end of the message")
        length = data[pos]
        if not length:
            break
        if length & 0xC0:
            labels = None
            break
        octets += length + 1
        if octets > MAX_NAME:
            raise Malformed(f"dns: name at 12 longer than {MAX_NAME} octets")
        end = pos + 1 + length
        if end > n:
            raise Malformed(f"dns: label at {pos} runs past the end of the message")
        labels.append(data[pos + 1:end])
        pos = end
    if labels is None:
        name, pos = parse_name(data, 12)
    else:
        pos += 1
        if not labels:
            name = "."
        else:
            raw = b".".join(labels)
            if b"\\" in raw or raw.count(b".") != len(labels) - 1:  # a dot or backslash inside a label
                name = ".".join(_label_text(label) for label in labels)
            else:
                name = raw.decode("latin-1")
    if pos + 4 > n:
        raise Malformed("dns: question cut short")
    qtype = (data[pos] << 8) | data[pos + 1]
    pos += 4
    for _ in range(qd - 1):
        _name, pos = parse_name(data, pos)
        if pos + 4 > n:
            raise Malformed("dns: question cut short")
        pos += 4
    return flags, name, qtype, pos


def _name_end(buf: bytes, pos: int, n: int, jumps: int = 0) -> int:
    """Offset after the (possibly compressed) name at ``pos``, or -1 where ``parse_name`` raises;
    ``jumps`` pointers were already followed to get here (the count that bounds loops)."""
    end = -1
    octets = 0
    while True:
        if pos >= n:
            return -1
        length = buf[pos]
        if length >= 0xC0:
            if pos + 1 >= n:
                return -1
            target = ((length & 0x3F) << 8) | buf[pos + 1]
            if end < 0:
                end = pos + 2
            jumps += 1
            if jumps > MAX_POINTERS or target >= pos:
                return -1
            pos = target
            continue
        if length & 0xC0:
            return -1
        if not length:
            return pos + 1 if end < 0 else end
        octets += length + 1
        if octets > MAX_NAME:
            return -1
        pos += 1 + length
        if pos > n:
            return -1


@lru_cache(maxsize=4096)
def _address_text(raw: bytes) -> str:
    """``str(ipaddress.ip_address(raw))`` (inet_ntop writes IPv4 the same way)."""
    return inet_ntop(AF_INET, raw) if len(raw) == 4 else str(ipaddress.ip_address(raw))


def answer_addresses(data: bytes, pos: int, count: int) -> list[str]:
    """``parse(data, strict=False).addresses()`` for a message whose question section ends at
    ``pos`` and whose header claims ``count`` answers: the A / AAAA values in order, up to the
    first record the lenient parse stops at."""
    out: list[str] = []
    n = len(data)
    valid_targets: dict[int, bool] = {}  # a name that is only a pointer: does the name it points at read?
    for _ in range(min(count, MAX_RECORDS)):
        if pos >= n:
            break
        if data[pos] >= 0xC0 and pos + 1 < n:
            target = ((data[pos] & 0x3F) << 8) | data[pos + 1]
            if target >= pos:
                break
            ok = valid_targets.get(target)
            if ok is None:
                ok = valid_targets[target] = _name_end(data, target, n, 1) >= 0
            if not ok:
                break
            pos += 2
        else:
            pos = _name_end(data, pos, n)
            if pos < 0:
                break
        if pos + 10 > n:
            break
        rtype, rclass, _ttl, rdlength = _RR_UNPACK(data, pos)
        pos += 10
        if pos + rdlength > n:
            break
        if rclass == 1 and (rtype == 1 or rtype == 28):
            if rdlength != (4 if rtype == 1 else 16):
                break
            out.append(_address_text(data[pos:pos + rdlength]))
        elif rtype == 5:
            after = _name_end(data, pos, n)
            if after < 0 or after > pos + rdlength:
                break
        pos += rdlength
    return out
