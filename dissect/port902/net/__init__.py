"""Stage 2 — packets in, TCP connections and in-order byte streams out.

The connection table (Zeek-style states) and per-direction reassembly. Knows TCP, not authd.
"""
