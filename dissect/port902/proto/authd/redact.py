"""vmware-authd control channel, where secrets sit in a line (stage 3a).

Credentials never leave the authd parser unredacted unless asked.  Redaction goes by the
grammar, never by searching text for a secret seen before: the argument of ``PASS`` /
``XPAS`` / ``SESSION`` / ``SESSIONID`` / ``CONNECT_VPXA``, a ticket-shaped ``USER``, a
``THUMBPRINT`` client token, the ticket a ``331``/``230`` reply repeats at its argument's
place (protocol.md §3.3), tickets in HTTP targets and credential headers.
"""

from __future__ import annotations

import re

from ..http import HTTP_METHODS, redact_target
from .grammar import _TICKET_RE, REDACTED

# -- where secrets sit in a line ------------------------------------------------------------------
#
# Redaction works on the grammar, never by searching a line for a secret seen earlier: searching
# turns every occurrence of a short secret inside ordinary words into a marker (with PASS "or",
# "Password required for" reads "Passw<redacted>d required f<redacted>"), which spells the secret
# out by what it removed, and costs time quadratic in the length of the dialogue.


_CONTROL = "".join(map(chr, range(32))) + " \x7f\x85\xa0"
SECRET_VERBS = frozenset({"PASS", "XPAS", "SESSION", "SESSIONID", "CONNECT_VPXA"})  # the argument is a credential
TOKEN_VERBS = frozenset({"THUMBPRINT", "THUMBPRINT_SHA2"})  # the client token binds the hand-off to this client
PUBLIC_TOKENS = frozenset({"plaintext"})  # nfclib / VDDK send the literal PlainText: not a secret
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_HEADER_RE = re.compile(r"([A-Za-z0-9-]{1,64}):[ \t]*")
_XML_SECRET_RE = re.compile(r"(<(?:[\w.-]+:)?(?:password|ticket|token|sessionId|samlToken)(?:\s[^>]*)?>)([^<]+)", re.I)
_ECHO_RE = (  # the replies that repeat the USER argument, and where (protocol.md §3.3)
    re.compile(r"331[ -]Password required for (.+?)\.?", re.S | re.I),
    re.compile(r"230[ -]User (.+?) logged in\.?", re.S | re.I),
)
_FIXED_REPLY_RE = re.compile(r"\d{3}|530 Login incorrect\.?|530 Please login with USER and PASS\.?"
                             r"|220 VMware Authentication Daemon Version [^\r\n]*", re.I)


def is_ticket(arg: str) -> bool:
    """A USER argument shaped like an MKS / clone / service ticket rather than a user name."""
    return bool(_TICKET_RE.match(arg))


def _redact_http(text: str, verb: str, arg_start: int) -> str:
    """Tickets in an HTTP request target, credential headers, secret XML elements: by position."""
    if verb in HTTP_METHODS and arg_start < len(text):
        rest = text[arg_start:]
        target, sep, tail = rest.partition(" ")
        return text[:arg_start] + redact_target(target) + sep + tail
    m = _HEADER_RE.match(text)
    if m and m.group(1).lower() in CREDENTIAL_HEADERS and m.end() < len(text):
        return text[:m.end()] + REDACTED
    if "<" in text:
        return _XML_SECRET_RE.sub(lambda x: x.group(1) + REDACTED, text)
    return text

