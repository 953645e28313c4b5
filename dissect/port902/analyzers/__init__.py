"""Stage 3 — per-connection analyzers (Zeek's analyzer-per-protocol idea).

``session``: what the bytes of one authd connection mean (banner, dialogue, TLS #1, hand-over to
TLS #2, NFC). ``consolepath``: console traffic that bypasses 902 (443, 7331, 7343).
"""
