"""TLS decryption with a key log (issue 9): NSS key logs and pcapng Decryption Secrets Blocks
(:mod:`.keylog`), the TLS 1.0-1.2 PRF (:mod:`.prf`, RFC 5246 §5) and the TLS 1.3 key schedule
(:mod:`.schedule`, RFC 8446 §7), record decryption (:mod:`.record`), the per-connection state
machine that matches each handshake on a stream to its keys (:mod:`.stream`), what is done with
the plaintext (:mod:`.inner`), the verdict it gives (:mod:`.verdict`) and the export for
Wireshark (:mod:`.export`).  Only :mod:`.keylog` loads with the package: the session calls
:func:`attach` when a key log is given, so an analysis without keys loads no decryption code."""

from .keylog import KeyLog, KeyLogError, load_keylog, parse_keylog, read_pcapng_secrets

__all__ = ["KeyLog", "KeyLogError", "load_keylog", "parse_keylog", "read_pcapng_secrets", "ConnectionDecryptor",
           "attach"]


def attach(session, keylog: KeyLog, show_secrets: bool = False, keep_plaintext: bool = False):
    """Decrypt ``session``'s TLS with ``keylog``: returns its ``inner.DecryptedSession``."""
    from .inner import attach as _attach

    return _attach(session, keylog, show_secrets, keep_plaintext)


def __getattr__(name: str):
    if name == "ConnectionDecryptor":
        from .stream import ConnectionDecryptor

        return ConnectionDecryptor
    raise AttributeError(name)
