"""Wireshark / tshark plugin (issue 12): ``authd.lua`` and the Python that writes or installs it.

The Lua source is package data (``authd.lua``); :func:`render` fills in the name tables from
dissect902's own modules (NFC message and AIO frame types) and, optionally, an annotation table
built from ``dissect902 analyze -f json`` output, so that ``dissect902.feature == "NFC"`` works as
a display filter.
"""

from .plugin import (  # noqa: F401
    LUA_RESOURCE, annotations_from_analysis, install, personal_plugin_dir, render, render_annotations,
)

__all__ = ["LUA_RESOURCE", "annotations_from_analysis", "install", "personal_plugin_dir", "render",
           "render_annotations"]
