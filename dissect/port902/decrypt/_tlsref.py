"""Where the clear-text TLS parser lives (moves with the issue-15 layout)."""

try:  # the new layout
    from ..proto import tls  # noqa: F401
except ImportError:  # pragma: no cover - the flat layout before the move
    from .. import tls  # noqa: F401
