"""The live lab: labelled port-902 captures of real clients, a real server and the kernel's TCP.

    python -m dissect.port902.lab.live OUT_DIR [--seed N] [--sessions 150] [--lanes 3]

Why: the in-process lab (``dataset``) writes every packet itself, so a classifier tuned on it
may only have learnt the simulator. Here nothing on the wire is synthesised: ``liveclient``
processes (MKS through real VNC viewers, NFC, SOAP, VMXARGS, brute force, probes — protocol.md
§2–§5) talk to ``server.py`` (relaying consoles to a real VNC server, ``livestack``) through
network namespaces joined by a router that adds delay / jitter / loss / rate limits
(``livenet``); tcpdump records what crossed the client's interface (or the router's, a
span-port view), at full or truncated snaplen.

Per capture, ``Plan`` draws (seeded) the server persona and TLS versions, the network
profile, MTU / MSS clamp / offload, the capture point, and 4-9 sessions over all features; a
share of captures starts tcpdump only once one long session has reached its feature phase (a
client ``MARK``), so that session is captured mid-way. Sessions start at drawn offsets and
overlap. Ground truth comes from the clients' result files and the server's JSONL log (what
they did, never what ``dissect.port902`` makes of it); per-connection frames and whether the
SYN was captured come from the pcap's bytes. ``NAME.labels.json`` has the in-process lab's
schema (``labels.label_schema``, ``dataset`` additions), ``dataset.json`` its manifest.

Lanes (``--lanes``) run in parallel, each with its own namespaces, VNC server and displays;
all are torn down at the end, also after a failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from pathlib import Path

from . import liveclient
from .services import datastore_file
from .livenet import Lane, Tcpdump, probe_netem
from .livestack import AuthdServer, VncStack, XDisplay, read_pcap, _key
from .labels import EXPECTED_DEFAULTS, FEATURES, LABELS_SCHEMA
from .server import PERSONA_KEYS

DATASET_SCHEMA = "dissect902-live-dataset/1"
WEIGHTS = {"MKS": 3.0, "NFC": 3.0, "SOAP": 1.5, "VMXARGS": 1.0, "NONE": 3.0}
SUPPORT = {"esxi8": set(FEATURES), "esxi6": set(FEATURES), "esxi55": set(FEATURES),
           "workstation": {"MKS", "NFC", "SOAP", "NONE"}, "workstation912": {"NONE"}, "legacy": {"NONE"}}
PERSONA_WEIGHTS = {"esxi8": 4, "esxi6": 2.5, "esxi55": 1.5, "workstation": 1.5, "workstation912": 0.4, "legacy": 0.4}
# network profile -> RTT ms (log-uniform), jitter share of the one-way delay, loss, rate Mbit/s (None: line rate)
NETWORKS = {
    "lan": {"rtt": (0.0, 0.0), "jitter": (0.0, 0.0), "loss": (0.0, 0.0), "rate": (None, None), "weight": 3},
    "campus": {"rtt": (1.0, 10.0), "jitter": (0.0, 0.25), "loss": (0.0, 0.003), "rate": (50, 400), "weight": 2},
    "wan": {"rtt": (15.0, 120.0), "jitter": (0.02, 0.3), "loss": (0.0, 0.01), "rate": (5, 50), "weight": 2},
    "lossy": {"rtt": (4.0, 60.0), "jitter": (0.05, 0.3), "loss": (0.01, 0.03), "rate": (10, 100), "weight": 1},
}
MTUS = {1500: 6, 1400: 1, 1280: 0.6, 9000: 0.8}
CERT_NAMES = ("localhost.localdomain", "localhost.localdomain", "esxi-01.corp.example", "esx-prod-a.prod.internal")
# what a session captured mid-way adds to its arguments so that it outlasts tcpdump's start-up
LONGER = {"MKS": ["--seconds", "5"], "NFC": ["--gap", "0.08"], "SOAP": ["--think-scale", "0.5", "--calls", "12"],
          "NONE": ["--think-scale", "3", "--attempts", "8"]}
DATASTORE = "/vmfs/volumes/5f3a9c2e-1b7d4e60-8a2f-0050569e1a2b"


def _pick(rng: random.Random, weights: dict):
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return low if high <= low or low <= 0 else math.exp(rng.uniform(math.log(low), math.log(high)))


# -- drawing a capture ----------------------------------------------------------------------------

def spec(k: int, feature: str, args: list[str], *, offset: float = 0.0, cut_mark: str | None = None,
         files=(), seed: int = 0) -> dict:
    """One session of a plan: ``liveclient`` arguments (persona first), start offset in seconds,
    the MARK after which tcpdump may start when it is cut, NFC files to create (path, size)."""
    return {"k": k, "feature": feature, "args": list(args), "offset": offset, "cut_mark": cut_mark,
            "files": list(files), "seed": seed}


class Plan:
    """Everything one capture does, drawn from ``random.Random(f"{seed}/{index}")``."""

    def __init__(self, seed: int, index: int, sessions: int, midstream_share: float, max_bytes: int):
        rng = self.rng = random.Random(f"dissect902-live/{seed}/{index}")
        self.index, self.seed = index, seed
        self.persona = _pick(rng, PERSONA_WEIGHTS) if index >= 4 else ("esxi8", "esxi6", "workstation", "esxi55")[index]
        self.tls_max = rng.choice(("1.2", "1.3")) if self.persona in ("esxi8", "workstation") else "1.2"
        self.tls_min = "1.2"
        self.port = 902 if rng.random() < 0.85 else rng.choice((9020, 10902, 2902))
        self.network = _pick(rng, {k: v["weight"] for k, v in NETWORKS.items()})
        p = NETWORKS[self.network]
        self.rtt_ms = round(_log_uniform(rng, *p["rtt"]), 2)
        self.jitter_ms = round(self.rtt_ms / 2 * rng.uniform(*p["jitter"]), 2)
        self.loss = round(rng.uniform(*p["loss"]), 4) if p["loss"][1] and rng.random() < 0.7 else 0.0
        self.rate = round(_log_uniform(rng, *p["rate"]), 1) if p["rate"][0] else None
        self.mtu = _pick(rng, MTUS)
        self.mss = rng.choice((536, 1200, 1360)) if rng.random() < 0.12 else None
        self.offload = rng.random() < 0.5
        self.kind = _pick(rng, {"host": 5, "span": 2, "snaplen": 1.5})
        self.vantage = "router" if self.kind == "span" else "client"
        self.snaplen = rng.choice((96, 128, 200, 256)) if self.kind == "snaplen" else 262144
        self.link = "ethernet" if self.vantage == "router" or rng.random() < 0.7 else rng.choice(("sll", "sll2"))
        self.cert_name = rng.choice(CERT_NAMES)
        self.max_bytes = max_bytes
        self.sessions = [self._session(k, rng) for k in range(sessions)]
        self.cuts: list[dict] = []                 # sessions started before tcpdump
        if rng.random() < min(1.0, 2 * midstream_share):
            eligible = [s for s in self.sessions if s["cut_mark"]]
            for spec in rng.sample(eligible, min(len(eligible), rng.randint(1, 3))):
                spec["offset"] = round(rng.uniform(0.0, 0.3), 3)
                spec["args"] += LONGER[spec["feature"]]      # still running once tcpdump listens
                self.cuts.append(spec)
        self.cut_delay = rng.uniform(0.05, 0.5)

    def _feature(self, k: int, rng: random.Random) -> str:
        allowed = [f for f in FEATURES if f in SUPPORT[self.persona]]
        if k < len(allowed) and rng.random() < 0.7:
            return allowed[(k + self.index) % len(allowed)]
        return _pick(rng, {f: WEIGHTS[f] for f in allowed})

    def _session(self, k: int, rng: random.Random) -> dict:
        feature = self._feature(k, rng)
        args: list[str] = ["--end", _pick(rng, {"fin": 4, "notify": 2, "rst": 1})]
        cut_mark, files = None, []
        sni = rng.choice((None, None, "localhost.localdomain", f"esxi-{rng.randint(1, 9):02d}.corp.example"))
        if sni:
            args += ["--sni", sni]
        if feature == "MKS":
            use = _pick(rng, {"interactive": 3, "idle": 2, "quick": 1.2})
            viewer = rng.choice(("tigervnc", "vncdotool"))
            seconds = round(rng.uniform(2.0, 5.0), 2)
            args = ["mks", *args, "--use", use, "--viewer", viewer, "--seconds", str(seconds),
                    "--vm", rng.choice(("web01", "db02", "win10-vdi", "build07", "dc01"))]
            cut_mark = "console" if use != "quick" else None
        elif feature == "NFC":
            persona = _pick(rng, {"nfc-vddk": 5, "nfc-nfclib": 2, "nfc-photon": 1.5})
            write = rng.random() < 0.4
            size = int(_log_uniform(rng, 32768, self.max_bytes))
            ssl = persona != "nfc-photon" and rng.random() < 0.5
            gap = round(rng.uniform(0.0, 0.015), 4)
            if persona == "nfc-vddk":
                size = max(512, size // 512 * 512)
                path = f"{DATASTORE}/vm{k:02d}/vm{k:02d}{'' if rng.random() < 0.5 else '-000001'}.vmdk"
                args += ["--io-size", str(rng.choice((65536, 131072, 262144, 524288)))]
                if rng.random() < 0.3:
                    args.append("--direct")
            else:
                path = f"{DATASTORE}/iso/image{self.index:03d}-{k:02d}{rng.choice(('.iso', '.ovf', '.vmx', '.nvram'))}"
            args = [persona, *args, "--bytes", str(size), "--path", path, "--gap", str(gap)]
            if write:
                args.append("--write")
            else:
                files.append((path, size))
            if ssl:
                args.append("--ssl")
            cut_mark = "handoff" if size >= 1 << 20 and gap >= 0.005 else None
        elif feature == "SOAP":
            calls = rng.randint(3, 14)
            args = ["soap", *args, "--calls", str(calls), "--think-scale", str(round(rng.uniform(0.05, 0.4), 2)),
                    "--max-think", "0.8", "--user", "vpxuser", "--password", "vmware"]
            cut_mark = "login_ok" if calls >= 6 else None
        elif feature == "VMXARGS":
            args = ["vmxargs", *args, "--linger", str(round(_log_uniform(rng, 0.05, 2.0), 3))]
        else:
            kind = _pick(rng, {"brute": 2, "brute-multi": 1.2, "hangup": 1.2, "banner": 1, "probe": 1, "tls-only": 1.2})
            ssl = self.persona not in ("workstation912", "legacy")
            if kind in ("tls-only", "hangup") and not ssl:
                kind = "banner"
            if kind.startswith("brute"):
                attempts = rng.randint(2, 8) if kind == "brute" else rng.randint(2, 4)
                args = ["brute", *args, "--attempts", str(attempts), "--think-scale", str(round(rng.uniform(0.5, 2), 2)),
                        "--user", rng.choice(("root", "admin", "vmware"))]
                if kind == "brute-multi":
                    args.append("--per-connection")
                if rng.random() < 0.2:
                    args += ["--password-last", "--password", "vmware"]
                cut_mark = "pass" if kind == "brute" and attempts >= 5 else None
            elif kind == "hangup":
                args = ["hangup", *args, "--hangup-after", rng.choice(("banner", "tls", "user"))]
            elif kind == "probe":
                args = ["probe", *args, "--probe", rng.choice(tuple(liveclient.PROBES))]
            else:
                args = [kind, *args]
            args += ["--linger", str(round(rng.uniform(0.0, 0.5), 3))]
        if self.tls_max == "1.3" and rng.random() < 0.3:
            args += ["--tls-max", "1.2"]
        return spec(k, feature, args, offset=round(rng.uniform(0.0, 4.0), 3), cut_mark=cut_mark, files=files,
                    seed=rng.getrandbits(31))

    def conditions(self) -> dict:
        return {"network": self.network, "rtt_ms": self.rtt_ms, "jitter_ms": self.jitter_ms, "loss": self.loss,
                "rate_mbit": self.rate, "mtu": self.mtu, "mss": self.mss, "offload": self.offload}


# -- running a capture ------------------------------------------------------------------------------

class Client:
    """One ``liveclient`` process; its stdout MARK lines set ``marks``."""

    def __init__(self, lane: Lane, workdir: str, tag: str, spec: dict, server: str, display: str):
        self.spec, self.result_path = spec, os.path.join(workdir, f"{tag}.json")
        argv = [sys.executable, "-m", "dissect.port902.lab.liveclient", *spec["args"], "--server", server,
                "--seed", str(spec["seed"]), "--result", self.result_path, "--marks", "--display", display]
        self.err = open(os.path.join(workdir, f"{tag}.err"), "w")
        self.proc = lane.spawn(lane.client_ns, argv, stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.marks: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _event(self, name: str) -> threading.Event:
        with self.lock:
            return self.marks.setdefault(name, threading.Event())

    def _read(self) -> None:
        for text in self.proc.stdout:
            if text.startswith("MARK "):
                self._event(text.split()[1]).set()

    def wait_mark(self, name: str, timeout: float) -> bool:
        return self._event(name).wait(timeout)

    def finish(self, timeout: float) -> dict:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            Lane.stop(self.proc)
        self.reader.join(2)
        self.err.close()
        Lane.release(self.proc)
        try:
            with open(self.result_path) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {"error": f"client exited {self.proc.returncode} without a result", "connections": [],
                    "persona": self.spec["args"][0], "feature": self.spec["feature"]}


class LaneRunner:
    """One lane's namespaces, VNC server and displays, reused by the captures it runs."""

    def __init__(self, name: str, workdir: str, netem: bool, vnc_kind: str):
        self.lane = Lane(name)
        self.workdir, self.netem = workdir, netem
        try:
            self.lane.create()
            self.vnc = VncStack(self.lane, vnc_kind)
            self.display = XDisplay(self.lane, self.lane.client_ns)
        except BaseException:
            self.lane.close()
            raise

    def close(self) -> None:
        self.lane.close()

    def capture(self, plan: Plan, out_dir: str, stem: str, session_timeout: float = 90.0) -> dict:
        lane, work = self.lane, os.path.join(self.workdir, stem)
        os.makedirs(work, exist_ok=True)
        root = os.path.join(work, "nfc")
        for path, size in (f for s in plan.sessions for f in s["files"]):
            target = str(datastore_file(Path(root), path))  # where the server looks for it
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(random.Random(path).randbytes(size))
        used = lane.impair(rtt_ms=plan.rtt_ms, jitter_ms=plan.jitter_ms, loss=plan.loss, rate_mbit=plan.rate,
                           mtu=plan.mtu, mss=plan.mss, offload=plan.offload, netem=self.netem, seed=plan.index)
        server = AuthdServer(lane, work, persona=plan.persona, port=plan.port, tls_min=plan.tls_min,
                             tls_max=plan.tls_max, cert_name=plan.cert_name, users="root:vmware,vpxuser:vmware",
                             vnc=self.vnc.address, nfc_root=root, tag="server")
        pcap = os.path.join(out_dir, stem + ".pcap")
        ns, iface = (lane.router_ns, "r1") if plan.vantage == "router" else (lane.client_ns, "c0")
        link = {"sll": "LINUX_SLL", "sll2": "LINUX_SLL2"}.get(plan.link)
        if link:
            iface = "any"
        dump = Tcpdump(lane, ns, iface, pcap, snaplen=plan.snaplen, link=link,
                       bpf=f"tcp and host {lane.server_ip}")
        address = f"{lane.server_ip}:{plan.port}"
        clients: list[Client] = []
        try:
            t0 = time.time()
            for spec in sorted(plan.cuts, key=lambda s: s["offset"]):
                time.sleep(max(0.0, t0 + spec["offset"] - time.time()))
                clients.append(Client(lane, work, f"s{spec['k']:02d}", spec, address, self.display.name))
            reached = all([c.wait_mark(c.spec["cut_mark"], 30) for c in clients])
            if clients:
                time.sleep(plan.cut_delay if reached else 0)
            capture_from = dump.start()
            t0 = time.time()
            for spec in sorted((s for s in plan.sessions if s not in plan.cuts), key=lambda s: s["offset"]):
                time.sleep(max(0.0, t0 + spec["offset"] - time.time()))
                clients.append(Client(lane, work, f"s{spec['k']:02d}", spec, address, self.display.name))
            results = [c.finish(session_timeout) for c in clients]
            time.sleep(0.3 + plan.rtt_ms / 1000)
        finally:
            stats = dump.stop() if dump.proc else ""
            records = server.stop()
        delayer_ok = getattr(lane, "delayer", None) is None or lane.delayer.poll() is None
        lane.clear_impairment()
        shutil.rmtree(root, ignore_errors=True)
        facts = read_pcap(pcap)
        labels = build_labels(plan, stem, pcap, facts, clients, results, records, used, capture_from, stats,
                              server.cert, address)
        labels["live"]["delayer_ok"] = delayer_ok
        with open(os.path.join(out_dir, stem + ".labels.json"), "w") as handle:
            json.dump(labels, handle, indent=1)
            handle.write("\n")
        authd = labels["connections"]
        return {"file": stem + ".pcap", "labels": stem + ".labels.json", "packets": facts["packets"],
                "bytes": os.path.getsize(pcap), "connections": len(authd), "authd_sessions": len(authd),
                "midstream": sum(1 for c in authd if c["midstream"]),
                "features": {f: sum(1 for c in authd if c["feature"] == f) for f in FEATURES},
                "conditions": labels["capture"]["conditions"], "errors": labels["live"]["client_errors"],
                "seconds": round(time.time() - t0, 1)}


# -- labels ---------------------------------------------------------------------------------------------

def _transport(conn: dict, rec: dict | None) -> str:
    if conn.get("tls_handshakes", 0) >= 2:
        return "tls+tls2"
    if conn.get("continues_in_clear"):
        return "tls+clear"
    if conn.get("tls_handshakes"):
        return "tls"
    return "plain" if conn.get("banner") else "none"


def _feature(rec: dict | None, client_feature: str) -> str:
    """The server's account of what it served; SOAP by its methods (the server marks SOAP only
    when the dialogue ends by itself, not when the client closes)."""
    if rec is None:
        return client_feature
    if rec.get("soap_methods"):
        return "SOAP"
    return rec.get("feature") or "NONE"


def build_labels(plan: Plan, stem: str, pcap: str, facts: dict, clients: list, results: list, records: list,
                 used: dict, capture_from: float, stats: str, cert: dict, address: str) -> dict:
    """The labels document of one live capture (``scenarios`` schema plus ``live``)."""
    by_port = {r["client_port"]: r for r in records}
    connections, errors, mismatches = [], [], []
    rows = [(spec_client, res, conn) for spec_client, res in zip(clients, results) for conn in res["connections"]]
    rows.sort(key=lambda r: r[2]["start_ts"])
    omitted = []
    n = 0
    for client, res, conn in rows:
        rec = by_port.get(conn["client"]["port"])
        feature = _feature(rec, conn.get("feature", res["feature"]))
        if res.get("error"):
            errors.append(f"{stem} s{client.spec['k']:02d} {res['persona']}: {res['error']}")
        if conn.get("feature") and conn["feature"] != feature:
            mismatches.append(f"{stem} port {conn['client']['port']}: client {conn['feature']}, server {feature}")
        flow = facts["flows"].get(_key(conn["client"]["ip"], conn["client"]["port"], conn["server"]["ip"],
                                       conn["server"]["port"]), {"first": None, "last": None, "count": 0,
                                                                 "syn": False, "times": []})
        if not flow["count"]:                  # over before the capture began: not in this capture
            omitted.append(conn["client"]["port"])
            continue
        n += 1
        expected = {**EXPECTED_DEFAULTS, "users": []}
        for key in expected:
            if key in conn:
                expected[key] = conn[key]
        banner = conn.get("banner")
        expected.update(banner_id=rec.get("banner_id") if rec else None, ssl_required=bool(banner and "SSL" in banner),
                        app="authd", model=feature in ("SOAP", "VMXARGS"))
        if expected["tls_handshakes"] and not expected["cert_sha1"]:
            expected.update(cert_sha1=cert["sha1"], cert_sha256=cert["sha256"])
        events = []
        for mark in conn.get("marks", []):
            frame = next((num for ts, num in flow["times"] if ts >= mark["ts"]), None)
            events.append({"what": mark["what"], "frame": frame, "ts": mark["ts"]})
        from_start = bool(flow["syn"])
        connections.append({
            "uid": f"C{n:02d}", "proto": "tcp", "client": conn["client"], "server": conn["server"],
            "start_ts": conn["start_ts"], "captured_from_start": from_start, "feature": feature, "service": "authd",
            "persona": PERSONA_KEYS.get(plan.persona, plan.persona), "transport": _transport(conn, rec),
            "outcome": {"error": "closed"}.get(conn["outcome"], conn["outcome"]),
            "payload_bytes": conn["payload_bytes"], "expected": expected,
            "conditions": {"rtt_s": plan.rtt_ms / 1000, "jitter_s": plan.jitter_ms / 1000, "loss_rate": plan.loss,
                           "mss": plan.mss or plan.mtu - 40, "mtu": plan.mtu,
                           "bandwidth_bps": plan.rate * 1e6 / 8 if plan.rate else None,
                           "vantage": 0.0 if plan.vantage == "client" else 0.5,
                           "capture_from": round(capture_from, 6), "injected": []},
            "related": {}, "notes": f"live {res['persona']} ({' '.join(client.spec['args'])})"
                                   + (f"; client error: {res['error']}" if res.get("error") else ""),
            "end_ts": flow["times"][-1][0] if flow["times"] else conn["end_ts"],
            "frames": {"first": flow["first"], "last": flow.get("last"), "count": flow["count"]},
            "events": events, "midstream": not from_start,
            "traffic": conn.get("traffic") or {"model": res["persona"]},
            "server_log": {k: rec.get(k) for k in ("feature", "commands", "replies", "handoff", "handoff_target",
                                                   "tls", "end_reason", "soap_methods", "nfc_data_bytes")}
            if rec else None,
        })
    info = {"profile": plan.network, "network": plan.network, "kind": plan.kind, "snaplen": plan.snaplen,
            "local": [] if plan.vantage == "router" else [connections[0]["client"]["ip"]] if connections else [],
            "offload": {"tso": plan.offload, "gro": plan.offload} if plan.offload else None,
            "vantage": plan.vantage, "emulation": used, "persona": plan.persona,
            "tls": [plan.tls_min, plan.tls_max]}
    return {
        "schema": LABELS_SCHEMA, "scenario": "live", "seed": plan.seed,
        "description": f"live capture {plan.index}: {plan.persona} on {address}, {plan.network} "
                       f"(rtt {plan.rtt_ms} ms, loss {plan.loss}, rate {plan.rate} Mbit/s), {plan.kind} capture",
        "capture": {"file": os.path.basename(pcap), "format": "pcap", "link": facts["link"], "ts_resolution": "us",
                    "packets": facts["packets"], "start_ts": facts["first_ts"], "end_ts": facts["end_ts"],
                    "conditions": info},
        "dataset": {"schema": DATASET_SCHEMA, "seed": plan.seed, "index": plan.index},
        "live": {"client_errors": errors, "feature_mismatches": mismatches, "tcpdump": stats,
                 "server_records": len(records), "cut": [spec["k"] for spec in plan.cuts],
                 "omitted_client_ports": omitted},
        "connections": connections,
    }


# -- the dataset --------------------------------------------------------------------------------------

def plans(seed: int, sessions: int, per_capture: tuple[int, int], midstream_share: float, max_bytes: int) -> list[Plan]:
    """Captures until ``sessions`` client sessions are drawn (capture ``k`` depends on ``seed`` only)."""
    out, total, index = [], 0, 0
    while total < sessions:
        n = random.Random(f"dissect902-live-size/{seed}/{index}").randint(*per_capture)
        n = min(n, max(1, sessions - total))
        out.append(Plan(seed, index, n, midstream_share, max_bytes))
        total += n
        index += 1
    return out


def generate(out_dir: str, seed: int, *, sessions: int = 150, per_capture: tuple[int, int] = (5, 9), lanes: int = 3,
             midstream_share: float = 0.35, max_bytes: int = 4 << 20, vnc: str = "x11vnc", prefix: str = "live",
             progress=None) -> dict:
    """Run the live lab and write captures, labels and ``dataset.json`` to ``out_dir``; returns the manifest."""
    os.makedirs(out_dir, exist_ok=True)
    netem = probe_netem()
    todo = plans(seed, sessions, per_capture, midstream_share, max_bytes)
    work = os.path.join(out_dir, ".work")
    rows: list = [None] * len(todo)
    lock, queue = threading.Lock(), list(enumerate(todo))
    done = [0]
    started = time.time()

    def lane_worker(n: int) -> None:
        runner = None
        try:
            runner = LaneRunner(f"d9{os.getpid() % 10000}l{n}", os.path.join(work, f"lane{n}"), netem,
                                vnc if vnc != "mixed" else ("x11vnc", "xvnc")[n % 2])
            while True:
                with lock:
                    if not queue:
                        return
                    k, plan = queue.pop(0)
                row = runner.capture(plan, out_dir, f"{prefix}-{seed}-{k:04d}")
                with lock:
                    rows[k] = row
                    done[0] += 1
                    if progress:
                        progress(done[0], len(todo), row)
        finally:
            if runner:
                runner.close()

    with ThreadPoolExecutor(max_workers=max(1, min(lanes, len(todo)))) as pool:
        for future in [pool.submit(lane_worker, n) for n in range(max(1, min(lanes, len(todo))))]:
            future.result()
    shutil.rmtree(work, ignore_errors=True)
    rows = [r for r in rows if r]
    manifest = {
        "schema": DATASET_SCHEMA, "seed": seed, "kind": "live",
        "options": {"conditions": "live-varied", "sessions": sessions, "sessions_per_capture": list(per_capture),
                    "lanes": lanes, "midstream_share": midstream_share, "max_bytes": max_bytes, "vnc": vnc,
                    "netem": netem, "impairment": "netem" if netem else "tbf + iptables statistic + NFQUEUE delayer"},
        "captures": rows,
        "totals": {"captures": len(rows), "packets": sum(r["packets"] for r in rows),
                   "bytes": sum(r["bytes"] for r in rows), "authd_sessions": sum(r["authd_sessions"] for r in rows),
                   "midstream": sum(r["midstream"] for r in rows),
                   "features": {f: sum(r["features"][f] for r in rows) for f in FEATURES},
                   "client_errors": sum(len(r["errors"]) for r in rows), "seconds": round(time.time() - started, 1)},
    }
    with open(os.path.join(out_dir, "dataset.json"), "w") as handle:
        json.dump(manifest, handle, indent=1)
        handle.write("\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dissect.port902.lab.live", description=__doc__.split("\n\n")[2])
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, help="default: a fresh random seed (printed)")
    p.add_argument("--sessions", type=int, default=150, help="client sessions in all (default 150)")
    p.add_argument("--per-capture", default="5-9", help="sessions per capture, LO-HI (default 5-9)")
    p.add_argument("--lanes", type=int, default=3, help="captures run in parallel (default 3)")
    p.add_argument("--midstream-share", type=float, default=0.35)
    p.add_argument("--max-bytes", type=int, default=4 << 20)
    p.add_argument("--vnc", choices=("x11vnc", "xvnc", "mixed"), default="mixed")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    print(f"live lab seed {seed}", file=sys.stderr)
    low, _, high = args.per_capture.partition("-")
    manifest = generate(args.out_dir, seed, sessions=args.sessions, per_capture=(int(low), int(high or low)),
                        lanes=args.lanes, midstream_share=args.midstream_share, max_bytes=args.max_bytes,
                        vnc=args.vnc, progress=lambda d, t, r: print(f"  {d}/{t} {r['file']} {r['packets']} packets "
                                                                      f"{r['seconds']} s", file=sys.stderr))
    print(json.dumps(manifest["totals"], indent=1))
    return 1 if manifest["totals"]["client_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
