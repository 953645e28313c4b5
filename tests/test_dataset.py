"""Lab datasets (``lab.dataset``): deterministic, true to the wire, covering every feature and persona.

Checks: the same seed gives identical labels; tshark sees exactly the labelled conversations and
packet counts; ``analyze`` agrees with the labels of full sessions on banner, handshakes,
transport and payload bytes; a small dataset contains every feature and persona; spilling a
large connection to disk changes nothing on the wire; offload super-frames keep the bytes and
mark IPv4 lengths as documented; ``scripts/accuracy.py`` runs end to end on a tiny dataset; the
``lab`` CLI parses and runs. Kept small (tiny transfers, short consoles, no background except
where needed): well under a minute.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
try:
    import dissect.port902.lab  # noqa: F401
except ModuleNotFoundError:              # running from a checkout without installing
    sys.path.insert(0, str(ROOT))

from dissect.port902 import analyze  # noqa: E402
from dissect.port902.lab import cli as lab_cli  # noqa: E402
from dissect.port902.lab import dataset, offload, samples, scenario  # noqa: E402
from dissect.port902.lab.labels import EXPECTED_DEFAULTS, FEATURES, LABELS_SCHEMA, TRANSPORTS  # noqa: E402
from dissect.port902.lab.netem import EmuTcp  # noqa: E402
from dissect.port902.lab.personas import PERSONAS  # noqa: E402

TSHARK = shutil.which("tshark")
TLS_NAMES = {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1", "TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3"}
OUTCOME = {"open": "established"}
SMALL = dict(sessions_per_capture=(5, 7), max_bytes=96 << 10, max_console_s=12.0, midstream_share=0.25)
SEED = 9020


def need_tshark() -> str:
    if TSHARK:
        return TSHARK
    if os.environ.get("DISSECT902_REQUIRE_TSHARK"):
        pytest.fail("tshark is required (DISSECT902_REQUIRE_TSHARK is set) but was not found")
    pytest.skip("tshark not installed")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    """Ten small captures: the first eight visit every era with all its personas."""
    out = tmp_path_factory.mktemp("dataset")
    manifest = dataset.generate(out, 10, SEED, background=True, **SMALL)
    return out, manifest


def _labels(folder: Path, row: dict) -> dict:
    return json.loads((folder / row["labels"]).read_text())


def _authd(labels: dict) -> list[dict]:
    return [c for c in labels["connections"] if c["proto"] == "tcp" and c["service"] == "authd"]


def test_same_seed_same_labels(tmp_path):
    opts = dataset.Options(**{**SMALL, "sessions_per_capture": (4, 5)})
    for index in (0, 5):
        a = dataset.write_capture(tmp_path / "a", SEED, index, opts)
        b = dataset.write_capture(tmp_path / "b", SEED, index, opts)
        assert a["file"] == b["file"] and a["packets"] == b["packets"]
        assert _labels(tmp_path / "a", a) == _labels(tmp_path / "b", b)
        other = dataset.build_capture(SEED + 1, index, opts)[0]
        assert [f.label["client"] for f in other.flows] != [c["client"] for c in _labels(tmp_path / "a", a)["connections"]]


def test_manifest_and_labels_schema(small):
    folder, manifest = small
    assert manifest["schema"] == dataset.DATASET_SCHEMA and len(manifest["captures"]) == 10
    assert json.loads((folder / "dataset.json").read_text())["totals"] == manifest["totals"]
    for row in manifest["captures"]:
        labels = _labels(folder, row)
        assert labels["schema"] == LABELS_SCHEMA and labels["capture"]["file"] == row["file"]
        assert labels["dataset"] == {"schema": dataset.DATASET_SCHEMA, "seed": SEED, "index": labels["dataset"]["index"]}
        for conn in labels["connections"]:
            assert conn["feature"] in FEATURES and conn["transport"] in TRANSPORTS
            assert set(conn["expected"]) == set(EXPECTED_DEFAULTS)
            assert isinstance(conn["midstream"], bool) and conn["frames"]["count"] > 0
            assert conn["midstream"] == (not conn["captured_from_start"])
            if conn["midstream"]:
                assert conn["conditions"]["capture_from"] > conn["start_ts"]
            if conn["service"] == "authd":
                assert conn["traffic"] and conn["traffic"]["model"]


def test_every_feature_and_persona_appears(small):
    folder, manifest = small
    conns = [c for row in manifest["captures"] for c in _authd(_labels(folder, row))]
    assert {c["feature"] for c in conns} == set(FEATURES)
    assert {c["persona"] for c in conns} == set(PERSONAS)
    assert any(c["midstream"] for c in conns) and any(not c["midstream"] for c in conns)
    nfc = {(c["traffic"]["style"], c["traffic"]["direction"]) for c in conns if c["feature"] == "NFC"}
    assert {s for s, _ in nfc} >= {"vddk-aio", "nfclib"} and {d for _, d in nfc} == {"read", "write"}
    versions = {c["expected"]["tls_version"] for c in conns}
    assert {"TLSv1", "TLSv1.2", "TLSv1.3"} <= versions
    ciphers = {c["expected"]["tls_cipher"] for c in conns if c["expected"]["tls_cipher"]}
    assert any("CHACHA20" in x for x in ciphers) and any(x.endswith("-SHA") or "SHA256" in x and "GCM" not in x
                                                         for x in ciphers)


@pytest.mark.tshark
def test_labels_agree_with_tshark(small):
    tshark = need_tshark()
    folder, manifest = small
    for row in manifest["captures"]:
        labels = _labels(folder, row)
        path = folder / row["file"]
        out = subprocess.run([tshark, "-r", str(path), "-q", "-z", "conv,tcp", "-z", "conv,udp"],
                             capture_output=True, text=True, check=True).stdout
        sections: dict[str, set] = {"tcp": set(), "udp": set()}
        current = None
        for line in out.splitlines():
            if line.endswith("Conversations"):
                current = line.split()[0].lower()
            elif "<->" in line and current in sections:
                sections[current].add(frozenset(line.split()[0:3:2]))
        for proto, pairs in sections.items():
            expected = {frozenset((f"{c['client']['ip']}:{c['client']['port']}", f"{c['server']['ip']}:{c['server']['port']}"))
                        for c in labels["connections"] if c["proto"] == proto}
            assert pairs == expected, (row["file"], proto)
        count = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-e", "frame.number"],
                               capture_output=True, text=True, check=True).stdout.split()
        assert len(count) == labels["capture"]["packets"] == sum(c["frames"]["count"] for c in labels["connections"])


def test_analyze_agrees_on_full_sessions(small):
    folder, manifest = small
    checked = 0
    for row in manifest["captures"]:
        labels = _labels(folder, row)
        result = analyze(folder / row["file"])
        found = {frozenset(((s.client_ip, s.client_port), (s.server_ip, s.server_port))): s for s in result.sessions}
        for conn in _authd(labels):
            key = frozenset(((conn["client"]["ip"], conn["client"]["port"]), (conn["server"]["ip"], conn["server"]["port"])))
            s = found.get(key)
            where = f"{row['file']} {conn['uid']}"
            if conn["midstream"]:
                if s is not None:
                    assert s.banner is None and s.state == "partial", where
                continue
            assert s is not None, where
            if labels["capture"]["conditions"]["snaplen"] < 262144:
                continue                                   # truncated: what remains visible varies
            e = conn["expected"]
            assert (s.banner.text if s.banner else None) == e["banner"], where
            assert len(s.handshakes) == e["tls_handshakes"], where
            assert s.tls_version == TLS_NAMES.get(e["tls_version"]), where
            assert s.transport == conn["transport"], where
            assert s.continued_in_clear == e["continues_in_clear"], where
            assert s.bytes == (conn["payload_bytes"]["c2s"], conn["payload_bytes"]["s2c"]), where
            if conn["server"]["port"] in (902, 903, 912):      # elsewhere the greeting opens the session
                assert s.state == OUTCOME.get(conn["outcome"], conn["outcome"]), where
            checked += 1
    assert checked >= 40


def _bulk(spill_packets: int, **kw) -> EmuTcp:
    conv = EmuTcp("10.9.0.1", 50123, "10.9.0.2", 902, 1.7e9, rtt=0.02, rng=random.Random(7), jitter=0.002,
                  loss_rate=0.01, spill_packets=spill_packets, **kw)
    t = conv.open(mark="syn")
    for n in range(6):
        conv.client_send(b"R" * 44, at=conv.ready("client") + 0.001, mark=f"req{n}")
        conv.server_send(bytes([n]) * 300000, at=conv.ready("server") + 0.002)
    conv.close()
    return conv


def test_spilling_to_disk_changes_nothing_on_the_wire():
    held, spilled = _bulk(10**9), _bulk(500)
    try:
        assert spilled._spilled > 0 and held._spilled == 0
        assert list(spilled.records()) == list(held.records())
        assert spilled.mark_times == held.mark_times and spilled.payload_bytes() == (264, 1800000)
        assert spilled.conditions()["injected_total"] == len(held.events) > 0
        times = [t for t, _, _ in spilled.records()]
        assert times == sorted(times)
        assert next(iter(spilled.records()))[2] == "syn"
    finally:
        spilled.discard()


def test_server_speaks_only_after_the_handshake():
    conv = EmuTcp("10.9.0.1", 50125, "10.9.0.2", 902, 1.7e9, rtt=0.05, vantage=0.9, rng=random.Random(9))
    conv.open()
    conv.server_send(b"220 hello\r\n", at=conv.ready("server"))
    (t_syn, _, _), (t_synack, _, _), (t_ack, ack, _), (t_banner, banner, _) = list(conv.records())[:4]
    assert ack[33] == 0x10 and banner.endswith(b"220 hello\r\n")       # final ACK, then the greeting
    assert t_banner >= t_ack + 2 * conv.server.dist


def test_offload_super_frames():
    conv = EmuTcp("10.9.0.1", 50124, "10.9.0.2", 902, 1.7e9, rtt=0.001, rng=random.Random(8))
    t = conv.open()
    conv.client_send(b"U" * 200000, at=t)
    conv.server_send(b"ok", at=conv.ready("server"))
    conv.close()
    plain = list(conv.records())
    local = {bytes([10, 9, 0, 1])}
    merged = list(offload.coalesce(plain, local, max_payload=65483, zero_length=True))
    assert len(merged) < len(plain)
    big = [p for _, p, _ in merged if len(p) > 1600]
    assert big and all(p[2:4] == b"\0\0" and p[12:16] == bytes([10, 9, 0, 1]) for p in big)

    def payload(records, src):
        total = 0
        for _, p, _ in records:
            ihl, off = (p[0] & 15) * 4, (p[(p[0] & 15) * 4 + 12] >> 4) * 4
            if p[12:16] == src:
                total += len(p) - ihl - off
        return total

    assert payload(merged, bytes([10, 9, 0, 1])) == payload(plain, bytes([10, 9, 0, 1])) == 200000
    real = list(offload.coalesce(plain, local, max_payload=30000))
    lengths = [int.from_bytes(p[2:4], "big") for _, p, _ in real]
    assert all(length == len(p) for length, (_, p, _) in zip(lengths, real))
    assert [t for t, _, _ in merged] == sorted(t for t, _, _ in merged)


def test_large_nfc_transfer_streams(tmp_path):
    sc = dataset.DatasetScenario("big", 1)
    host = dataset.SiteHost("esxi-big.example", "10.0.0.10", "esxi8", cert_name="localhost.localdomain")
    client = scenario.Client("bk", "10.0.0.50", "linux")
    from dissect.port902.lab import sessions
    plan = sessions.NfcPlan("vddk-aio", False, 24 << 20, io_size=1 << 20)
    flow = sessions.nfc_session(sc, client, host, sc.at(0), plan, tls1="1.2", tls2="1.2")
    assert flow.conn._spilled > 0                      # the transfer left memory as it was built
    labels = sc.write(tmp_path / "big.pcap")
    assert labels["connections"][0]["payload_bytes"]["s2c"] > 24 << 20
    assert flow.conn._spill_path is None               # spill file removed after writing


def _accuracy_module():
    spec = importlib.util.spec_from_file_location("accuracy", ROOT / "scripts" / "accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["accuracy"] = module          # so worker processes can find its functions
    spec.loader.exec_module(module)
    return module


def test_accuracy_script_smoke(tmp_path, capsys):
    accuracy = _accuracy_module()
    out = tmp_path / "report.json"
    code = accuracy.main(["--seed", "11", "--captures", "3", "--sessions", "4-5", "--max-bytes", "64K", "--workers", "1",
                          "--out", str(tmp_path / "ds"), "--json", str(out), "-q"])
    assert code == 0
    text = capsys.readouterr().out
    assert "FULL SESSIONS" in text and "confusion" in text and "macro-F1" in text
    report = json.loads(out.read_text())
    assert report["full"]["sessions"] + report["midstream"]["sessions"] == report["dataset"]["totals"]["authd_sessions"]
    assert set(report["full"]["confusion"]) == set(accuracy.LABELS)
    assert report["full"]["accuracy"] >= 0.85  # a floor: the classifier must place most lab sessions
    assert report["full"]["calibration"]["bins"] and "calibration" in text
    assert accuracy.dataset_seed(11) != 11
    again = accuracy.main(["--dataset", str(tmp_path / "ds"), "--json", "-", "-q", "--workers", "2"])
    assert again == 0 and json.loads(capsys.readouterr().out)["full"] == report["full"]


def test_calibration_table_and_ece():
    accuracy = _accuracy_module()
    rows = [{"truth": "MKS", "predicted": "MKS", "confidence": 0.95}] * 9 + \
           [{"truth": "NFC", "predicted": "MKS", "confidence": 0.95}] + \
           [{"truth": "NONE", "predicted": "NONE", "confidence": 0.55}] * 2
    c = accuracy.calibration(rows)
    assert c["high_sessions"] == 10 and c["high_accuracy"] == 0.9
    assert [b["sessions"] for b in c["bins"]] == [2, 10]
    # |1.0 - 0.55| * 2/12 + |0.9 - 0.95| * 10/12
    assert c["ece"] == round(0.45 * 2 / 12 + 0.05 * 10 / 12, 4)


def test_metrics_macro_f1():
    accuracy = _accuracy_module()
    rows = [{"truth": t, "predicted": p, "missed": False} for t, p in
            [("MKS", "MKS"), ("MKS", "NFC"), ("NFC", "NFC"), ("NONE", "UNKNOWN")]]
    m = accuracy.metrics(rows)
    assert m["accuracy"] == 0.5 and m["confusion"]["NONE"]["UNKNOWN"] == 1
    # F1: MKS 2/3, NFC 2/3, NONE 0 -> macro over the three true classes
    assert m["macro_f1"] == round((2 / 3 + 2 / 3 + 0) / 3, 4)


def test_lab_cli(tmp_path, capsys):
    assert lab_cli.CONDITIONS == dataset.CONDITION_CHOICES
    assert list(lab_cli.SCENARIOS) == samples.scenario_names()
    parser = argparse.ArgumentParser(prog="dissect902")
    lab_cli.add_parser(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["lab", "generate", "--help"])
    assert "conditions" in capsys.readouterr().out
    args = parser.parse_args(["lab", "generate", "-o", str(tmp_path), "-n", "1", "--seed", "3", "--sessions", "3",
                              "--max-bytes", "32K", "--max-console", "5", "--no-background", "-q"])
    assert args.func(args) == 0
    assert json.loads((tmp_path / "dataset.json").read_text())["captures"][0]["file"].startswith("lab-3-0000.")
    args = parser.parse_args(["lab", "scenario", "legacy_login", "-o", str(tmp_path / "one")])
    assert args.func(args) == 0 and (tmp_path / "one" / "legacy-login.labels.json").exists()
    args = parser.parse_args(["lab"])
    assert args.func(args) == 2
