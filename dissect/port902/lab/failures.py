"""Failure scenarios for ``dissect902 doctor``: consoles that do not open, and the paths that do.

Why: the seed article names the usual reasons a console will not open while vCenter works —
the client cannot resolve the ESXi host's name, cannot reach the host, or a firewall closes 902 —
and describes what a working console does around them (VMRC asks vCenter where a migrated VM
went and reconnects; Mac/HTML5 consoles go through vCenter's relay on 7331/7343). No public
capture shows any of it (protocol.md §10), so this module builds each case from the lab's
layers, with labels that say which findings ``doctor`` must report (``labels["doctor"]``) and
which connection each finding is about (``related.expected_finding``).

Every builder returns a :class:`failkit.FailureScenario` (the shared building blocks live in
``failkit``); ``FAILURE_SAMPLES`` lists the files that ``scripts/make_failure_samples.py`` writes
to ``samples/doctor/``, and ``failreadme.render_readme`` turns their labels into that folder's README.

Models, not observations (``expected.model = true`` in the labels): the text of authd's 553
reply (only the code name ``VMAD_NOSUCHVM`` is public, protocol.md §3.4), vCenter opening 902
itself for a relay console (inferred, §4.4), the relay's WebSocket upgrade on 7331/7343 and
the shape of the frames inside it.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Callable

from . import authd
from . import scenarios as S
from .channel import CLIENT, SERVER, Step
from .failkit import (ADMIN, ESXI_07, ESXI_A, ESXI_B, FIREWALL, GSX, ICMP_ADMIN_PROHIBITED, MAC, RESOLVER, VCENTER,
                      FailureScenario, clone_ticket, dns_failure, end_console, heartbeat_flow, icmp_error,
                      tls_attempt, vsphere_client, websocket_frames, websocket_upgrade)
from .scenario import Client


def dns_nxdomain(seed: int = 5301, keylog: str | None = None) -> FailureScenario:
    """The vSphere Client works (HTTPS to vCenter), but the console's host name does not exist in DNS.

    C01: HTTPS to vcenter.corp.example. C02: two A queries for esxi-07.corp.example answered
    NXDOMAIN (with the zone's SOA), 1 s apart. No 902 connection follows: the console never got
    as far as the host. doctor: ``dns_nxdomain`` first.
    """
    sc = FailureScenario("dns_nxdomain", seed, inspect.getdoc(dns_nxdomain), keylog=keylog)
    vsphere_client(sc, ADMIN, VCENTER, sc.at(0.0))
    flow = dns_failure(sc, ADMIN, RESOLVER, ESXI_07.name, sc.at(3.0), 3, attempts=2)
    sc.expect("dns_nxdomain", flow)
    return sc


def dns_servfail(seed: int = 5302, keylog: str | None = None) -> FailureScenario:
    """The resolver fails the lookup of the ESXi host name: SERVFAIL twice (C02), no 902 follows.
    doctor: ``dns_servfail``."""
    sc = FailureScenario("dns_servfail", seed, inspect.getdoc(dns_servfail), keylog=keylog)
    vsphere_client(sc, ADMIN, VCENTER, sc.at(0.0))
    flow = dns_failure(sc, ADMIN, RESOLVER, ESXI_07.name, sc.at(3.0), 2, attempts=2)
    sc.expect("dns_servfail", flow)
    return sc


def dns_no_answer(seed: int = 5303, keylog: str | None = None) -> FailureScenario:
    """The resolver never answers: the A query for the ESXi host name is sent three times (after 1 s
    and 2 s, C02) and nothing comes back; the capture runs on (HTTPS to vCenter, C03).
    doctor: ``dns_no_answer``."""
    sc = FailureScenario("dns_no_answer", seed, inspect.getdoc(dns_no_answer), keylog=keylog)
    vsphere_client(sc, ADMIN, VCENTER, sc.at(0.0))
    flow = dns_failure(sc, ADMIN, "10.40.0.3", ESXI_07.name, sc.at(2.0), None, attempts=3, gaps=(1.0, 2.0))
    vsphere_client(sc, ADMIN, VCENTER, sc.at(8.0))
    sc.expect("dns_no_answer", flow)
    return sc


def dns_no_address(seed: int = 5317, keylog: str | None = None) -> FailureScenario:
    """The name exists but has no address: the A query for esxi-07.corp.example is answered
    NOERROR with no answer record (NODATA, the zone's SOA in the authority section), twice (C02).
    doctor: ``dns_no_address``."""
    sc = FailureScenario("dns_no_address", seed, inspect.getdoc(dns_no_address), keylog=keylog)
    vsphere_client(sc, ADMIN, VCENTER, sc.at(0.0))
    flow = dns_failure(sc, ADMIN, RESOLVER, ESXI_07.name, sc.at(3.0), 0, attempts=2)
    sc.expect("dns_no_address", flow)
    return sc


def syn_no_answer(seed: int = 5304, keylog: str | None = None) -> FailureScenario:
    """Name resolves (C01), but SYNs to esxi-07:902 are dropped: sent at 0, 1, 3 and 7 s, never
    answered (C02), while HTTPS to the same host is answered (C03): only 902 is filtered.
    doctor: ``syn_no_answer``."""
    sc = FailureScenario("syn_no_answer", seed, inspect.getdoc(syn_no_answer), keylog=keylog)
    S.dns_lookup(sc, ADMIN, RESOLVER, ESXI_07.name, ESXI_07.ip, sc.at(0.0))
    flow = S.unanswered(sc, ADMIN, ESXI_07, sc.at(0.02), retries=(1.0, 2.0, 4.0))
    vsphere_client(sc, ADMIN, ESXI_07, sc.at(0.5))
    sc.expect("syn_no_answer", flow)
    return sc


def refused(seed: int = 5305, keylog: str | None = None) -> FailureScenario:
    """Name resolves (C01); each SYN to esxi-07:902 is answered by RST/ACK — three tries 0.5 s
    apart (C02). doctor: ``refused``."""
    sc = FailureScenario("refused", seed, inspect.getdoc(refused), keylog=keylog)
    S.dns_lookup(sc, ADMIN, RESOLVER, ESXI_07.name, ESXI_07.ip, sc.at(0.0))
    flow = S.refused(sc, ADMIN, ESXI_07, sc.at(0.02), retries=(0.5, 0.5))
    sc.expect("refused", flow)
    return sc


def icmp_prohibited(seed: int = 5306, keylog: str | None = None) -> FailureScenario:
    """A firewall (10.40.0.1) rejects 902: every SYN to esxi-07:902 (C02, at 0, 1 and 3 s) is
    answered by ICMP destination unreachable, code 13 (communication administratively prohibited),
    quoting the SYN. doctor: ``icmp_unreachable`` (the unanswered SYNs are its evidence, not a
    separate finding)."""
    sc = FailureScenario("icmp_prohibited", seed, inspect.getdoc(icmp_prohibited), keylog=keylog)
    S.dns_lookup(sc, ADMIN, RESOLVER, ESXI_07.name, ESXI_07.ip, sc.at(0.0))
    flow = S.unanswered(sc, ADMIN, ESXI_07, sc.at(0.02), retries=(1.0, 2.0))
    for n, (t, packet, _) in enumerate(flow.conn.records()):
        sc.inject(flow, t + 0.0004, icmp_error(FIREWALL, packet, *ICMP_ADMIN_PROHIBITED, ident=n),
                  "icmp_admin_prohibited" if n == 0 else None)
    flow.label["notes"] = "SYNs answered by ICMP type 3 code 13 from the firewall 10.40.0.1"
    sc.expect("icmp_unreachable", flow)
    return sc


def certificate_rejected(seed: int = 5307, keylog: str | None = None) -> FailureScenario:
    """The client does not accept esxi-07's certificate (its thumbprint changed), three ways:
    C02 sends a fatal TLS alert unknown_ca right after the server's Certificate, then FIN; C03
    resets right after the Certificate; C04 completes the handshake and closes (close_notify, FIN)
    without a single authd command. doctor: ``certificate_rejected`` for C02–C04."""
    sc = FailureScenario("certificate_rejected", seed, inspect.getdoc(certificate_rejected), keylog=keylog)
    S.dns_lookup(sc, ADMIN, RESOLVER, ESXI_07.name, ESXI_07.ip, sc.at(0.0))
    flows = [tls_attempt(sc, ADMIN, ESXI_07, sc.at(0.05 + 2.0 * n), ending)
             for n, ending in enumerate(("alert", "rst", "quiet"))]
    sc.expect("certificate_rejected", *flows)
    return sc


def tls_version_alert(seed: int = 5318, keylog: str | None = None) -> FailureScenario:
    """An old console client offers only TLS 1.0; the ESXi 8 host (TLS 1.2+) answers its
    ClientHello with a fatal ``protocol_version`` alert and closes (C02). doctor: ``tls_alert``."""
    sc = FailureScenario("tls_version_alert", seed, inspect.getdoc(tls_version_alert), keylog=keylog)
    S.dns_lookup(sc, ADMIN, RESOLVER, ESXI_A.name, ESXI_A.ip, sc.at(0.0))
    flow, ch, pace, _ = sc.authd_tcp(ADMIN, ESXI_A, sc.at(0.05))
    ch.conv.open(mark="syn")
    ch.send(SERVER, authd.banner(ESXI_A.profile.banner_id), pace("reply"), "banner")
    hello = sc.tls(ESXI_A, "1.0").handshake()[0][1]
    ch.send(CLIENT, hello, pace("program"), "tls1_client_hello")
    ch.send(SERVER, bytes.fromhex("1503010002") + bytes([2, 70]), pace("reply"), "tls_alert")
    ch.close(SERVER, pace("reply"))
    sc.label(flow, feature="NONE", service="authd", persona=ESXI_A.persona, transport="tls",
             expected={"banner": ESXI_A.profile.banner, "banner_id": ESXI_A.profile.banner_id, "ssl_required": True,
                       "tls_handshakes": 1, "app": "authd"},
             notes="client offers TLS 1.0 only; server alert protocol_version")
    sc.expect("tls_alert", flow)
    return sc


def login_530(seed: int = 5308, keylog: str | None = None) -> FailureScenario:
    """A plaintext authd (GSX-era, banner B1) rejects a password: ``USER root`` / 331 / ``PASS``
    / ``530 Login incorrect.``, then the client closes (C01). doctor: ``login_rejected``."""
    sc = FailureScenario("login_530", seed, inspect.getdoc(login_530), keylog=keylog)
    (flow,) = S.credential_login(sc, ADMIN, GSX, sc.at(0.0), [("root", "wrong-password", False)])
    sc.expect("login_rejected", flow)
    return sc


def connect_failed(seed: int = 5309, keylog: str | None = None) -> FailureScenario:
    """A plaintext authd accepts the login but not the VM. C01: ``CONNECT <vmx> mks`` answered
    ``553 No such virtual machine.`` (the code is VMAD_NOSUCHVM; the text is the lab's model), then
    the server closes. C02, 2 s later: the same CONNECT gets no reply and the server closes 30 ms
    later. doctor: ``connect_failed`` for both."""
    sc = FailureScenario("connect_failed", seed, inspect.getdoc(connect_failed), keylog=keylog)
    vmx = "/var/lib/vmware/Virtual Machines/web01/web01.vmx"
    flows = []
    for n, reply in enumerate((b"553 No such virtual machine.\r\n", None)):
        flow, ch, pace, _ = sc.authd_tcp(ADMIN, GSX, sc.at(2.0 * n))
        ch.conv.open(mark="syn")
        ch.send(SERVER, authd.banner(GSX.profile.banner_id), pace("reply"), "banner")
        ch.play(authd.login(pace, "root", "Gsx-2004!", ok=True))
        ch.send(CLIENT, authd.line(f"CONNECT {vmx} mks"), pace("program"), "connect")
        if reply is not None:
            ch.send(SERVER, reply, pace("reply"), "connect_failed")
            ch.close(SERVER, pace("reply"))
        else:
            ch.close(SERVER, 0.03)
        sc.label(flow, feature="MKS", service="authd", persona=GSX.persona, transport="plain",
                 expected={"banner": GSX.profile.banner, "banner_id": GSX.profile.banner_id, "ssl_required": False,
                           "login": "ok", "login_kind": "password", "login_attempts": 1, "users": ["root"],
                           "command": "CONNECT", "target": vmx, "app": "authd", "model": reply is not None},
                 notes="CONNECT answered 553 (text modelled)" if reply else "CONNECT, then the server closes")
        flows.append(flow)
    sc.expect("connect_failed", *flows)
    return sc


def reset_midstream(seed: int = 5310, keylog: str | None = None) -> FailureScenario:
    """A working ESXi 8 console (C02, banner, TLS #1, MKS ticket dialogue, TLS #2, RFB) is reset by
    the server after about 3 s of use. doctor: ``reset_midstream`` (by the server)."""
    sc = FailureScenario("reset_midstream", seed, inspect.getdoc(reset_midstream), keylog=keylog)
    S.dns_lookup(sc, ADMIN, RESOLVER, ESXI_A.name, ESXI_A.ip, sc.at(0.0))
    flow = S.mks_console(sc, ADMIN, ESXI_A, sc.at(0.05), 3, vm="web01", end="open")
    end_console(flow, "reset", 0.4, by="server")
    sc.expect("reset_midstream", flow)
    return sc


def vmotion(seed: int = 5311, keylog: str | None = None) -> FailureScenario:
    """A console follows its VM: the console on esxi-a (C04) ends — the host closes it as the VM
    leaves — then the client asks vCenter over HTTPS where the VM went (C05), resolves esxi-b (C06)
    and opens the console there (C07). Heartbeats from both hosts to vCenter (C01, C02) tell which
    addresses are ESXi hosts and which is vCenter. doctor: note ``console_followed_vm``; no problem.
    """
    sc = FailureScenario("vmotion", seed, inspect.getdoc(vmotion), keylog=keylog)
    heartbeat_flow(sc, ESXI_A, VCENTER.ip, sc.at(0.0), 3)
    heartbeat_flow(sc, ESXI_B, VCENTER.ip, sc.at(1.5), 3)
    S.dns_lookup(sc, ADMIN, RESOLVER, ESXI_A.name, ESXI_A.ip, sc.at(0.2))
    a = S.mks_console(sc, ADMIN, ESXI_A, sc.at(0.25), 2.5, vm="app01", end="open")
    ended = end_console(a, "close", 0.3, by="server")
    api = vsphere_client(sc, ADMIN, VCENTER, ended + 0.2, "/sdk")
    asked = api.conn.ready("client")
    S.dns_lookup(sc, ADMIN, RESOLVER, ESXI_B.name, ESXI_B.ip, asked + 0.05)
    b = S.mks_console(sc, ADMIN, ESXI_B, asked + 0.1, 2.5, vm="app01")
    sc.expect("console_followed_vm", a, b, severity="info")
    sc.expected_paths = ["authd-902-mks", "vcenter-https"]
    return sc


def client_retry(seed: int = 5312, keylog: str | None = None) -> FailureScenario:
    """A console to esxi-a (C02) is reset by the server after about 2.5 s; 1.5 s later the client
    opens the console on the same host again (C03) and it works. doctor: ``reset_midstream``
    (likelihood lowered: the client recovered) and the note ``console_retry``."""
    sc = FailureScenario("client_retry", seed, inspect.getdoc(client_retry), keylog=keylog)
    S.dns_lookup(sc, ADMIN, RESOLVER, ESXI_A.name, ESXI_A.ip, sc.at(0.0))
    first = S.mks_console(sc, ADMIN, ESXI_A, sc.at(0.05), 2.5, vm="web01", end="open")
    ended = end_console(first, "reset", 0.2, by="server")
    second = S.mks_console(sc, ADMIN, ESXI_A, ended + 1.5, 2.5, vm="web01")
    sc.expect("reset_midstream", first)
    sc.expect("console_retry", first, second, severity="info")
    return sc


def html5_console(seed: int = 5313, keylog: str | None = None) -> FailureScenario:
    """A Mac opens consoles through vCenter's relay, never touching 902 itself.

    C02: HTTPS to vCenter (the web client). C03: ``GET /console/?vmId=vm-42&…&sessionTicket=cst-VCT-…``
    on vCenter's 7331 in clear, upgraded to a WebSocket, ~3 s of frames. C04: the same on 7343 over
    TLS (SNI vcenter.corp.example). C05: vCenter itself opens the MKS console on esxi-a:902 (the
    relay's leg to the host; inferred, protocol.md §4.4). doctor: console paths ``vcenter-relay``
    (7331, 7343) and vCenter's ``authd-902-mks``; no problem.
    """
    sc = FailureScenario("html5_console", seed, inspect.getdoc(html5_console), keylog=keylog)
    S.dns_lookup(sc, MAC, RESOLVER, VCENTER.name, VCENTER.ip, sc.at(0.0))
    vsphere_client(sc, MAC, VCENTER, sc.at(0.05))
    for n, port in enumerate((7331, 7343)):
        flow, ch, pace, rng = sc.tcp(MAC, VCENTER.ip, port, sc.at(3.0 + 5.0 * n))
        ch.conv.open(mark="syn")
        pair = None
        if port == 7343:
            pair = sc.tls(VCENTER, "1.2", sni=VCENTER.name)
            ch.start_tls(pair, "tls1")
        target = (f"/console/?vmId=vm-42&vmName=web01&host={VCENTER.name}:443"
                  f"&sessionTicket={clone_ticket(rng, VCENTER)}&thumbprint={VCENTER.cert.sha1}")
        request, response = websocket_upgrade(f"{VCENTER.name}:{port}", target, rng)
        ch.play([Step(CLIENT, request, pace("program"), "relay_request"), Step(SERVER, response, pace("http"))])
        ch.play(websocket_frames(rng, pace, 3.0))
        ch.close(CLIENT, pace("program"), notify=pair is not None)
        expected = {"app": "https" if pair else "http", "model": True}
        if pair:
            expected.update(tls_handshakes=1, tls_version=pair.version, sni=VCENTER.name, cert_sha1=VCENTER.cert.sha1)
        sc.label(flow, feature="NONE", service="vcenter-console-relay", transport="tls" if pair else "plain",
                 expected=expected, notes=f"web client console through vCenter's relay on {port} (WebSocket model)")
    relay_leg = S.mks_console(sc, Client("vcenter", VCENTER.ip, "linux"), ESXI_A, sc.at(3.2), 2.5, vm="web01")
    relay_leg.label["notes"] += "; vCenter's own 902 leg for the relay console (inference, protocol.md §4.4)"
    sc.expected_paths = ["vcenter-relay", "authd-902-mks"]
    return sc


def relay_blocked(seed: int = 5319, keylog: str | None = None) -> FailureScenario:
    """The web client works (HTTPS to vCenter, C02) but the console relay does not: SYNs from the
    Mac to vCenter's 7343 are never answered (C03, at 0, 1 and 3 s). doctor: ``console_path_blocked``."""
    sc = FailureScenario("relay_blocked", seed, inspect.getdoc(relay_blocked), keylog=keylog)
    S.dns_lookup(sc, MAC, RESOLVER, VCENTER.name, VCENTER.ip, sc.at(0.0))
    vsphere_client(sc, MAC, VCENTER, sc.at(0.05))
    flow, ch, *_ = sc.tcp(MAC, VCENTER.ip, 7343, sc.at(3.0))
    ch.conv.syn_unanswered(sc.at(3.0), (1.0, 2.0), mark="syn")
    sc.label(flow, feature="NONE", service="vcenter-console-relay", transport="none",
             notes="no SYN-ACK from the relay port 7343")
    sc.expect("console_path_blocked", flow)
    return sc


def esxi_webmks(seed: int = 5314, keylog: str | None = None) -> FailureScenario:
    """An HTML5 console straight to the host: HTTPS to esxi-a:443 with SNI esxi-a.corp.example and,
    inside TLS, ``GET /ticket/<ticket>`` upgraded to a WebSocket (C04, ~4 s). Only SNI and timing
    are visible; heartbeats from esxi-a to vCenter (C01) show that 10.40.0.11 is an ESXi host.
    doctor: console path ``esxi-https`` (WebMKS / VMRC 11+ over 443); no problem."""
    sc = FailureScenario("esxi_webmks", seed, inspect.getdoc(esxi_webmks), keylog=keylog)
    heartbeat_flow(sc, ESXI_A, VCENTER.ip, sc.at(0.0), 2)
    S.dns_lookup(sc, MAC, RESOLVER, ESXI_A.name, ESXI_A.ip, sc.at(1.0))
    vsphere_client(sc, MAC, VCENTER, sc.at(1.05))
    flow, ch, pace, rng = sc.tcp(MAC, ESXI_A.ip, 443, sc.at(3.0))
    ch.conv.open(mark="syn")
    pair = sc.tls(ESXI_A, "1.2", sni=ESXI_A.name)
    ch.start_tls(pair, "tls1")
    request, response = websocket_upgrade(ESXI_A.name, f"/ticket/{authd.ticket(rng).replace('-', '')}", rng)
    ch.play([Step(CLIENT, request, pace("program"), "webmks_request"), Step(SERVER, response, pace("http"))])
    ch.play(websocket_frames(rng, pace, 4.0))
    ch.close(CLIENT, pace("program"), notify=True)
    sc.label(flow, feature="NONE", service="esxi-webmks", transport="tls",
             expected={"app": "https", "tls_handshakes": 1, "tls_version": pair.version, "sni": ESXI_A.name,
                       "cert_sha1": ESXI_A.cert.sha1, "model": True},
             notes="WebMKS: wss://esxi-a/ticket/<ticket> (path inside TLS)")
    sc.expected_paths = ["esxi-https"]
    return sc


def heartbeats(seed: int = 5315, keylog: str | None = None) -> FailureScenario:
    """UDP 902 is vpxa heartbeats, not authd: three hosts report to vCenter every 10 s — esxi-a
    on ESXi 8.0 Update 2 (build 22380479, C01), esxi-b on ESXi 7.0 Update 3 (18644231, C02),
    esxi-07 on a build not in the table (99999999, C03) — and one UDP 902 datagram that is not a
    heartbeat (C04). doctor: heartbeat summary (host, build, version, rate); no problem, no session.
    """
    sc = FailureScenario("heartbeats", seed, inspect.getdoc(heartbeats), keylog=keylog)
    heartbeat_flow(sc, ESXI_A, VCENTER.ip, sc.at(0.0), 4, build=22380479)
    heartbeat_flow(sc, ESXI_B, VCENTER.ip, sc.at(3.3), 4, build=18644231)
    heartbeat_flow(sc, ESXI_07, VCENTER.ip, sc.at(6.6), 4, build=99999999)
    odd = sc.udp(Client("odd", "10.40.0.99", "linux"), VCENTER.ip, 902, sc.at(12.0), client_port=40902)
    odd.conn.send("client", b"\x01\x02not a heartbeat" + bytes(20), sc.at(12.0), "not_heartbeat")
    sc.label(odd, feature="NONE", service="unknown", transport="udp", expected={"app": "unknown"},
             notes="UDP 902 datagram without the heartbeat layout")
    return sc


def clean(seed: int = 5316, keylog: str | None = None) -> FailureScenario:
    """All is well: heartbeats (C01), the vSphere Client on vCenter (C03), the host name resolves
    (C04) and a console on esxi-a:902 runs about 3 s and closes normally (C05). doctor: no finding
    at all, exit code 0."""
    sc = FailureScenario("clean", seed, inspect.getdoc(clean), keylog=keylog)
    heartbeat_flow(sc, ESXI_A, VCENTER.ip, sc.at(0.0), 2)
    S.dns_lookup(sc, ADMIN, RESOLVER, VCENTER.name, VCENTER.ip, sc.at(0.5))
    vsphere_client(sc, ADMIN, VCENTER, sc.at(0.55))
    S.dns_lookup(sc, ADMIN, RESOLVER, ESXI_A.name, ESXI_A.ip, sc.at(3.0))
    S.mks_console(sc, ADMIN, ESXI_A, sc.at(3.05), 3, vm="web01")
    sc.expected_paths = ["authd-902-mks"]
    return sc


# -- the sample folder ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FailureSample:
    filename: str
    build: Callable[..., FailureScenario]

    @property
    def stem(self) -> str:
        return self.filename.rsplit(".", 1)[0]


FAILURE_SAMPLES = tuple(FailureSample(f"{b.__name__.replace('_', '-')}.pcap", b) for b in (
    dns_nxdomain, dns_servfail, dns_no_answer, dns_no_address, syn_no_answer, refused, icmp_prohibited,
    certificate_rejected, tls_version_alert, login_530, connect_failed, reset_midstream, vmotion, client_retry,
    html5_console, relay_blocked, esxi_webmks, heartbeats, clean))


def write_failure_sample(sample: FailureSample, outdir: str | os.PathLike, seed: int | None = None) -> dict:
    """Build and write one capture and its labels (no key logs: the doctor does not decrypt)."""
    scenario = sample.build(**({} if seed is None else {"seed": seed}))
    return scenario.write(os.path.join(os.fspath(outdir), sample.filename))
