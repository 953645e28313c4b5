"""Traffic lab: builds labelled port-902 captures from first principles.

Why it exists: no public capture of vmware-authd traffic exists (protocol.md §10), so the
dissector is tested against traffic this lab synthesises from the documented dialogues. The lab
must stay independent of the parsers in ``dissect.port902`` (it is their ground truth), so
nothing here imports from outside ``dissect.port902.lab``.

Layers, bottom up (each module one job):

``links``        link-layer headers for the link types a capture may carry
``pcapwriter``   pcap / pcapng records (both byte orders, µs / ns, snaplen, gzip)
``ip``           IPv4 / IPv6 / UDP headers and the Internet checksum
``tcp``          one TCP connection's packets: handshake, segmentation, ACKs, loss, close
``udp``          one UDP flow's datagrams
``certs``        deterministic "VMware ESX Server Default Certificate"-style host certificates
``tlsbio``       real TLS between two ``ssl.SSLObject``s over memory BIOs, flight by flight
``pace``         timing model (server processing, client think times)
``channel``      plays a dialogue onto a TCP connection through plain / TLS #1 / TLS #2
``authd``        authd banners and control-channel dialogues (bytes each side sends)
``personas``     server products: port, banner, TLS versions, TTL
``rfb``          RFB/VNC messages and console activity inside TLS #2 (MKS)
``nfc``          NFC 264-byte messages, AIO frames and transfer dialogues
``soap``         vim25 SOAP over HTTP/1.1 (SOAP-over-902 model, 443 background)
``background``   unrelated traffic: DNS, HTTPS, SSH, UDP 902 heartbeats
``labels``       the labels document: schema, vocabularies, expected facts
``scenario``     hosts, clients, conditions, flows; writes a capture and its labels
``scenarios``    connection builders: one labelled dialogue or background flow each
``samples``      the bundled sample captures and their README
``sessions``     builders with field-like traffic plans (``console``, ``nfcstream``, ``soapsession``)
``dataset``      random labelled sites and captures on demand (options, site, scenario, builder, generator)
``failkit``      the failure scenarios' cast and building blocks (DNS errors, ICMP, abandoned TLS)
``failures``     the ``dissect902 doctor`` failure captures; ``failreadme`` renders their README
``bulk``         template-built frames for multi-million-packet benchmark captures

A real daemon for third-party clients (not a capture generator):

``rawtls``       TLS on a live socket fed record by record, so TLS #1 can be dropped for TLS #2
``services``     NFC, MKS console (RFB responder / VNC relay) and SOAP behind the hand-off
``server``       ``python -m dissect.port902.lab.server``: the authd emulator with a JSONL log
"""

from .pcapwriter import CaptureWriter
from .tcp import TcpConversation
from .tlsbio import TlsPair
from .certs import HostCert, host_cert, thumbprint

__all__ = ["CaptureWriter", "TcpConversation", "TlsPair", "HostCert", "host_cert", "thumbprint"]
