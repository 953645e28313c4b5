"""Write or install the Lua dissector, with its tables filled in.

Stage: output.  Input: nothing, or the JSON document of ``dissect902 analyze -f json`` (a dict,
see README "JSON output"); output: Lua source text.  Every string that comes from a capture (a
session uid, a reason) is written as a Lua string literal of escaped bytes (``\\ddd`` for
everything but letters, digits and a few punctuation marks), so a hostile value cannot end the
literal or inject code into the plugin.
"""

from __future__ import annotations

import os
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..proto.nfc import AIO_TYPES, FILE_TYPES, MESSAGE_TYPES

LUA_RESOURCE = "authd.lua"
PLUGIN_NAME = "authd.lua"
_SAFE = re.compile(r"[A-Za-z0-9 _.,:;/()\[\]<>=+-]")


def lua_string(value: str) -> str:
    """A Lua string literal for *value*; anything outside a small safe set becomes ``\\ddd``."""
    out = []
    for ch in str(value):
        if _SAFE.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"\\{b:03d}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def _lua_number(value: float | int | None) -> str:
    if value is None:
        return "nil"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _names_table(names: Mapping[int, str]) -> str:
    return "{ " + ", ".join(f"[{int(k)}] = {lua_string(v)}" for k, v in sorted(names.items())) + " }"


def annotations_from_analysis(doc: Mapping[str, Any]) -> list[dict]:
    """One entry per session with an endpoint pair: uid, client, server, start, stop, feature,
    confidence and its top reason — what the plugin shows per packet."""
    rows = []
    for s in doc.get("sessions", []) or []:
        if not s.get("client") or not s.get("server") or s.get("start") is None:
            continue
        reasons = s.get("reasons") or []
        rows.append({
            "uid": str(s.get("uid", "")),
            "client": str(s["client"]),
            "server": str(s["server"]),
            "start": float(s["start"]),
            "stop": float(s["end"]) if s.get("end") is not None else None,
            "feature": str(s.get("feature") or "UNKNOWN"),
            "confidence": float(s.get("confidence") or 0.0),
            "reason": str(reasons[0])[:300] if reasons else None,
        })
    return rows


def render_annotations(rows: Iterable[Mapping[str, Any]]) -> str:
    items = []
    for r in rows:
        fields = [f"uid = {lua_string(r['uid'])}", f"client = {lua_string(r['client'])}",
                  f"server = {lua_string(r['server'])}", f"start = {_lua_number(r['start'])}",
                  f"stop = {_lua_number(r.get('stop'))}", f"feature = {lua_string(r['feature'])}",
                  f"confidence = {_lua_number(float(r['confidence']))}"]
        if r.get("reason"):
            fields.append(f"reason = {lua_string(r['reason'])}")
        items.append("    { " + ", ".join(fields) + " },")
    if not items:
        return "{}"
    return "{\n" + "\n".join(items) + "\n}"


def source() -> str:
    """The Lua template shipped as package data."""
    return resources.files(__package__).joinpath(LUA_RESOURCE).read_text(encoding="utf-8")


def render(analysis: Mapping[str, Any] | None = None) -> str:
    """The plugin's Lua source with the name tables (and annotations, if given) filled in."""
    text = source()
    tables = {
        "NFC_TYPES": _names_table(MESSAGE_TYPES),
        "AIO_TYPES": _names_table(AIO_TYPES),
        "FILE_TYPES": _names_table(FILE_TYPES),
        "ANNOTATIONS": render_annotations(annotations_from_analysis(analysis)) if analysis else "{}",
    }
    for name, value in tables.items():
        marker = f"local {name} = {{}} --@@{name}@@"
        if marker not in text:
            raise RuntimeError(f"authd.lua template lacks the {name} marker")
        text = text.replace(marker, f"local {name} = {value}")
    return text


def personal_plugin_dir() -> Path:
    """Wireshark's personal Lua plugin folder (``tshark -G folders``: "Personal Lua Plugins")."""
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "Wireshark" / "plugins"
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if sys.platform != "darwin" and xdg and (Path(xdg) / "wireshark").is_dir():
        pass  # Wireshark keeps plugins under ~/.local/lib either way
    return Path.home() / ".local" / "lib" / "wireshark" / "plugins"


def install(text: str, directory: Path | None = None) -> Path:
    """Write *text* as ``authd.lua`` into the personal plugin folder; the path written."""
    target_dir = Path(directory) if directory else personal_plugin_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / PLUGIN_NAME
    tmp = target.with_suffix(".lua.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target
