"""HTTP/1.x request heads (RFC 9112 §3): the request line and headers, and redaction of targets.

What a console path shows in clear on 7331 (vCenter's relay) and what SOAP over 902 starts with.
Tickets in request targets are credentials: :func:`redact_target` replaces them by their place in
the target's grammar (RFC 3986 §3: path segments, query, matrix and fragment parameters,
userinfo), never by searching for their value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

__all__ = ["HttpRequest", "parse_http_request", "redact_target", "REDACTED", "HTTP_METHODS"]

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
