"""Stage 1 — capture files in, packets out.

pcap and pcapng (plain, gzip, memory-mapped), link-layer and IP decoding, and the optional C
engine (``_fastscan``) that picks port-902/903/912 traffic out of a capture without building a
Python object per uninteresting packet. Imports nothing from the later stages.
"""
