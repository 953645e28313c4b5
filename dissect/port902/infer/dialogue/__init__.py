"""The authd dialogue inside TLS #1, decoded from record sizes (stage 5a).

authd writes one line per TLS record (protocol.md §3.1, §4.2, §5.3), and the record layer
stays readable: with the cipher's overhead taken off (:func:`plaintext_interval`), the
sequence of client and server record sizes is a sequence of line lengths.  Every authd line
is fixed text plus a variable argument, so each line type has a size model derived from its
grammar, not from captures:

* ``USER <name>\\r\\n`` is 7 + len(name); the answer ``331 Password required for <name>.\\r\\n``
  is 29 + len(name) and ``230 User <name> logged in.\\r\\n`` 22 + len(name) — the server echoes
  the argument, so the reply's size is *tied* to the command's (§3.4, §3.5);
* ``530 Login incorrect.\\r\\n`` is 22, ``530 Please login with USER and PASS.\\r\\n`` 38 (37);
* ``THUMBPRINT <16 chars>\\r\\n`` is 29, ``200 <SHA-1 colon hex>\\r\\n`` 65, SHA-256 101 (§4.2);
* ``CONNECT <vmx> mks\\r\\n`` is 14 + len(vmx) and ``200 Connect <vmx>\\r\\n`` exactly as long;
* ``PROXY vpxa-nfc|vpxa-nfcssl|nfc|nfcssl`` 16/19/11/14, ``200 Connect ha-nfc[ssl]`` 20/23 (§5.3);
* VDDK's ``BANNER \\r\\n`` (9) is answered by the 47–200 byte greeting (§2.2);
* an HTTP/SOAP request or response has no useful bound: a scale-free (log-uniform) size.

Each feature is a *template* of exchanges (a login, the MKS set-up, three NFC set-ups, SOAP,
the VMXARGS model, login attempts only).  :func:`decode` aligns the observed records with
every template — a client may write several lines in one record (pipelining), a session may
be cut short anywhere, TLS 1.3 servers send NewSessionTickets (RFC 8446 §4.6.1) before their
first reply, a record nothing explains costs a penalty instead of breaking the parse — and
scores each alignment as a log-likelihood.  The best template per label competes with the
others; the winner's likelihood against the runner-up is the confidence.  The alignment is
reported line by line (:class:`Step`), so every verdict can be read back as a dialogue.

Modules: ``grammar`` (size models and templates), ``observe`` (records as observations),
``align`` (one template against the records), ``decode`` (all templates, posteriors, caching,
mid-stream), ``words`` (summaries).
"""

from .align import Parse, Step, anchored_share
from .decode import Decoded, decode, decode_midway
from .grammar import FIRST_AFTER, HANDOFF, MAX_OBS, TEMPLATES, Size, Template, Tok
from .observe import Obs, plaintext_interval, tls1_observations
from .words import describe, login_summary

__all__ = ["decode", "decode_midway", "Decoded", "Parse", "Step", "anchored_share", "TEMPLATES", "HANDOFF",
           "FIRST_AFTER", "Size", "Template", "Tok", "Obs", "plaintext_interval", "tls1_observations", "describe",
           "login_summary", "MAX_OBS"]
