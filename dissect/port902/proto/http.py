"""HTTP/1.x: request heads (RFC 9112 §3) and redaction of targets; whole message streams.

What a console path shows in clear on 7331 (vCenter's relay) and what SOAP over 902 starts with.
Tickets in request targets are credentials: :func:`redact_target` replaces them by their place in
the target's grammar (RFC 3986 §3: path segments, query, matrix and fragment parameters,
userinfo), never by searching for their value.

:class:`HttpStream` follows one direction of a connection as decrypted from TLS #1 (SOAP to
hostd's ServerDaemonProtocol): RFC 9112 §2-§7, a start line (request or status), header fields up
to an empty line, then a body of Content-Length bytes or chunked transfer coding (§7.1); a
response with neither runs to the end of the stream.  ``SOAPAction`` is the SOAP 1.1 header
(W3C SOAP 1.1 §6.1.1).  Bytes in, :class:`HttpMessage` objects out; bodies are counted, never
kept; credential headers (Authorization, Cookie, Set-Cookie) are never kept, only whether they
were present.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

__all__ = ["HttpRequest", "parse_http_request", "redact_target", "REDACTED", "HTTP_METHODS",
           "HttpMessage", "HttpStream", "looks_like_http"]

_REQUEST_LINE = re.compile(rb"^(GET|POST|PUT|HEAD|OPTIONS|DELETE|CONNECT|PATCH) (\S{1,2048}) HTTP/(1\.[01])\r?\n")
_SECRET_NAME = re.compile(r"ticket|session|token|passw|secret|saml|cookie|credential", re.I)
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")
_PARAM_SEP = re.compile(r"([&;])")
MAX_REQUEST = 4096  # bytes of a request head read (the line, then headers up to the blank line)
REDACTED = "<redacted>"
#: request methods an HTTP message in an authd stream may start with (SOAP over 902, probes)
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "PATCH"})


# -- parsers over one segment ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: str  # as sent (latin-1), not redacted
    version: str
    headers: dict[str, str]  # lower-case names, first occurrence wins

    @property
    def upgrade(self) -> str | None:
        return self.headers.get("upgrade")

    @property
    def host(self) -> str | None:
        return self.headers.get("host")


def parse_http_request(payload: bytes) -> HttpRequest | None:
    """The request line and headers of an HTTP/1.x request at the start of ``payload``;
    None when it does not start like one.  Headers cut by the segment end are kept as far
    as they go."""
    head = payload[:MAX_REQUEST]
    m = _REQUEST_LINE.match(head)
    if m is None:
        return None
    headers: dict[str, str] = {}
    for raw in head[m.end():].split(b"\n"):
        line = raw.rstrip(b"\r")
        if not line:
            break
        name, sep, value = line.partition(b":")
        if not sep or not name or b" " in name:
            continue
        key = name.decode("latin-1").strip().lower()
        headers.setdefault(key, value.decode("latin-1").strip())
    return HttpRequest(m.group(1).decode(), m.group(2).decode("latin-1"), m.group(3).decode(), headers)


def redact_target(target: str) -> str:
    """A request target with its secrets replaced by ``<redacted>``, found by their place, never
    by their value: the path segment after a ``ticket`` segment (``/ticket/<ticket>``), the value
    of a query, matrix (``;``) or fragment parameter whose percent-decoded name says ticket,
    session, token, password, secret, SAML, cookie or credential, and ``user:password@`` of an
    absolute-form target."""
    head = ""
    m = _ABSOLUTE.match(target)
    if m:
        start, end = m.span(1)
        at = target.rfind("@", start, end)
        head = target[:start] + (REDACTED + target[at:end] if at >= 0 else target[start:end])
        target = target[end:]
    body, hashmark, fragment = target.partition("#")
    path, qmark, query = body.partition("?")
    segments = path.split("/")
    for i, seg in enumerate(segments):
        # segments[i - 1] is already rewritten here: a ticket that reads "ticket" (now redacted)
        # does not make the segment after it a ticket too
        name, semi, params = seg.partition(";")
        if i and name and unquote_plus(segments[i - 1].partition(";")[0]).lower() == "ticket":
            name = REDACTED
        segments[i] = name + semi + _redact_params(params)
    return head + "/".join(segments) + qmark + _redact_params(query) + hashmark + _redact_params(fragment)


def _redact_params(text: str) -> str:
    """``name=value`` pairs separated by ``&`` or ``;``, with secret-named values redacted."""
    if "=" not in text:
        return text
    parts = _PARAM_SEP.split(text)
    for i in range(0, len(parts), 2):
        name, eq, value = parts[i].partition("=")
        if eq and value and _SECRET_NAME.search(unquote_plus(name)):
            parts[i] = name + "=" + REDACTED
    return "".join(parts)


# -- message streams (decrypted TLS #1) ---------------------------------------------------------------

MAX_HEAD = 64 * 1024
METHODS = frozenset({b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS", b"DELETE", b"PATCH"})


def looks_like_http(data: bytes) -> bool:
    """A request line or a status line starts here."""
    word = data.split(b" ", 1)[0]
    return word in METHODS or data.startswith(b"HTTP/1.")


@dataclass(frozen=True, slots=True)
class HttpMessage:
    ts: float
    frame: int
    from_client: bool
    method: str | None
    target: str | None
    status: int | None
    reason: str | None
    soap_action: str | None
    content_type: str | None
    body_bytes: int
    header_bytes: int
    credentials: bool  # an Authorization / Cookie / Set-Cookie header was present (its value is not kept)
    complete: bool = True


class HttpStream:
    """One direction of an HTTP/1.x connection."""

    def __init__(self, from_client: bool) -> None:
        self.from_client = from_client
        self.buf = bytearray()
        self.head: dict | None = None  # the message whose body is being counted
        self.left = 0  # body bytes still to come (Content-Length); -1: chunked; -2: to the end
        self.chunk_state = 0  # chunked: 0 size line, 1 data, 2 CRLF after data, 3 trailers
        self.chunk_left = 0
        self.body = 0
        self.stopped: str | None = None

    def feed(self, data: bytes, ts: float, frame: int) -> list[HttpMessage]:
        out: list[HttpMessage] = []
        if self.stopped:
            return out
        self.buf += data
        while self.buf and not self.stopped:
            if self.head is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > MAX_HEAD:
                        self.stopped = "header block too long"
                    break
                self._start(bytes(self.buf[:end]), end + 4, ts, frame)
                del self.buf[:end + 4]
                if self.left == 0:
                    out.append(self._done())
                continue
            if self.left > 0:
                n = min(self.left, len(self.buf))
                self.body += n
                self.left -= n
                del self.buf[:n]
                if self.left == 0:
                    out.append(self._done())
            elif self.left == -2:
                self.body += len(self.buf)
                self.buf.clear()
            elif not self._chunked(out):
                break
        return out

    def finish(self) -> list[HttpMessage]:
        if self.head is not None:
            msg = self._done(complete=self.left == -2)
            return [msg]
        return []

    def _start(self, raw: bytes, head_len: int, ts: float, frame: int) -> None:
        lines = raw.decode("latin-1").split("\r\n")
        first = lines[0].split(" ", 2)
        h: dict = {"ts": ts, "frame": frame, "header_bytes": head_len, "credentials": False}
        if first[0].startswith("HTTP/"):
            h["status"] = int(first[1]) if len(first) > 1 and first[1].isdigit() else None
            h["reason"] = first[2] if len(first) > 2 else None
        else:
            h["method"], h["target"] = first[0], (first[1] if len(first) > 1 else None)
        length, chunked = None, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key, value = name.strip().lower(), value.strip()
            if key in ("authorization", "proxy-authorization", "cookie", "set-cookie"):
                h["credentials"] = True
            elif key == "soapaction":
                h["soap_action"] = value.strip('"')
            elif key == "content-type":
                h["content_type"] = value
            elif key == "content-length" and value.isdigit():
                length = int(value)
            elif key == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        self.head, self.body = h, 0
        if chunked:
            self.left, self.chunk_state = -1, 0
        elif length is not None:
            self.left = length
        elif "status" in h and h["status"] not in (204, 304) and not (100 <= (h["status"] or 0) < 200):
            self.left = -2
        else:
            self.left = 0

    def _chunked(self, out: list) -> bool:
        b = self.buf
        if self.chunk_state == 0:
            nl = b.find(b"\r\n")
            if nl < 0:
                return False
            try:
                self.chunk_left = int(bytes(b[:nl]).split(b";")[0].strip() or b"0", 16)
            except ValueError:
                self.stopped = "bad chunk size"
                return False
            del b[:nl + 2]
            self.chunk_state = 1 if self.chunk_left else 3
            return True
        if self.chunk_state == 1:
            n = min(self.chunk_left, len(b))
            self.body += n
            self.chunk_left -= n
            del b[:n]
            if self.chunk_left:
                return False
            self.chunk_state = 2
            return True
        if self.chunk_state == 2:
            if len(b) < 2:
                return False
            del b[:2]
            self.chunk_state = 0
            return True
        nl = b.find(b"\r\n")  # trailers up to an empty line
        if nl < 0:
            return False
        del b[:nl + 2]
        if nl == 0:
            out.append(self._done())
        return True

    def _done(self, complete: bool = True) -> HttpMessage:
        h, self.head = self.head, None
        assert h is not None  # only called while a message is open
        self.left = 0
        return HttpMessage(h["ts"], h["frame"], self.from_client, h.get("method"), h.get("target"), h.get("status"),
                           h.get("reason"), h.get("soap_action"), h.get("content_type"), self.body,
                           h["header_bytes"], h["credentials"], complete)
