"""vmware-authd control channel (stage 3a, ``proto``): bytes in, lines and a dialogue out.

Three rooms, one idea each, all importable from here as before:

* ``grammar``  — the banner (protocol.md §2), commands and reply codes (§3), :class:`Line`,
  the incremental CRLF splitter :class:`LineBuffer`;
* ``redact``   — where secrets sit in a line, by the grammar (never by searching for a secret);
* ``dialogue`` — replies matched to commands in order (§3.3), login attempts, CONNECT / PROXY.
"""

from __future__ import annotations

from .dialogue import (
    LOOKAHEAD,
    MAX_COMMANDS,
    MAX_LINES,
    MAX_PENDING,
    Dialogue,
    LoginAttempt,
    login_outcome,
    login_summary,
    login_user,
)
from .grammar import (
    COMMANDS,
    GREETING_PREFIX,
    MAX_LINE,
    REDACTED,
    REPLY_CODES,
    Banner,
    Line,
    LineBuffer,
    guess_product,
    looks_like_line,
    parse_banner,
    split_command,
    starts_like_line,
)
from .redact import (
    CREDENTIAL_HEADERS,
    PUBLIC_TOKENS,
    SECRET_VERBS,
    TOKEN_VERBS,
    is_ticket,
)

__all__ = [
    "COMMANDS", "CREDENTIAL_HEADERS", "GREETING_PREFIX", "LOOKAHEAD", "MAX_COMMANDS", "MAX_LINE", "MAX_LINES",
    "MAX_PENDING", "PUBLIC_TOKENS", "REDACTED", "REPLY_CODES", "SECRET_VERBS", "TOKEN_VERBS", "Banner", "Dialogue",
    "Line", "LineBuffer", "LoginAttempt", "guess_product", "is_ticket", "login_outcome", "login_summary",
    "login_user", "looks_like_line", "parse_banner", "split_command", "starts_like_line",
]
