"""The clear-text TLS parser the decryptor reuses (hello and certificate parsing)."""

from ..proto import tls  # noqa: F401
