"""TLS decryption with a key log (issue 9): NSS key logs and pcapng Decryption Secrets
Blocks (:mod:`.keylog`), the TLS 1.0-1.2 PRF (:mod:`.prf`, RFC 5246 §5) and the TLS 1.3 key
schedule (:mod:`.schedule`, RFC 8446 §7), record decryption (:mod:`.record`), the
per-connection state machine that matches each handshake on a stream to its keys
(:mod:`.stream`), and what is done with the plaintext (:mod:`.inner`)."""

from .keylog import KeyLog, KeyLogError, load_keylog, parse_keylog, read_pcapng_secrets
from .stream import ConnectionDecryptor

__all__ = ["KeyLog", "KeyLogError", "load_keylog", "parse_keylog", "read_pcapng_secrets", "ConnectionDecryptor"]
