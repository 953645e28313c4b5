"""dissect902: VMware ESXi port 902 (vmware-authd) dissector and pcap analysis toolkit.

>>> from dissect.port902 import analyze
>>> result = analyze("samples/esxi8-console.pcap")
>>> result.sessions_frame()

``analyze`` and ``Analysis`` are imported on first use, so importing one parser
module (``dissect.port902.tls``) does not pull in pandas.
"""

from .errors import CaptureError, Malformed, NeedMoreData, Port902Error

__version__ = "0.1.0"
__all__ = ["Analysis", "analyze", "CaptureError", "Malformed", "NeedMoreData", "Port902Error", "__version__"]


def __getattr__(name: str):
    if name in ("analyze", "Analysis"):
        from . import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
