"""Protocol parsers: bytes in, objects out, no pipeline imports (like dpkt's modules).

``authd`` (banner and control lines, protocol.md §3), ``tls`` (records and clear-text handshake
metadata, RFC 8446 / RFC 5246), ``nfc`` (Network File Copy messages), ``dns`` (RFC 1035) and
``heartbeat`` (vpxa's UDP 902).  ``incremental`` is the feed/gap/resync skeleton the per-direction
stream parsers (``tls.stream``, ``nfc.stream``) share.
"""
