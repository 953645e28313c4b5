"""Labelled datasets on demand: many captures of random, field-like port-902 sites, deterministic per seed.

Why: the classifier must be trained and validated on more than six hand-built samples, and on
conditions nobody tuned it for. ``generate(out_dir, n_captures, seed)`` writes captures plus a
sidecar ``NAME.labels.json`` each (schema of ``labels.label_schema()`` plus the fields
below) and a ``dataset.json`` manifest. Everything is drawn from a generator seeded by
``(seed, capture index)``, so capture *k* is the same file whatever ``n_captures`` is, and a
run with the same seed gives identical labels (TLS randoms differ, their sizes do not).

What a capture draws (``build_capture``, ``builder.CaptureBuilder``):

* **site** — 1-3 authd servers whose personas come from one era (modern ESXi 8/6 + Workstation
  902; mixed 5.5/6/8; legacy classic ESX/VMware Server/GSX/5.5; a Workstation PC with 902 and
  912); the first eight captures visit every era with one server per persona, so small datasets
  cover them all. Random private addressing (IPv6 on some sites), host names from a pool,
  certificate subjects from a smaller pool (``localhost.localdomain`` as on default ESXi
  certificates, §8), clients by role: admin PCs, vCenter, backup proxy, automation, scanner,
  monitoring; occasionally authd on a non-default port (no mid-session cut there).
* **sessions** — features cycle through MKS, NFC, SOAP, VMXARGS, NONE per capture (so every
  feature appears in small datasets), then follow weights; each is placed on a server whose
  persona can do it (VMXARGS only where the banner says ``VMXARGS supported``, nbdssl only with
  ``NFCSSL``, no TLS on ``gsx-legacy``/``ws912``). Traffic plans: ``console.draw_plan``
  (profiles idle/text/desktop/media/boot, seconds to three hours, 640x480-2560x1440),
  ``sessions.NfcPlan`` (VDDK AIO or FSSRVR, nfclib, photon; reads/downloads and
  writes/uploads; ``min_bytes``-``max_bytes`` log-uniform; io 64 KiB-1 MiB; queue depth 1-2;
  changed-block offsets), ``soapsession.draw_plan`` (collector/ui/automation/watcher, think
  times, keep-alive), VMXARGS with 1-6 options. NONE: Hydra-style and Medusa-style brute
  force with 530s (silent failures on Workstation), OpenVAS/nmap probes, banner grabs,
  TLS-only scans, unanswered SYNs (Windows or Linux back-off), refused connections.
* **TLS** — versions the persona accepts (1.0-1.3), cipher suites incl. CBC (SHA-1/SHA-256/
  SHA-384 MACs) and ChaCha20 for TLS ≤ 1.2 (Python's ``ssl`` cannot choose TLS 1.3 suites; the
  server picks AES-256-GCM), SNI on for some clients.
* **conditions** (``CONDITIONS``) — per connection RTT 0.1 ms-200 ms (log-uniform within the
  capture's profile), jitter, random loss 0-3 % with real retransmissions, MSS 536-9000,
  bandwidth; per capture: span port or *host* capture (TSO/LSO and GRO super-frames, IPv4 total
  length 0 on Windows LSO and above 64 KiB, ``offload.coalesce``), snaplen truncation,
  background traffic (DNS, HTTPS 443, SSH, UDP 902 heartbeats); a ``midstream_share`` of the
  eligible sessions (MKS, NFC, SOAP, VMXARGS, single-connection brute force) is captured from
  a point inside it: in 80 % of cases within the first 60 % of its feature phase (after the
  MKS token, the NFC hand-off, the first SOAP call, …), otherwise between the start of TLS #1
  and that phase — always leaving payload in both directions.
* **container** — pcap or pcapng, µs or ns, either byte order, sometimes gzip; link types
  ethernet, 802.1Q, QinQ, raw IP, Linux SLL / SLL2.

Labels add to the sample schema: per connection ``midstream`` (bool: the capture starts after
the connection did), ``traffic`` (the plan that generated it) and richer ``conditions``
(``jitter_s``, ``bandwidth_bps``, ``injected_total``); per capture ``capture.conditions``
(profile, vantage kind, snaplen, offload) and ``dataset`` (seed, index).

Modules, in the order a capture is made:

``options``     the weights and ranges of every draw; ``Options`` (what ``generate`` varies)
``site``        servers, personas, certificates, addresses and clients of one capture
``scenario``    ``DatasetScenario``: emulated TCP, drawn TLS suites, streamed output with offload
``builder``     ``CaptureBuilder``: container, conditions, sessions and mid-session cuts of one capture
``generator``   ``build_capture`` / ``write_capture`` / ``generate``: files, labels, workers, manifest
"""

from __future__ import annotations

from .builder import CaptureBuilder, CaptureSpec, capture_name
from .generator import build_capture, generate, pool_context, write_capture
from .options import CAPTURE_PROFILES, CONDITION_CHOICES, CONDITIONS, DATASET_SCHEMA, Options
from .scenario import DatasetScenario
from .site import Site, SiteHost, draw_site

__all__ = ["CAPTURE_PROFILES", "CONDITIONS", "CONDITION_CHOICES", "DATASET_SCHEMA", "CaptureBuilder", "CaptureSpec",
           "DatasetScenario", "Options", "Site", "SiteHost", "build_capture", "capture_name", "draw_site",
           "generate", "pool_context", "write_capture"]
