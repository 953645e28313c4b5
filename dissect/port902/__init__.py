"""dissect902: VMware ESXi port 902 (vmware-authd) dissector and pcap analysis toolkit.

>>> from dissect.port902 import analyze
>>> result = analyze("samples/esxi8-console.pcap")
>>> result.sessions_frame()

``analyze`` and ``Analysis`` (and the ``frames`` and ``plots`` modules) are imported on first
use, so importing one parser module (``dissect.port902.proto.tls``) does not pull in pandas.

The package is laid out by pipeline stage, each importing only from the ones before it::

    io/         capture files -> packets (pcap, pcapng, link/IP decoding, C engine)
    net/        packets -> TCP connections and byte streams
    proto/      parsers: authd lines, TLS records and hellos, NFC, DNS, vpxa heartbeats
    analyzers/  per-connection state machines: authd sessions, console paths
    model/      published records of finished connections
    infer/      features, dialogue decoding, classification, hand-offs, diagnosis
    output/     DataFrames, renderers, charts
    analysis    the pipeline that runs the stages (``analyze``)
    cli/        one module per command
    lab/        labelled synthetic captures for tests and training (not used by the analysis)
"""

from .errors import CaptureError, Malformed, NeedMoreData, Port902Error

__version__ = "0.1.0"
__all__ = ["Analysis", "analyze", "CaptureError", "Malformed", "NeedMoreData", "Port902Error", "__version__"]


def __getattr__(name: str):
    if name in ("analyze", "Analysis"):
        from . import analysis

        return getattr(analysis, name)
    if name in ("frames", "plots"):
        import importlib

        return importlib.import_module(f".output.{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
