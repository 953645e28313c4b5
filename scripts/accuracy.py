#!/usr/bin/env python3
"""Accuracy benchmark of the session classifier on a FRESH lab dataset.

    python scripts/accuracy.py [--seed N] [--captures N] [--sessions LO-HI] [--conditions varied]
                               [--midstream-share 0.35] [--max-bytes 32M] [--workers N]
                               [--out DIR --keep] [--dataset DIR] [--json FILE|-] [--check]

What it does: generates a dataset with ``dissect.port902.lab.dataset.generate`` (a seed
namespace of its own: the dataset seed is derived from ``--seed`` through a hash, so no seed
used while designing the classifier, the samples' 902-906 or ``dissect902 lab``'s defaults,
is ever reused), runs ``analyze`` on every capture, matches analysed sessions to labelled
authd connections by their TCP endpoints (direction-agnostic 5-tuple), and prints accuracy,
macro-F1, per-class precision / recall / F1 and the confusion matrix — separately for sessions
captured from their start ("full") and for those whose capture begins inside them
("mid-session"), each also without the snaplen-truncated captures — then a breakdown by
capture conditions and traffic model, and every misclassified session with the classifier's
reasons.

Default seed: a fresh one, drawn at random and printed (``--seed N`` repeats a run). A seed
whose errors were looked at while changing the classifier is spent: never report it again. Default size: 96 captures of 6-12 sessions, NFC up
to 32 MiB, 35 % of eligible sessions mid-session — about two minutes on two cores.

``--live`` measures on the LIVE lab instead (``dissect.port902.lab.live``: real client and
server processes, real VNC servers and viewers, the kernel's TCP through network namespaces
with delay / jitter / loss / rate limits, captured by tcpdump; needs root). Its seed is drawn
fresh by default and printed (``--seed`` repeats a run); ``--live-sessions`` (default 150)
client sessions over all features, ``--lanes`` captures in parallel. It is reported under its
own title, never mixed with the in-process lab's figures; scoring is the same.

Macro-F1 averages F1 over the true classes present (MKS, NFC, SOAP, VMXARGS, NONE); UNKNOWN is
a prediction only. A labelled session the analyser did not report at all counts as predicted
UNKNOWN and is listed as "missed". Targets: macro-F1 ≥ 0.98 (full), ≥ 0.90 (mid-session);
``--check`` exits 1 when a target is missed (without it the exit code is 0).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:          # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from dissect.port902.lab import dataset  # noqa: E402

CLASSES = ("MKS", "NFC", "SOAP", "VMXARGS", "NONE")
LABELS = CLASSES + ("UNKNOWN",)
TARGETS = {"full": 0.98, "midstream": 0.90}


def dataset_seed(seed: int) -> int:
    """The dataset seed used for benchmark seed ``seed`` (a namespace of its own)."""
    return int.from_bytes(hashlib.sha256(f"dissect902-accuracy:{seed}".encode()).digest()[:4], "big")


def parse_size(text: str) -> int:
    """'32M', '512K', '1G' or bytes."""
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def parse_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


# -- analysis (one capture per worker call) -------------------------------------------------------

def _endpoints(a_ip, a_port, b_ip, b_port) -> str:
    return "|".join(sorted((f"{a_ip}#{a_port}", f"{b_ip}#{b_port}")))


def analyze_capture(path: str) -> dict:
    """Analyse one capture; returns the labelled authd connections joined with their verdicts."""
    from dissect.port902 import analyze

    base = path.rsplit(".", 2 if path.endswith(".gz") else 1)[0]
    labels = json.loads(Path(base + ".labels.json").read_text())
    keys = base + ".keys"  # --keys: decrypt too; the metadata verdict is still what is scored
    started = time.perf_counter()
    result = analyze(path, keylog=keys if os.path.exists(keys) else None)
    elapsed = time.perf_counter() - started
    found = {}
    for s in result.sessions:
        found.setdefault(_endpoints(s.client_ip, s.client_port, s.server_ip, s.server_port), s)
    rows, matched = [], set()
    cap = labels["capture"].get("conditions", {})
    for conn in labels["connections"]:
        if conn["proto"] != "tcp" or conn["service"] != "authd":
            continue
        key = _endpoints(conn["client"]["ip"], conn["client"]["port"], conn["server"]["ip"], conn["server"]["port"])
        s = found.get(key)
        matched.add(key)
        traffic = conn.get("traffic") or {}
        cond = conn.get("conditions") or {}
        rows.append({
            "capture": os.path.basename(path), "uid": conn["uid"], "session": s.uid if s else None,
            "client": f"{conn['client']['ip']}:{conn['client']['port']}",
            "server": f"{conn['server']['ip']}:{conn['server']['port']}",
            "truth": conn["feature"], "predicted": (s.feature_inferred or s.feature) if s else "UNKNOWN",
            "missed": s is None, "decrypted": s.feature if s is not None and s.feature_inferred is not None else None,
            "confidence": (s.confidence_inferred if s.feature_inferred is not None else s.confidence) if s else None, "reasons": list(s.reasons) if s else [],
            "midstream": bool(conn.get("midstream")), "persona": conn["persona"], "transport": conn["transport"],
            "outcome": conn["outcome"],
            "model": "/".join(str(x) for x in (traffic.get("model") or conn["feature"].lower(),
                                               traffic.get("style") or traffic.get("profile") or traffic.get("kind"),
                                               traffic.get("direction")) if x),
            "style": traffic.get("style") or traffic.get("profile") or traffic.get("kind"),
            "direction": traffic.get("direction"), "bytes": traffic.get("bytes"),
            "tls": conn["expected"].get("tls_version"), "cipher": conn["expected"].get("tls_cipher"),
            "profile": cap.get("profile"), "network": cap.get("network"), "kind": cap.get("kind"),
            "snaplen": cap.get("snaplen"), "offload": bool(cap.get("offload")), "link": labels["capture"]["link"],
            "rtt_ms": round(1000 * cond["rtt_s"], 2) if cond.get("rtt_s") is not None else None,
            "loss": cond.get("loss_rate"), "notes": conn["notes"],
        })
    extra = [s.uid for k, s in found.items() if k not in matched]
    return {"capture": os.path.basename(path), "rows": rows, "extra_sessions": extra, "seconds": elapsed,
            "packets": labels["capture"]["packets"]}


# -- metrics ------------------------------------------------------------------------------------------

def metrics(rows: list[dict]) -> dict:
    """Accuracy, macro-F1, per-class scores and the confusion matrix of ``rows``."""
    confusion = {t: {p: 0 for p in LABELS} for t in LABELS}
    for r in rows:
        confusion[r["truth"]][r["predicted"]] += 1
    n = len(rows)
    correct = sum(confusion[c][c] for c in LABELS)
    per_class, f1s = {}, {}
    present = [c for c in CLASSES if sum(confusion[c].values())]
    for c in LABELS:
        tp = confusion[c][c]
        support = sum(confusion[c].values())
        predicted = sum(confusion[t][c] for t in LABELS)
        precision = tp / predicted if predicted else (1.0 if not support else 0.0)
        recall = tp / support if support else None
        if recall is None:
            f1 = None
        else:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s[c] = f1
        per_class[c] = {"precision": round(precision, 4), "recall": None if recall is None else round(recall, 4),
                        "f1": None if f1 is None else round(f1, 4), "support": support, "predicted": predicted}
    macro = sum(f1s[c] for c in present) / len(present) if present else None
    return {"sessions": n, "correct": correct, "accuracy": round(correct / n, 4) if n else None,
            "macro_f1": None if macro is None else round(macro, 4), "per_class": per_class,
            "confusion": confusion, "missed": sum(1 for r in rows if r["missed"])}


CONFIDENCE_BINS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0001)
HIGH_CONFIDENCE = 0.9  # among sessions at or above it, at least 95 % must be right (issue 8)


def calibration(rows: list[dict]) -> dict:
    """Reliability table (confidence bin -> sessions, mean confidence, share correct), the expected
    calibration error (bin-size weighted |accuracy - confidence|) and the precision of the
    high-confidence verdicts."""
    bins = []
    ece = 0.0
    scored = [r for r in rows if r["confidence"] is not None]
    for lo, hi in zip(CONFIDENCE_BINS, CONFIDENCE_BINS[1:]):
        inside = [r for r in scored if lo <= r["confidence"] < hi]
        if not inside:
            continue
        conf = sum(r["confidence"] for r in inside) / len(inside)
        acc = sum(r["truth"] == r["predicted"] for r in inside) / len(inside)
        ece += len(inside) / len(scored) * abs(acc - conf)
        bins.append({"from": lo, "to": min(hi, 1.0), "sessions": len(inside), "mean_confidence": round(conf, 4),
                     "accuracy": round(acc, 4)})
    high = [r for r in scored if r["confidence"] >= HIGH_CONFIDENCE]
    return {"bins": bins, "ece": round(ece, 4) if scored else None, "high_sessions": len(high),
            "high_accuracy": round(sum(r["truth"] == r["predicted"] for r in high) / len(high), 4) if high else None}


def breakdown(rows: list[dict], key: str) -> dict:
    groups = defaultdict(list)
    for r in rows:
        groups[str(r.get(key))].append(r)
    return {k: {"sessions": len(v), "accuracy": round(sum(1 for r in v if r["truth"] == r["predicted"]) / len(v), 4)}
            for k, v in sorted(groups.items())}


# -- report ---------------------------------------------------------------------------------------------

def _decrypted_agreement(rows: list[dict]) -> dict | None:
    """With key logs: how often the metadata verdict equals the decrypted feature, and the decrypted
    feature equals the label."""
    dec = [r for r in rows if r.get("decrypted")]
    if not dec:
        return None
    return {"sessions": len(dec), "metadata_agrees": sum(r["predicted"] == r["decrypted"] for r in dec),
            "decrypted_is_label": sum(r["truth"] == r["decrypted"] for r in dec),
            "disagreements": [{k: r[k] for k in ("capture", "uid", "truth", "predicted", "decrypted")}
                              for r in dec if r["predicted"] != r["decrypted"]][:50]}


def render(report: dict, out) -> None:
    def line(text: str = "") -> None:
        print(text, file=out)

    agreement = report.get("decrypted")
    if agreement:
        line(f"with key logs: {agreement['sessions']} sessions decrypted; the metadata verdict agrees with the "
             f"decrypted feature on {agreement['metadata_agrees']}, the decrypted feature is the label on "
             f"{agreement['decrypted_is_label']}")
        for d in agreement["disagreements"]:
            line(f"  {d['capture']} {d['uid']}: label {d['truth']}, metadata {d['predicted']}, decrypted {d['decrypted']}")

    d = report["dataset"]
    if report.get("live"):
        o = d["options"]
        line(f"dissect902 classifier accuracy — LIVE LAB (real processes, kernel TCP, tcpdump), seed {d['seed']}")
        line(f"impairment: {o['impairment']}; VNC server {o['vnc']}; {o['lanes']} lane(s); "
             f"client errors {d['totals'].get('client_errors', 0)}")
    else:
        line(f"dissect902 classifier accuracy — benchmark seed {report['seed']} (dataset seed {d['seed']}), "
             f"conditions {d['options']['conditions']}")
    line(f"dataset: {d['totals']['captures']} captures, {d['totals']['packets']:,} packets, "
         f"{d['totals']['bytes'] / 1e6:,.1f} MB, {d['totals']['authd_sessions']} authd sessions "
         f"({d['totals']['midstream']} mid-session); generated in {report['timing']['generate_s']:.1f} s, "
         f"analysed in {report['timing']['analyze_s']:.1f} s")
    line(f"features in the labels: " + ", ".join(f"{k} {v}" for k, v in d["totals"]["features"].items()))
    for part in ("full", "midstream"):
        m = report[part]
        title = "FULL SESSIONS (captured from the SYN)" if part == "full" else "MID-SESSION (capture starts inside)"
        line()
        line(f"== {title}: {m['sessions']} sessions")
        if not m["sessions"]:
            continue
        target = TARGETS[part]
        flag = "ok" if m["macro_f1"] is not None and m["macro_f1"] >= target else "BELOW TARGET"
        line(f"accuracy {m['accuracy']:.4f}   macro-F1 {m['macro_f1']:.4f}   (target ≥ {target:.2f}: {flag})"
             + (f"   missed by the analyser: {m['missed']}" if m["missed"] else ""))
        u = report["untruncated"][part]
        if u["sessions"] and u["sessions"] != m["sessions"]:
            line(f"without snaplen-truncated captures ({u['sessions']} sessions): accuracy {u['accuracy']:.4f}   "
                 f"macro-F1 {u['macro_f1']:.4f}")
        line()
        line(f"{'class':9} {'precision':>9} {'recall':>7} {'F1':>7} {'support':>8}")
        for c in LABELS:
            pc = m["per_class"][c]
            if not pc["support"] and not pc["predicted"]:
                continue
            rec = "-" if pc["recall"] is None else f"{pc['recall']:.3f}"
            f1 = "-" if pc["f1"] is None else f"{pc['f1']:.3f}"
            line(f"{c:9} {pc['precision']:9.3f} {rec:>7} {f1:>7} {pc['support']:8d}")
        line()
        line("confusion (rows: truth, columns: predicted)")
        line(f"{'':9}" + "".join(f"{c:>9}" for c in LABELS))
        for t in LABELS:
            if not sum(m["confusion"][t].values()):
                continue
            line(f"{t:9}" + "".join(f"{m['confusion'][t][p]:9d}" for p in LABELS))
        c = m.get("calibration")
        if c and c["bins"]:
            line()
            line(f"calibration: expected calibration error {c['ece']:.4f}; confidence ≥ {HIGH_CONFIDENCE}: "
                 f"{c['high_sessions']} sessions, {c['high_accuracy'] if c['high_accuracy'] is not None else '-'} "
                 "correct (target ≥ 0.95)")
            line(f"{'confidence':>14} {'sessions':>8} {'mean':>6} {'correct':>8}")
            for b in c["bins"]:
                line(f"{b['from']:6.2f} – {b['to']:4.2f} {b['sessions']:8d} {b['mean_confidence']:6.3f} {b['accuracy']:8.3f}")
    line()
    line("== accuracy by condition (all sessions)")
    for key in ("profile", "kind", "link", "tls"):
        parts = ", ".join(f"{k} {v['accuracy']:.3f} ({v['sessions']})" for k, v in report["breakdown"][key].items())
        line(f"{key:8} {parts}")
    line("== accuracy by traffic model (all sessions)")
    for k, v in report["breakdown"]["model"].items():
        line(f"  {k:34} {v['accuracy']:.3f} ({v['sessions']})")
    errors = report["errors"]
    line()
    line(f"== misclassified sessions: {len(errors)}" + (f" (showing {report['shown_errors']})"
                                                        if report["shown_errors"] < len(errors) else ""))
    for e in errors[: report["shown_errors"]]:
        where = "mid-session" if e["midstream"] else "full"
        detail = ", ".join(str(x) for x in (e["style"], e["direction"], e["bytes"] and f"{e['bytes']} B") if x)
        confidence = "" if e["confidence"] is None else f" ({e['confidence']:.2f})"
        line(f"- {e['capture']} {e['uid']} {e['client']} -> {e['server']}  truth {e['truth']} predicted "
             f"{e['predicted']}{confidence}"
             f"  [{where}; {e['persona']}; {e['transport']}; {e['model']}{': ' + detail if detail else ''}; "
             f"TLS {e['tls']} {e['cipher']}; {e['profile']}/{e['kind']}, rtt {e['rtt_ms']} ms, loss {e['loss']}, "
             f"snaplen {e['snaplen']}, link {e['link']}{', offload' if e['offload'] else ''}]")
        if e["missed"]:
            line("    (no session reported for this connection)")
        for reason in e["reasons"][:6]:
            line(f"    · {reason}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(),
                                     epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=None,
                        help="benchmark seed (default: a fresh one, drawn at random and printed; a seed whose "
                             "errors have been looked at is spent and must not be reported again)")
    parser.add_argument("--live", action="store_true", help="measure on a fresh LIVE lab set instead (root)")
    parser.add_argument("--live-sessions", type=int, default=150, help="client sessions of the live set (default 150)")
    parser.add_argument("--lanes", type=int, default=3, help="live captures run in parallel (default 3)")
    parser.add_argument("--captures", type=int, default=96, help="captures to generate (default 96)")
    parser.add_argument("--sessions", type=parse_range, default=(6, 12), metavar="LO-HI",
                        help="authd sessions per capture (default 6-12)")
    parser.add_argument("--conditions", choices=dataset.CONDITION_CHOICES, default="varied",
                        help="network/capture conditions (default varied: a profile drawn per capture)")
    parser.add_argument("--midstream-share", type=float, default=0.35,
                        help="share of eligible sessions captured from inside (default 0.35)")
    parser.add_argument("--max-bytes", type=parse_size, default=32 << 20, metavar="SIZE",
                        help="largest NFC transfer, e.g. 32M, 1G (default 32M)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="parallel processes for generation and analysis (default: CPUs, at most 4)")
    parser.add_argument("--out", help="write the dataset here (default: a temporary folder, removed afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the generated dataset")
    parser.add_argument("--dataset", help="evaluate an existing dataset folder (with dataset.json) instead")
    parser.add_argument("--json", metavar="FILE", help="write the full report as JSON to FILE ('-': stdout, no text)")
    parser.add_argument("--max-errors", type=int, default=400, help="misclassified sessions to print (default 400)")
    parser.add_argument("--check", action="store_true", help="exit 1 when macro-F1 misses a target")
    parser.add_argument("--keys", action="store_true",
                        help="write the lab's TLS key logs and analyse with them: reports how often the metadata "
                             "verdict agrees with the decrypted truth (the scores stay those of the metadata verdict)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.seed is None and not args.dataset:
        args.seed = int.from_bytes(os.urandom(4), "big")
        print(f"fresh benchmark seed {args.seed} (repeat with --seed {args.seed})", file=sys.stderr, flush=True)

    def note(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    temp = None
    if args.live and not args.dataset:
        from dissect.port902.lab import live
        if args.out:
            folder = args.out
        else:
            temp = folder = tempfile.mkdtemp(prefix="dissect902-live-")
        note(f"live lab: seed {args.seed}, {args.live_sessions} sessions, {args.lanes} lane(s), in {folder}")
        started = time.perf_counter()
        manifest = live.generate(folder, args.seed, sessions=args.live_sessions, lanes=args.lanes,
                                 midstream_share=args.midstream_share, max_bytes=min(args.max_bytes, 4 << 20),
                                 vnc="mixed", progress=lambda done, total, row: note(
                                     f"  {done}/{total} {row['file']} {row['packets']} packets, {row['seconds']} s"))
        generate_s = time.perf_counter() - started
    elif args.dataset:
        folder = args.dataset
        manifest = json.loads(Path(folder, "dataset.json").read_text())
        generate_s = 0.0
    else:
        if args.out:
            folder = args.out
        else:
            temp = folder = tempfile.mkdtemp(prefix="dissect902-accuracy-")
        seed = dataset_seed(args.seed)
        note(f"generating {args.captures} captures (dataset seed {seed}) in {folder} with {args.workers} worker(s)…")
        started = time.perf_counter()
        manifest = dataset.generate(
            folder, args.captures, seed, sessions_per_capture=args.sessions, conditions=args.conditions,
            midstream_share=args.midstream_share, max_bytes=args.max_bytes, workers=args.workers, prefix="acc",
            keys=args.keys,
            progress=lambda done, total, row: note(f"  {done}/{total} {row['file']} {row['packets']} packets"))
        generate_s = time.perf_counter() - started
    try:
        paths = [os.path.join(folder, row["file"]) for row in manifest["captures"]]
        note(f"analysing {len(paths)} captures…")
        started = time.perf_counter()
        if args.workers > 1 and len(paths) > 1:
            with concurrent.futures.ProcessPoolExecutor(max_workers=args.workers,
                                                        mp_context=dataset.pool_context()) as pool:
                results = list(pool.map(analyze_capture, paths))
        else:
            results = [analyze_capture(p) for p in paths]
        analyze_s = time.perf_counter() - started
    finally:
        if temp and not args.keep:
            shutil.rmtree(temp, ignore_errors=True)
        elif temp:
            note(f"dataset kept in {temp}")
    rows = [r for res in results for r in res["rows"]]
    full = [r for r in rows if not r["midstream"]]
    mid = [r for r in rows if r["midstream"]]
    errors = [r for r in rows if r["truth"] != r["predicted"]]
    errors.sort(key=lambda r: (r["midstream"], r["truth"], r["predicted"], r["capture"], r["uid"]))
    report = {
        "live": manifest.get("kind") == "live",
        "seed": args.seed if not args.dataset else None,
        "dataset": {"seed": manifest["seed"], "options": manifest["options"], "totals": manifest["totals"],
                    "folder": None if temp else folder},
        "timing": {"generate_s": round(generate_s, 1), "analyze_s": round(analyze_s, 1),
                   "analyze_packets_per_s": round(sum(r["packets"] for r in results) / max(1e-9, sum(r["seconds"] for r in results)))},
        "full": {**metrics(full), "calibration": calibration(full)},
        "midstream": {**metrics(mid), "calibration": calibration(mid)},
        "untruncated": {"full": metrics([r for r in full if r["kind"] != "snaplen"]),
                        "midstream": metrics([r for r in mid if r["kind"] != "snaplen"])},
        "breakdown": {key: breakdown(rows, key) for key in ("profile", "kind", "link", "tls", "model")},
        "extra_sessions": sum(len(r["extra_sessions"]) for r in results),
        "decrypted": _decrypted_agreement(rows),
        "errors": errors,
        "shown_errors": min(len(errors), args.max_errors),
        "targets": TARGETS,
    }
    if args.json == "-":
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        render(report, sys.stdout)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    ok = all(report[p]["macro_f1"] is None or report[p]["macro_f1"] >= t for p, t in TARGETS.items())
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
