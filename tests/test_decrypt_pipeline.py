"""Decryption in the pipeline (issue 9): samples and lab captures with their key logs, the
decrypted dialogue and feature beside the metadata verdict, RFB / NFC / HTTP inside, bad keys,
pcapng Decryption Secrets Blocks, the command line, and tshark as an oracle for TLS #1."""

import json
from pathlib import Path
import re
import shutil
import struct
import subprocess
import sys

import pytest

from dissect.port902 import analyze
from dissect.port902.cli.main import main

from conftest import SAMPLES

KEYED = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".pcap", ".pcapng") and p.with_suffix(".keys").exists())


def _labels(cap):
    with open(cap.with_suffix(".labels.json")) as handle:
        return json.load(handle)


def _match(result, conn):
    for s in result.sessions:
        if (s.client_ip, s.client_port, s.server_port) == (conn["client"]["ip"], conn["client"]["port"],
                                                         conn["server"]["port"]):
            return s
    raise AssertionError(f"no session for {conn['uid']}")


@pytest.fixture(scope="module")
def lab_set(tmp_path_factory):
    """Lab captures with key logs: TLS 1.0-1.3, GCM, ChaCha20, CBC with and without EtM."""
    out = tmp_path_factory.mktemp("labkeys")
    subprocess.run([sys.executable, "-m", "dissect.port902.cli.main", "lab", "generate", "-o", str(out), "-n", "3",
                    "--seed", "3", "--max-bytes", "256K", "--max-console", "60", "--keys", "--conditions",
                    "clean", "-q"], check=True)
    caps = sorted(p for p in out.iterdir() if ".pcap" in p.name)
    return [(c, out / (c.name.split(".pcap")[0] + ".keys"), out / (c.name.split(".pcap")[0] + ".labels.json"))
            for c in caps]


@pytest.mark.parametrize("cap", KEYED, ids=lambda p: p.name)
def test_samples_decrypted_feature_is_the_label(cap):
    result = analyze(cap, keylog=cap.with_suffix(".keys"))
    plain = analyze(cap)
    checked = 0
    for conn in _labels(cap)["connections"]:
        if (conn["service"] != "authd" or conn["proto"] != "tcp" or not conn["expected"]["tls_handshakes"]
                or not conn["captured_from_start"]):
            continue
        s = _match(result, conn)
        p = _match(plain, conn)
        assert p.decryption is None and p.feature_inferred is None
        hk = s.decryption.handshakes
        assert [h.keys for h in hk] == ["found"] * conn["expected"]["tls_handshakes"], conn["uid"]
        if s.handoff_from is None and s.handoff_to is None or s.server_port == 902:
            assert s.feature == conn["feature"], (conn["uid"], s.reasons)
            assert s.confidence == 1.0 and s.reasons[0].startswith("decrypted: ")
        if s.handoff_to is None:  # the metadata verdict is the one computed without keys
            assert (s.feature_inferred or s.feature) == p.feature
            assert s.confidence_inferred in (None, p.confidence)
        checked += 1
    assert checked or cap.name == "unanswered-syn.pcap"  # its only TLS is HTTPS on 443
    assert not [w for w in result.weird if w.kind.startswith(("decrypt", "rfb"))]


def test_decrypted_dialogue_is_redacted_like_plaintext():
    cap = SAMPLES / "esxi8-console.pcap"
    conn = [c for c in _labels(cap)["connections"] if c["service"] == "authd"][0]
    ticket = conn["expected"]["users"][0]
    result = analyze(cap, keylog=cap.with_suffix(".keys"))
    s = _match(result, conn)
    lines = [ln for ln in s.dialogue if ln.decrypted]
    assert [ln.verb for ln in lines if ln.from_client] == ["USER", "PASS", "THUMBPRINT", "CONNECT"]
    assert [ln.code for ln in lines if not ln.from_client] == [331, 230, 200, 200]
    assert s.connect_kind == "mks" and s.connect_target == conn["expected"]["target"]
    assert s.login_outcome == "accepted"
    doc = json.dumps(result.to_dict())
    assert ticket not in doc and "<redacted>" in doc
    shown = analyze(cap, keylog=cap.with_suffix(".keys"), show_secrets=True)
    assert ticket in json.dumps(shown.to_dict())
    # the metadata view did not see the decrypted lines
    assert not any(ln.decrypted for ln in s.visible["dialogue"])


def test_rfb_inside_tls2():
    cap = SAMPLES / "esxi8-console.pcap"
    conn = [c for c in _labels(cap)["connections"] if c["service"] == "authd"][0]
    w, h = map(int, re.search(r"(\d+)x(\d+)", conn["notes"]).groups())
    vm = re.search(r"console of (\S+),", conn["notes"]).group(1)
    s = _match(analyze(cap, keylog=cap.with_suffix(".keys")), conn)
    rfb = s.decryption.rfb_summary()
    assert (rfb["width"], rfb["height"]) == (w, h)
    assert rfb["handshake"] == 2 and rfb["desync"] is None
    assert "VMwareCursor" in rfb["encodings"][0] and rfb["encodings"][0][0] == "ZRLE"
    assert rfb["key_events"] > 0 and rfb["key_events"] % 2 == 0  # every key goes down and up
    assert rfb["framebuffer_updates"] >= 1 and rfb["rectangles"]["ZRLE"] >= 1
    assert rfb["name"] == vm or rfb["name"]  # the desktop name is what ServerInit said
    keys = [m for _, m in s.decryption.rfb_messages if m.name == "KeyEvent"]
    assert keys and all(m.fields["keysym"] == "<redacted>" for m in keys)
    shown = _match(analyze(cap, keylog=cap.with_suffix(".keys"), show_secrets=True), conn)
    assert all(isinstance(m.fields["keysym"], int) for _, m in shown.decryption.rfb_messages if m.name == "KeyEvent")


def test_nfc_and_http_inside():
    cap = SAMPLES / "nfc-transfers.pcapng"
    result = analyze(cap, keylog=cap.with_suffix(".keys"))
    nbdssl = [s for s in result.sessions if s.decryption and s.decryption.inner.get(2) == "nfc"]
    assert nbdssl
    for s in nbdssl:
        assert s.decryption.nfc_counts and s.feature == "NFC"
    mixed = SAMPLES / "mixed-esxi.pcap"
    result = analyze(mixed, keylog=mixed.with_suffix(".keys"))
    soap = [c for c in _labels(mixed)["connections"] if c["feature"] == "SOAP"]
    assert soap
    for conn in soap:
        s = _match(result, conn)
        requests = [m for _, m in s.decryption.http_messages if m.from_client]
        responses = [m for _, m in s.decryption.http_messages if not m.from_client]
        assert requests and all(m.method == "POST" and m.target == "/sdk" for m in requests)
        assert len(responses) == len(requests) and all(m.status == 200 for m in responses)
        assert all(m.body_bytes > 0 for m in requests)


def test_lab_every_suite_family_decrypts(lab_set):
    families = set()
    for cap, keys, labels in lab_set:
        result = analyze(cap, keylog=keys)
        assert not [w for w in result.weird if w.kind.startswith("decrypt")]
        with open(labels) as handle:
            conns = json.load(handle)["connections"]
        for conn in conns:
            if conn["service"] != "authd" or conn["proto"] != "tcp" or not conn["captured_from_start"]:
                continue
            s = _match(result, conn)
            if not conn["expected"]["tls_handshakes"]:
                continue
            for h in s.decryption.handshakes:
                assert h.keys == "found", (cap.name, conn["uid"])
                families.add((h.version, h.suite.cipher, h.etm))
            assert s.feature == conn["feature"], (cap.name, conn["uid"], s.reasons)
    versions = {v for v, _, _ in families}
    assert {0x0301, 0x0303, 0x0304} <= versions
    assert {"cbc", "gcm", "chacha"} <= {c for _, c, _ in families}


def _corrupt(text: str, client_random: str) -> str:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == client_random:
            line = f"{parts[0]} {parts[1]} {'00' * (len(parts[2]) // 2)}"
        out.append(line)
    return "\n".join(out) + "\n"


def test_wrong_key_is_a_weird_row_and_the_rest_is_decrypted(tmp_path):
    cap = SAMPLES / "mixed-esxi.pcap"
    good = analyze(cap, keylog=cap.with_suffix(".keys"))
    victim = next(s for s in good.sessions if s.decryption and s.decryption.handshakes
                  and s.decryption.handshakes[0].version == 0x0303 and s.feature == "MKS")
    cr = victim.decryption.handshakes[0].client_random.hex()
    bad = tmp_path / "bad.keys"
    bad.write_text(_corrupt(cap.with_suffix(".keys").read_text(), cr))
    result = analyze(cap, keylog=bad)
    weird = [w for w in result.weird if w.kind == "decrypt_failed"]
    assert weird and {w.uid for w in weird} == {victim.uid}
    assert all("TLS #1" in w.detail for w in weird)
    s = result.session(victim.uid)
    assert s.decryption.handshakes[0].failed == [True, True]
    assert s.decryption.handshakes[1].records[0] > 0  # TLS #2 has its own, good keys
    others = [x for x in result.sessions if x.uid != victim.uid and x.decryption and x.decryption.decrypted]
    assert len(others) == len([x for x in good.sessions if x.uid != victim.uid and x.decryption
                               and x.decryption.decrypted])


def _with_dsb(src, dst, keys: bytes):
    data = src.read_bytes()
    assert struct.unpack("<I", data[:4])[0] == 0x0A0D0D0A
    shb_len = struct.unpack("<I", data[4:8])[0]
    pad = b"\x00" * (-len(keys) % 4)
    body = struct.pack("<II", 0x544C534B, len(keys)) + keys + pad
    block = struct.pack("<II", 0x0A, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    dst.write_bytes(data[:shb_len] + block + data[shb_len:])


def test_decryption_secrets_block_is_used_without_keylog(tmp_path):
    cap = SAMPLES / "nfc-transfers.pcapng"
    out = tmp_path / "with-dsb.pcapng"
    _with_dsb(cap, out, cap.with_suffix(".keys").read_bytes())
    result = analyze(out)
    decrypted = [s for s in result.sessions if s.decryption and s.decryption.decrypted]
    assert decrypted and all(s.confidence == 1.0 for s in decrypted)
    assert len(decrypted) == len([s for s in analyze(cap, keylog=cap.with_suffix(".keys")).sessions
                                  if s.decryption and s.decryption.decrypted])


def test_cli_keylog(tmp_path, capsys):
    cap = SAMPLES / "esxi8-console.pcap"
    assert main(["analyze", str(cap), "--keylog", str(tmp_path / "nope.keys")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "key log" in err
    out = tmp_path / "o.json"
    assert main(["analyze", str(cap), "--keylog", str(cap.with_suffix(".keys")), "-f", "json", "-o", str(out), "-q"]) == 0
    doc = json.loads(out.read_text())
    s = [x for x in doc["sessions"] if x["decryption"]][0]
    assert s["feature"] == "MKS" and s["confidence"] == 1.0 and s["decryption"]["rfb"]["width"]
    assert any(line["decrypted"] for line in s["dialogue"])


def _tshark_plaintext(cap, keys, stream):
    out = subprocess.run(["tshark", "-r", str(cap), "-o", f"tls.keylog_file:{keys}", "-d", "tcp.port==902,tls",
                          "-d", "tcp.port==903,tls", "-q", "-z", f"follow,tls,raw,{stream}"],
                         capture_output=True, text=True, check=True).stdout
    body = out.split("=" * 67)[1] if out.count("=" * 67) >= 2 else ""
    node0, indented = bytearray(), bytearray()
    first = ""
    for line in body.splitlines():
        if line.startswith("Node 0: "):
            first = line[len("Node 0: "):]
        if not line.strip() or line.startswith(("Follow", "Filter", "Node")):
            continue
        (indented if line.startswith("\t") else node0).extend(bytes.fromhex(line.strip()))
    return first, bytes(node0), bytes(indented)


OBSERVED: set = set()


def _tshark_streams(cap):
    out = subprocess.run(["tshark", "-r", str(cap), "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0", "-T", "fields",
                          "-e", "tcp.stream", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport"],
                         capture_output=True, text=True, check=True).stdout
    streams = {}
    for line in out.splitlines():
        stream, ip4, ip6, port = line.split("\t")
        streams.setdefault((ip4 or ip6, int(port)), int(stream))
    return streams


def _oracle(cap, keys):
    result = analyze(cap, keylog=keys, keep_plaintext=True)
    streams = _tshark_streams(cap)
    compared = 0
    for s in result.sessions:
        dec = s.decryption
        if dec is None or not dec.handshakes or dec.handshakes[0].keys != "found":
            continue
        def mine(hs, side):
            return b"".join(d for h, fc, _, _, d, _ in dec.plaintext if h == hs and fc == side)
        node0, first, second = _tshark_plaintext(cap, keys, streams[(s.client_ip, s.client_port)])
        client_first = node0 == f"{s.client_ip}:{s.client_port}" or node0 == s.client
        c2s, s2c = (first, second) if client_first else (second, first)
        # TLS #1 byte for byte; tshark 4.0 follows TLS #2 only when it is TLS 1.3 (a fresh clear
        # ClientHello record), and then appends its plaintext to the same conversation
        for side, theirs in ((True, c2s), (False, s2c)):
            assert theirs in (mine(1, side), mine(1, side) + mine(2, side)), (s.uid, side)
            assert theirs.startswith(mine(1, side))
            OBSERVED.add((dec.handshakes[0].version, len(dec.handshakes), theirs == mine(1, side) + mine(2, side)
                          and bool(mine(2, side))))
        compared += bool(mine(1, True) and mine(1, False))
    return compared


@pytest.mark.tshark
@pytest.mark.parametrize("cap", KEYED, ids=lambda p: p.name)
def test_tls1_plaintext_equals_tshark(cap):
    assert _oracle(cap, cap.with_suffix(".keys")) or cap.name == "unanswered-syn.pcap"


@pytest.mark.tshark
def test_tls1_plaintext_equals_tshark_on_lab_suites(lab_set):
    assert sum(_oracle(cap, keys) for cap, keys, _ in lab_set) >= 10


@pytest.mark.tshark
def test_export_decrypted_is_read_by_tsharks_vnc_dissector(tmp_path):
    cap = SAMPLES / "mixed-esxi.pcap"
    out = tmp_path / "inner.pcapng"
    assert main(["analyze", str(cap), "--keylog", str(cap.with_suffix(".keys")), "--export-decrypted", str(out),
                 "-q", "-f", "json", "-o", str(tmp_path / "r.json")]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    mine = sorted((s["decryption"]["rfb"]["width"], s["decryption"]["rfb"]["height"], s["decryption"]["rfb"]["name"])
                  for s in doc["sessions"] if s["decryption"] and s["decryption"]["rfb"])
    assert mine
    fields = subprocess.run(["tshark", "-r", str(out), "-d", "tcp.port==5900,vnc", "-Y", "vnc.width", "-T", "fields",
                             "-e", "vnc.width", "-e", "vnc.height", "-e", "vnc.desktop_name"],
                            capture_output=True, text=True, check=True).stdout
    theirs = sorted((int(w), int(h), name) for w, h, name in (x.split("\t") for x in fields.splitlines()))
    assert theirs == mine
    # authd lines of TLS #1 went to 902 as a cleartext conversation
    lines = subprocess.run(["tshark", "-r", str(out), "-Y", "tcp.port==902 && tcp.len>0", "-T", "fields",
                            "-e", "tcp.payload"], capture_output=True, text=True, check=True).stdout
    text = b"".join(bytes.fromhex(x.replace(":", "")) for x in lines.split())
    assert b"CONNECT " in text and b"200 Connect" in text


def test_decrypted_frames(tmp_path):
    from dissect.port902.output.frames import SCHEMAS

    cap = SAMPLES / "esxi8-console.pcap"
    result = analyze(cap, keylog=cap.with_suffix(".keys"))
    s = [x for x in result.sessions if x.decryption and x.decryption.rfb][0]
    summary = s.decryption.rfb_summary()
    rfb = result.rfb_messages_frame()
    assert list(rfb.columns) == list(SCHEMAS["rfb_messages"])
    init = rfb[rfb.message == "ServerInit"].iloc[0]
    assert (init.width, init.height, init["name"]) == (summary["width"], summary["height"], summary["name"])
    keys = rfb[rfb.message == "KeyEvent"]
    assert len(keys) == summary["key_events"] and set(keys.keysym) == {"<redacted>"}
    assert len(rfb[rfb.message == "FramebufferUpdate"]) == summary["framebuffer_updates"]
    assert (rfb[rfb.message == "FramebufferUpdate"].rectangles >= 1).all()
    sf = result.sessions_frame()
    row = sf[sf.uid == s.uid].iloc[0]
    assert row.feature == "MKS" and row.confidence == 1.0 and row.feature_inferred == s.feature_inferred
    assert analyze(cap).sessions_frame().feature_inferred.isna().all()
    shown = analyze(cap, keylog=cap.with_suffix(".keys"), show_secrets=True).rfb_messages_frame()
    assert shown[shown.message == "KeyEvent"].keysym.str.startswith("0x").all()
    # without keys: empty frames that still have their columns
    plain = analyze(cap)
    for name in ("rfb_messages", "nfc_operations", "http"):
        df = getattr(plain, f"{name}_frame")()
        assert df.empty and list(df.columns) == list(SCHEMAS[name])
    mixed = SAMPLES / "mixed-esxi.pcap"
    result = analyze(mixed, keylog=mixed.with_suffix(".keys"))
    http = result.http_frame()
    assert len(http[http.direction == "client_to_server"]) == len(http[http.direction == "server_to_client"]) > 0
    nfc = analyze(SAMPLES / "nfc-transfers.pcapng", keylog=SAMPLES / "nfc-transfers.keys").nfc_operations_frame()
    assert not nfc.empty and (nfc.handshake == 2).all() and nfc.path.notna().any()
    out = tmp_path / "rfb.csv"
    assert main(["analyze", str(cap), "--keylog", str(cap.with_suffix(".keys")), "-f", "csv", "--table",
                 "rfb_messages", "-o", str(out), "-q"]) == 0
    assert out.read_text().count("\n") == len(rfb) + 1


def test_decrypted_secrets_reach_no_output(tmp_path):
    """PASS arguments, tickets and THUMBPRINT tokens read from decrypted TLS #1 are redacted in
    every table and format, as they are when a daemon speaks in clear."""
    from dissect.port902.output.frames import SCHEMAS

    cap = SAMPLES / "mixed-esxi.pcap"
    keys = str(cap.with_suffix(".keys"))
    shown = analyze(cap, keylog=keys, show_secrets=True)
    secrets = set()
    for s in shown.sessions:
        for ln in s.dialogue:
            if ln.decrypted and ln.verb in ("PASS", "THUMBPRINT", "SESSION", "USER") and " " in ln.text:
                arg = ln.text.split(" ", 1)[1].strip()
                if (ln.verb != "USER" or len(arg) > 30) and len(arg) >= 12:  # USER: when it is a ticket;
                    secrets.add(arg)  # short words (root, password) also occur in ordinary text
    secrets.discard("PlainText")
    assert len(secrets) >= 3
    outputs = []
    for table in SCHEMAS:
        out = tmp_path / f"{table}.csv"
        assert main(["analyze", str(cap), "--keylog", keys, "-f", "csv", "--table", table, "-o", str(out), "-q"]) == 0
        outputs.append(out.read_text())
    for fmt in ("json", "jsonl", "table"):
        out = tmp_path / f"o.{fmt}"
        assert main(["analyze", str(cap), "--keylog", keys, "-f", fmt, "-o", str(out), "-q"]) == 0
        outputs.append(out.read_text())
    text = "\n".join(outputs)
    assert "<redacted>" in text
    for secret in secrets:
        assert secret not in text


@pytest.mark.parametrize("seed", range(6))
def test_damaged_capture_with_keys_never_raises(tmp_path, seed):
    """Flipped bytes and a cut anywhere: rows, not tracebacks, and what is intact still decrypts."""
    import random

    cap = SAMPLES / "mixed-esxi.pcap"
    data = bytearray(cap.read_bytes())
    rng = random.Random(seed)
    for _ in range(40):
        i = rng.randrange(24, len(data))
        data[i] ^= 1 << rng.randrange(8)
    out = tmp_path / "damaged.pcap"
    out.write_bytes(bytes(data[:rng.randrange(len(data) // 2, len(data))]))
    result = analyze(out, keylog=cap.with_suffix(".keys"))
    assert any(s.decryption and s.decryption.decrypted for s in result.sessions)
    json.dumps(result.to_dict())
    for name in ("rfb_messages", "nfc_operations", "http"):
        getattr(result, f"{name}_frame")()


@pytest.mark.tshark
def test_export_keeps_secrets_redacted_unless_asked(tmp_path):
    cap = SAMPLES / "esxi8-console.pcap"
    conn = [c for c in _labels(cap)["connections"] if c["service"] == "authd"][0]
    ticket = conn["expected"]["users"][0].encode()
    keys = str(cap.with_suffix(".keys"))
    hidden, shown = tmp_path / "hidden.pcapng", tmp_path / "shown.pcapng"
    assert main(["analyze", str(cap), "--keylog", keys, "--export-decrypted", str(hidden), "-q", "-o", str(tmp_path / "a")]) == 0
    assert main(["analyze", str(cap), "--keylog", keys, "--export-decrypted", str(shown), "--show-secrets", "-q",
                 "-o", str(tmp_path / "b")]) == 0
    assert ticket not in hidden.read_bytes() and b"PASS <redacted>" in hidden.read_bytes()
    assert ticket in shown.read_bytes()

    def keysyms(path):
        out = subprocess.run(["tshark", "-r", str(path), "-d", "tcp.port==5900,vnc", "-Y", "vnc.key_down", "-T",
                              "fields", "-e", "vnc.key"], capture_output=True, text=True, check=True).stdout
        return [int(x, 0) for line in out.split() for x in line.split(",")]
    hidden_keys, shown_keys = keysyms(hidden), keysyms(shown)
    s = [x for x in analyze(cap, keylog=keys).sessions if x.decryption and x.decryption.rfb][0]
    assert len(hidden_keys) == len(shown_keys) == s.decryption.rfb_summary()["key_events"] > 0
    assert set(hidden_keys) == {0} and set(shown_keys) != {0}


def test_decrypt_benchmark_script_runs(tmp_path):
    """scripts/bench_decrypt.py on a small transfer: it checks its own result (NFC, 1.0, every byte)."""
    out = subprocess.run([sys.executable, str(SAMPLES.parent / "scripts" / "bench_decrypt.py"), "--mb", "2",
                          "--keep", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "decrypt only" in out.stdout and f"NFC file bytes seen {2 << 20}" in out.stdout


def test_a_key_log_that_decrypts_nothing_is_said(tmp_path, capsys):
    from dissect.port902.cli.main import main as cli

    sample = Path(__file__).resolve().parent.parent / "samples" / "esxi8-console.pcap"
    empty = tmp_path / "none.keys"
    empty.write_text("")
    assert cli(["analyze", str(sample), "--keylog", str(empty), "-f", "json", "-o", str(tmp_path / "a.json")]) == 0
    assert "nothing was decrypted" in capsys.readouterr().err
    assert cli(["analyze", str(sample), "--keylog", str(sample.with_suffix(".keys")), "-f", "json",
                "-o", str(tmp_path / "b.json")]) == 0
    assert "nothing was decrypted" not in capsys.readouterr().err
