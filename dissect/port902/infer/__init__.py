"""Stages 4–5 — inference on published records.

``features`` (metadata and timing per session), ``dialogue`` (the authd dialogue inside TLS #1
decoded from record sizes), ``classify`` (feature label, confidence, reasons), ``links``
(903→902 hand-offs) and ``diagnose`` (why a console will not open).
"""
