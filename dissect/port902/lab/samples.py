"""The bundled sample captures: one scenario builder per file, and the README that explains them.

Why: ``samples/`` is the project's shared ground truth — parser authors read the README, tests
compare tshark's view of each file with its ``.labels.json``. Builders are deterministic in
structure for a seed (TLS randoms differ per run; so do the ``.keys`` files that let Wireshark
decrypt TLS #1). The README is rendered from the labels so frame numbers can never drift from
the captures.
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass
from typing import Callable

from . import labels
from . import scenarios as S
from .scenario import Client, Conditions, Host, Scenario


def esxi8_console(seed: int = 902, keylog: str | None = None) -> Scenario:
    """An administrator opens the console of an ESXi 8 VM with VMRC and uses it for about 30 s.

    A DNS lookup of the host precedes the 902 connection. On 902: the B7 banner (170 bytes,
    ``SHA256 supported``), TLS 1.2 #1 with the host certificate in clear, the MKS ticket dialogue
    (USER/PASS ticket, THUMBPRINT, CONNECT … mks, 200 Connect), then a second TLS 1.2 handshake
    on the raw stream, the 16-byte token, RFB ServerInit, a full-screen update and ~30 s of use:
    typing bursts (8-byte KeyEvents echoed by small updates), mouse moves (6-byte PointerEvents)
    with clicks that redraw windows, idle stretches with and without a blinking cursor. The
    client ends with close_notify and FIN.
    """
    sc = Scenario("esxi8_console", seed, inspect.getdoc(esxi8_console), keylog=keylog)
    host = Host("esxi-prod-01.corp.example", "10.20.0.11", "esxi8")
    admin = Client("admin-ws", "10.20.5.23", "windows")
    S.dns_lookup(sc, admin, "10.20.0.2", host.name, host.ip, sc.at(0.0))
    S.mks_console(sc, admin, host, sc.at(0.05), 30, tls1="1.2", tls2="1.2", vm="web-frontend-01")
    return sc


def legacy_login(seed: int = 912, keylog: str | None = None) -> Scenario:
    """Plaintext authd daemons: every line of the dialogue is readable.

    C01: a GSX-era daemon on 902 (banner B1, ``Version 1.00``, no SSL): ``USER root`` / 331 /
    ``PASS`` (wrong) / ``530 Login incorrect.`` / ``USER root`` / 331 / ``PASS`` (right) /
    ``230 User root logged in.`` on the same connection, then FIN. C02: an OpenVAS-style probe of
    a Workstation 912 listener (banner B10): ``TEST`` → ``530 Please login with USER and PASS.``.
    C03/C04: two new connections to 912 — wrong password (530), then the right one (230).
    """
    sc = Scenario("legacy_login", seed, inspect.getdoc(legacy_login), keylog=keylog)
    gsx = Host("gsx01.lab.example", "192.168.10.10", "gsx-legacy")
    ws = Host("ws-lab.lab.example", "192.168.10.20", "ws912")
    client = Client("ops-linux", "192.168.10.50", "linux")
    S.credential_login(sc, client, gsx, sc.at(0.0), [("root", "vmware", False), ("root", "Gsx-2004!", True)])
    S.probe(sc, client, ws, sc.at(5.0))
    S.credential_login(sc, client, ws, sc.at(8.0), [("admin", "admin", False), ("admin", "W0rkst@tion", True)],
                       per_connection=True)
    return sc


def classic_esx_handoff(seed: int = 903, keylog: str | None = None) -> Scenario:
    """Classic ESX (service console era): a short 903 session, then the console on 902.

    The VI client resolves the host (DNS), connects to 903 (banner B3), runs TLS 1.0 and a
    ticket login, closes; within a second it connects to 902 on the same host (banner B4) and
    runs a full MKS console over TLS 1.0 #1 and TLS 1.0 #2 for ~20 s. The 903 dialogue is a lab
    model (not public); the 902 label points back to it (``related.handoff_from``). Link layer:
    802.1Q VLAN 100.
    """
    sc = Scenario("classic_esx_handoff", seed, inspect.getdoc(classic_esx_handoff), keylog=keylog)
    host = Host("esx4-01.corp.example", "10.1.1.40", "esx-classic")
    client = Client("vi-client", "10.1.1.100", "windows")
    S.dns_lookup(sc, client, "10.1.1.2", host.name, host.ip, sc.at(0.0))
    S.classic_handoff(sc, client, host, sc.at(0.05), 20, tls="1.0", vm="w2k3-sql")
    return sc


def unanswered_syn(seed: int = 904, keylog: str | None = None) -> Scenario:
    """Failed console attempts and unrelated traffic, captured on the client (Linux "any", SLL2).

    C02: SYNs to 10.9.0.21:902 retransmitted after 1, 2, 4 and 8 s, never answered (host down
    or filtered). C04: a SYN to 10.9.0.22:902 answered by RST/ACK (nothing listening). Around
    them: DNS lookups (C01, C03) and an HTTPS session to vCenter on 443 with TLS 1.3 (C05).
    No authd byte is ever exchanged.
    """
    sc = Scenario("unanswered_syn", seed, inspect.getdoc(unanswered_syn), keylog=keylog)
    dead = Host("esxi-old-07.corp.example", "10.9.0.21", "esxi6")
    closed = Host("esxi-old-08.corp.example", "10.9.0.22", "esxi6")
    vcenter = Host("vcenter.corp.example", "10.9.0.5")
    client = Client("jump-linux", "10.9.0.15", "linux")
    S.dns_lookup(sc, client, "10.9.0.2", dead.name, dead.ip, sc.at(0.0))
    S.unanswered(sc, client, dead, sc.at(0.01), retries=(1.0, 2.0, 4.0, 8.0))
    S.dns_lookup(sc, client, "10.9.0.2", closed.name, closed.ip, sc.at(2.0))
    S.refused(sc, client, closed, sc.at(2.01))
    S.https_session(sc, client, vcenter, sc.at(4.0), requests=3, tls="1.3")
    return sc


def nfc_transfers(seed: int = 905, keylog: str | None = None) -> Scenario:
    """NFC on ESXi 8: two VDDK disk reads and an nfclib-style upload (pcapng, ns timestamps).

    C01: VDDK ``nbd`` — TLS 1.2 #1 for the authd dialogue (SESSION+BANNER, THUMBPRINT_SHA2,
    PROXY vpxa-nfc, 200 Connect ha-nfc), then cleartext: the 264-byte classic handshake and AIO
    frames (magic 7a da 00 a1) reading 512 KiB in 256 KiB requests answered by 64 KiB fragments.
    C02: VDDK ``nbdssl`` — TLS 1.3 #1, ``PROXY vpxa-nfcssl``, a TLS 1.3 #2 handshake, then the
    same NFC bytes (256 KiB) inside TLS #2. C03: an nfclib-style upload of a 192 KiB file
    (``PROXY nfc``, cleartext FILE_PUT / FILE_DATA / PUTFILE_DONE / SESSION_COMPLETE).
    """
    sc = Scenario("nfc_transfers", seed, inspect.getdoc(nfc_transfers), keylog=keylog)
    host = Host("esxi-bk-02.corp.example", "10.30.0.12", "esxi8")
    proxy = Client("vddk-proxy", "10.30.0.50", "linux")
    uploader = Client("image-svc", "10.30.0.60", "linux")
    S.nfc_vddk(sc, proxy, host, sc.at(0.0), "nbd", 512 * 1024, tls1="1.2", vm="vm-db01")
    S.nfc_vddk(sc, proxy, host, sc.at(4.0), "nbdssl", 256 * 1024, tls1="1.3", tls2="1.3", vm="vm-app02")
    S.nfclib_upload(sc, uploader, host, sc.at(8.0), 192 * 1024, "/vmfs/volumes/datastore1/iso/guest-tools.iso")
    return sc


def mixed_esxi(seed: int = 906, keylog: str | None = None) -> Scenario:
    """Four minutes on a small vSphere site: three ESXi hosts, vCenter, admins, backup, an attacker.

    Consoles (ESXi 8 with TLS 1.3 both handshakes; ESXi 6 over IPv6 with TLS 1.2; an ESXi 5.5
    console already running when the capture starts), VDDK nbd with two lost segments and
    nbdssl reads, a SOAP-over-902 session and a VMXARGS exchange (both lab models), a brute-force
    run (one Hydra-style connection with four 530s, three Medusa-style connections with one
    each), an OpenVAS probe that the SSL-only daemon answers by closing, UDP 902 vpxa heartbeats,
    and background HTTPS (443), DNS (53) and SSH (22).
    """
    sc = Scenario("mixed_esxi", seed, inspect.getdoc(mixed_esxi), keylog=keylog)
    esxi8 = Host("esxi-a.site.example", "10.50.0.11", "esxi8")
    esxi6 = Host("esxi-b.site.example", "10.50.0.12", "esxi6", ip6="fd00:50::12")
    esxi55 = Host("esxi-c.site.example", "10.50.0.13", "esxi55")
    vcenter = Host("vcenter.site.example", "10.50.0.5")
    vc = Client("vcenter", vcenter.ip, "linux")
    admin = Client("admin1", "10.50.10.21", "windows")
    admin6 = Client("admin2", "fd00:50:10::22", "windows")
    backup = Client("backup", "10.50.0.40", "linux")
    attacker = Client("scanner", "10.50.66.6", "linux")
    lossy = Conditions(rtt=0.0005, loss=(("s2c", 40), ("s2c", 90)))
    late = Conditions(capture_from=sc.at(0.0))

    S.mks_console(sc, admin, esxi55, sc.at(-25.0), 40, tls1="1.2", vm="legacy-erp", conditions=late)
    for n, host in enumerate((esxi8, esxi6, esxi55)):
        S.heartbeats(sc, host, vcenter.ip, sc.at(1.0 + 3.3 * n), 24)
    S.dns_lookup(sc, admin, "10.50.0.2", vcenter.name, vcenter.ip, sc.at(2.0))
    S.https_session(sc, admin, vcenter, sc.at(2.05), requests=5, tls="1.2")
    S.dns_lookup(sc, admin, "10.50.0.2", esxi8.name, esxi8.ip, sc.at(9.0))
    S.mks_console(sc, admin, esxi8, sc.at(9.05), 45, tls1="1.3", tls2="1.3", vm="web01")
    S.nfc_vddk(sc, backup, esxi6, sc.at(30.0), "nbd", 160 * 1024, tls1="1.2", vm="db02", conditions=lossy)
    S.credential_login(sc, attacker, esxi6, sc.at(50.0),
                       [("root", p, False) for p in ("root", "vmware", "VMware1!", "password")])
    S.credential_login(sc, attacker, esxi6, sc.at(56.0),
                       [("admin", p, False) for p in ("admin", "123456", "P@ssw0rd")], per_connection=True)
    S.probe(sc, attacker, esxi8, sc.at(62.0))
    S.soap_over_902(sc, vc, esxi55, sc.at(70.0), user="vpxuser")
    S.vmxargs(sc, vc, esxi6, sc.at(90.0))
    S.dns_lookup(sc, admin6, "fd00:50::2", esxi6.name, esxi6.ip6, sc.at(99.0))
    S.mks_console(sc, admin6, esxi6, sc.at(100.0), 25, tls1="1.2", tls2="1.2", vm="fileserver")
    S.nfc_vddk(sc, backup, esxi8, sc.at(130.0), "nbdssl", 128 * 1024, tls1="1.3", tls2="1.3", vm="web01")
    S.ssh_session(sc, admin, esxi55, sc.at(150.0), commands=4)
    S.https_session(sc, vc, esxi8, sc.at(180.0), requests=3, tls="1.2")
    S.dns_lookup(sc, admin, "10.50.0.2", esxi55.name, esxi55.ip, sc.at(200.0))
    S.https_session(sc, admin, vcenter, sc.at(215.0), requests=4, tls="1.3")
    return sc


@dataclass(frozen=True)
class Sample:
    """A sample file: name, builder and container options."""

    filename: str
    build: Callable[..., Scenario]
    fmt: str = "pcap"
    link: str = "ethernet"
    options: tuple = ()

    @property
    def stem(self) -> str:
        """File name without extension."""
        return self.filename.rsplit(".", 1)[0]


def plain_vnc(seed: int = 907, keylog: str | None = None) -> Scenario:
    """MKS over 902 versus plain VNC: the same admin reaches VM consoles both ways.

    The admin workstation opens the vmx VNC console of ``db01`` on esxi-01 port 5901 (VNC
    Authentication, 1024x768) and uses it, mistypes the password of ``web02`` on port 5902 once,
    then opens ``web02``'s VNC console without any password on 5903 (security type None). At
    about 47 s db01 is migrated: esxi-01 resets its VNC connection, and 2 s later the admin opens
    db01's console again through vSphere, as an MKS console over 902 on esxi-02 (the MKS route
    follows the VM; the vmx VNC port does not). A DNS lookup of esxi-02 precedes it.
    """
    sc = Scenario("plain_vnc", seed, inspect.getdoc(plain_vnc), keylog=keylog)
    esxi1 = Host("esxi-01.corp.example", "10.30.0.11", "esxi8")
    esxi2 = Host("esxi-02.corp.example", "10.30.0.12", "esxi8")
    admin = Client("admin-ws", "10.30.5.23", "windows")
    from . import vnc as V

    V.vnc_console(sc, admin, esxi1.ip, 5901, sc.at(0.0), 38, vm="db01", end="reset")
    V.vnc_console(sc, admin, esxi1.ip, 5902, sc.at(6.0), 0, vm="web02", accept=False)
    V.vnc_console(sc, admin, esxi1.ip, 5903, sc.at(9.0), 10, vm="web02", password=False, width=800, height=600)
    S.dns_lookup(sc, admin, "10.30.0.2", esxi2.name, esxi2.ip, sc.at(49.0))
    S.mks_console(sc, admin, esxi2, sc.at(49.1), 15, tls1="1.2", tls2="1.2", vm="db01")
    return sc


SAMPLES = (
    Sample("esxi8-console.pcap", esxi8_console),
    Sample("legacy-login.pcap", legacy_login),
    Sample("classic-esx-handoff.pcap", classic_esx_handoff, link="vlan"),
    Sample("unanswered-syn.pcap", unanswered_syn, link="sll2",
           options=(("link_options", {"local": ("10.9.0.15",)}),)),
    Sample("nfc-transfers.pcapng", nfc_transfers, fmt="pcapng", options=(("ts_resolution", "ns"),)),
    Sample("mixed-esxi.pcap", mixed_esxi),
    Sample("plain-vnc.pcap", plain_vnc),
)


def write_sample(sample: Sample, outdir: str | os.PathLike, seed: int | None = None, keys: bool = True) -> dict:
    """Build and write one sample (capture, labels, optional key log); returns its labels."""
    outdir = os.fspath(outdir)
    keylog = os.path.join(outdir, sample.stem + ".keys") if keys else None
    if keylog and os.path.exists(keylog):
        os.remove(keylog)
    kwargs = {"keylog": keylog}
    if seed is not None:
        kwargs["seed"] = seed
    scenario = sample.build(**kwargs)
    return scenario.write(os.path.join(outdir, sample.filename), sample.fmt, sample.link, **dict(sample.options))


# -- README --------------------------------------------------------------------------------------

def scenario_names() -> list[str]:
    """Names of the bundled sample builders (``dissect902 lab scenario``)."""
    return [s.build.__name__ for s in SAMPLES]


def write_scenario(name: str, out_dir: str | os.PathLike, seed: int | None = None, keys: bool = False) -> dict:
    """Write one bundled sample scenario by builder name (``esxi8_console`` …); returns its labels."""
    for sample in SAMPLES:
        if sample.build.__name__ == name or sample.stem == name:
            os.makedirs(out_dir, exist_ok=True)
            return write_sample(sample, out_dir, seed, keys=keys)
    raise KeyError(f"unknown scenario {name!r}; choose from {scenario_names()}")


def _clock(ts: float, start: float) -> str:
    offset = ts - start
    sign = "-" if offset < 0 else ""
    minutes, seconds = divmod(abs(offset), 60)
    return f"{sign}{int(minutes):02d}:{seconds:06.3f}"


def _endpoint(end: dict) -> str:
    return f"[{end['ip']}]:{end['port']}" if ":" in end["ip"] else f"{end['ip']}:{end['port']}"


def _finding(conn: dict) -> str:
    e = conn["expected"]
    parts = [f"**{conn['uid']}** {conn['feature']}"]
    if conn["persona"]:
        parts.append(f"persona `{conn['persona']}`")
    if e["banner_id"]:
        parts.append(f"banner {e['banner_id']}")
    if e["tls_version"]:
        tls = f"TLS #1 {e['tls_version']}"
        if e["tls2_version"]:
            second = next((ev["frame"] for ev in conn["events"] if ev["what"] == "tls2_client_hello"), None)
            tls += f", TLS #2 {e['tls2_version']} (ClientHello " + (f"frame {second})" if second else "not captured)")
        parts.append(tls)
    if e["login"]:
        parts.append(f"login {e['login']} ({e['login_kind']}, {e['login_attempts']} attempt(s), "
                     f"{e['login_failures']} failure(s))")
    if e["command"]:
        parts.append(f"{e['command']} → `{e['target']}`")
    if e["continues_in_clear"]:
        clear = next((ev["frame"] for ev in conn["events"] if ev["what"] == "nfc_first_message"), None)
        parts.append(f"cleartext NFC from frame {clear}")
    if e["nfc_mode"]:
        parts.append(f"NFC {e['nfc_mode']}, {e['nfc_bytes']} bytes")
    if e["cert_sha1"] and conn["service"] == "authd":
        parts.append(f"cert SHA-1 `{e['cert_sha1']}`")
    if e["model"]:
        parts.append("(lab model)")
    if conn["outcome"] not in ("closed", "udp"):
        parts.append(f"outcome **{conn['outcome']}**")
    if conn["conditions"] and conn["conditions"]["injected"]:
        kinds = sorted({i["kind"] for i in conn["conditions"]["injected"]})
        parts.append("injected: " + ", ".join(kinds))
    if not conn["captured_from_start"]:
        parts.append("**capture starts mid-connection** (banner, TLS #1 and the authd dialogue are not in it; "
                     "only TLS #2 records are)")
    if conn["related"]:
        parts.append(", ".join(f"{k} {v}" for k, v in conn["related"].items()))
    return "; ".join(parts)


RESOLUTION_TEXT = {"us": "µs", "ns": "ns"}


def render_section(sample: Sample, labels: dict, size: int) -> str:
    """Markdown for one sample: what happens, connections, timeline, expected findings."""
    cap = labels["capture"]
    start = cap["start_ts"]
    has_tls = any(c["expected"]["tls_handshakes"] for c in labels["connections"])
    keys = f", TLS key log in `{sample.stem}.keys`" if has_tls else ""
    lines = [
        f"## {sample.filename}",
        "",
        labels["description"],
        "",
        f"*{cap['format']}, link `{cap['link']}`, {RESOLUTION_TEXT[cap['ts_resolution']]} timestamps, "
        f"{cap['packets']} packets, {size:,} bytes, {cap['end_ts'] - start:.1f} s; labels in "
        f"`{sample.stem}.labels.json`{keys}; builder `lab.samples.{labels['scenario']}` (seed {labels['seed']}).*",
        "",
        "| uid | client | server | feature | persona | transport | outcome | frames |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in labels["connections"]:
        f = c["frames"]
        lines.append(f"| {c['uid']} | {_endpoint(c['client'])} | {_endpoint(c['server'])} | {c['feature']} | "
                     f"{c['persona'] or c['service']} | {c['transport']} | {c['outcome']} | "
                     f"{f['first']}–{f['last']} ({f['count']}) |")
    lines += ["", "Timeline (mm:ss from the first packet):", "", "| time | frame | uid | event |", "|---|---|---|---|"]
    events = sorted((ev["frame"], ev["ts"], c["uid"], ev["what"]) for c in labels["connections"] for ev in c["events"])
    for frame, ts, uid, what in events:
        lines.append(f"| {_clock(ts, start)} | {frame} | {uid} | {what} |")
    lines += ["", "What the tool should find:", ""]
    lines += [f"- {_finding(c)}" for c in labels["connections"] if c["service"] == "authd"]
    other = [c for c in labels["connections"] if c["service"] != "authd"]
    if other:
        lines.append("- not authd: " + ", ".join(f"{c['uid']} {c['service']} ({c['proto']} {c['server']['port']})"
                                                  for c in other))
    return "\n".join(lines) + "\n"


README_HEAD = """# Sample captures

Generated by `python scripts/make_samples.py` from the traffic lab (`dissect/port902/lab/`);
do not edit by hand — this README is rendered from the labels. Every capture has a sidecar
`<name>.labels.json` (schema `{schema}`: per connection the 4-tuple, feature, persona,
transport, outcome, expected facts and the frame numbers of key moments) and `<name>.keys`, an
NSS key log with which Wireshark decrypts TLS #1 (`-o tls.keylog_file:samples/<name>.keys`
plus `-d tcp.port==902,tls`).

Things a parser author must know:

- The banner is plaintext; TLS #1 starts with the client's ClientHello right after it (no
  command). Inside TLS #1 each authd line is one TLS record (record length = line + 24 bytes
  with AES-GCM in TLS 1.2, + 17 in TLS 1.3).
- After the `200 Connect …` record the client never sends close_notify: the next client bytes
  on the same TCP stream are either a **new ClientHello** (`tls2_client_hello` event: MKS,
  nbdssl) or **cleartext NFC** (`nfc_first_message`: nbd, nfclib). Wireshark 4.0 shows the
  second ClientHello as "Encrypted Handshake Message" because it does not expect a new
  handshake after ChangeCipherSpec; the record header (`16 03 0x`) and handshake type 1 are
  still there.
- TLS versions, certificates and thumbprints per connection are in the labels; certificates are
  deterministic per host name, so thumbprints are stable across regenerations (TLS randoms and
  key logs are not).
- SOAP-over-902, VMXARGS and the classic ESX 903 leg are lab models (`expected.model = true`),
  not observed traffic (protocol.md §6, §7).
- Frame numbers are 1-based as in Wireshark; timestamps start at 2024-05-14 09:00:00 UTC.

Regenerate: `python scripts/make_samples.py` (all) or `python scripts/make_samples.py --only
esxi8-console.pcap`; `--seed N` varies the traffic while keeping each builder's structure.
"""


def render_readme(sections: list[str]) -> str:
    """The whole samples README, ending with the labels schema."""
    schema = json.dumps(labels.label_schema(), indent=1, ensure_ascii=False)
    tail = f"## Labels schema\n\n```json\n{schema}\n```\n"
    return README_HEAD.format(schema=labels.LABELS_SCHEMA) + "\n" + "\n".join(sections) + "\n" + tail
