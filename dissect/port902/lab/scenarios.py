"""Connection builders: one labelled port-902 dialogue (or background flow) per function.

Why: each builder plays one documented dialogue onto a new connection of a ``scenario.Scenario``
and labels it with the facts a dissector must find: MKS consoles (protocol.md §4.2), VDDK and
nfclib NFC transfers (§5.3, §5.5, §11.5), password logins and brute force (§3.5, §11.2), scanner
probes (§2.3, §11.1.2), unanswered and refused SYNs, classic ESX's 903 → 902 hand-off (§7), and
the background a capture also holds: DNS, HTTPS, SSH and vpxa heartbeats on UDP 902 (§9).

Every builder takes the scenario (seed, default network conditions, key log) plus explicit
parameters, and draws randomness from the per-connection generator of the scenario, so a larger
lab can loop over personas, traffic models and ``Conditions`` and get deterministic labels per seed.

Models, not observations: ``soap_over_902`` (HTTP/1.1 SOAP inside TLS #1 after a login) and
``vmxargs`` (``CONNECT_ARGV``) have no public wire definition (protocol.md §6); their labels
carry ``"model": true``. The 903 leg of ``classic_handoff`` is likewise a model (§7).
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from . import authd, background, nfc, rfb, soap
from .channel import CLIENT, SERVER, Channel, Step
from .pace import Pace
from .scenario import Client, Conditions, Flow, Host, Scenario


# -- building blocks ------------------------------------------------------------------------------

def greet_and_tls(sc: Scenario, ch: Channel, pace: Pace, host: Host, tls: str | None, sni: str | None) -> dict:
    """TCP open, banner, TLS #1 if the persona requires it; returns the expected-facts base."""
    profile = host.profile
    ch.conv.open(mark="syn")
    ch.send(SERVER, authd.banner(profile.banner_id), pace("reply"), "banner")
    facts = {"banner": profile.banner, "banner_id": profile.banner_id, "ssl_required": profile.ssl_required,
             "app": "authd"}
    if profile.ssl_required:
        pair = sc.tls(host, tls or profile.tls_versions[0], sni)
        ch.start_tls(pair, "tls1")
        facts.update(tls_handshakes=1, tls_version=pair.version, tls_cipher=pair.cipher, sni=sni,
                     cert_sha1=host.cert.sha1, cert_sha256=host.cert.sha256)
    return facts


def second_tls(sc: Scenario, ch: Channel, host: Host, version: str, facts: dict) -> None:
    ch.abandon_tls()
    pair = sc.tls(host, version)
    ch.start_tls(pair, "tls2")
    facts.update(tls_handshakes=2, tls2_version=pair.version, tls2_cipher=pair.cipher)


def mks_console(sc: Scenario, client: Client, host: Host, at: float, seconds: float, *, tls1: str = "1.2",
                tls2: str | None = None, vm: str = "vm01", sni: str | None = None,
                conditions: Conditions | None = None, end: str = "close") -> Flow:
    """An MKS console (protocol.md §4.2): what each phase is for.

    SYN/SYN-ACK/ACK · ``banner`` (plaintext, ssl required) · TLS #1 (``tls1_client_hello``,
    ``tls1_server_hello``: certificate readable in TLS 1.2) · ticket login ``user``/``pass``/
    ``login_ok`` (331/230 echo the ticket) · ``thumbprint`` (16-char token → ``200 <sha1>``) ·
    ``connect`` (``CONNECT <vmx> mks``) · ``handoff`` (``200 Connect <vmx>``, last TLS #1 record,
    no close_notify) · TLS #2 on the raw stream (``tls2_client_hello``) · ``mks_token`` (16 bytes,
    first TLS #2 record) · ``rfb_server_init`` · ``rfb_set_encodings`` · ``rfb_first_update``
    (full screen) · ``seconds`` of console use · close_notify + FIN (``fin``), or ``end="open"``
    leaves the session running at the end of the capture.
    """
    flow, ch, pace, rng = sc.authd_tcp(client, host, at, conditions)
    facts = greet_and_tls(sc, ch, pace, host, tls1, sni)
    ticket, token = authd.ticket(rng), authd.client_token(rng)
    vmx = authd.datastore_path(rng, vm)
    ch.play(authd.mks_control(pace, ticket, token, host.cert.sha1, vmx))
    second_tls(sc, ch, host, tls2 or tls1, facts)
    screen = rfb.Screen(rng, name=vm)
    ch.play(rfb.mks_opening(screen, pace, token))
    ch.play(rfb.console_use(screen, pace, rng, seconds))
    if end == "close":
        ch.close(CLIENT, pace.between(0.3, 1.2), notify=True)
    facts.update(login="ok", login_kind="ticket", login_attempts=1, users=[ticket], command="CONNECT", target=vmx)
    sc.label(flow, feature="MKS", service="authd", transport="tls+tls2", persona=host.persona, expected=facts,
             notes=f"console of {vm}, {screen.width}x{screen.height}; RFB inside TLS #2 after the 16-byte token")
    return flow


def nfc_vddk(sc: Scenario, client: Client, host: Host, at: float, mode: str, size: int, *, tls1: str = "1.2",
             tls2: str | None = None, vm: str = "vm-db01", conditions: Conditions | None = None) -> Flow:
    """A VDDK disk read (protocol.md §5.3 a, §5.5); ``mode`` is ``"nbd"`` or ``"nbdssl"``.

    Phases: handshake · ``banner`` · TLS #1 · ``session`` (SESSION + BANNER, one flight, no
    reply) · banner re-sent inside TLS · ``thumbprint`` (THUMBPRINT_SHA2 PlainText on SHA256
    servers) · ``proxy`` (``PROXY vpxa-nfc[ssl]``) · ``handoff`` (``200 Connect ha-nfc[ssl]``) ·
    nbd: cleartext from ``nfc_first_message`` on | nbdssl: TLS #2 (``tls2_client_hello``) first ·
    classic 264-byte handshake · AIO ``aio_open_session``, ``aio_open_file``, ``aio_first_read``
    (reads of 256 KiB in 64 KiB fragments) … ``aio_close_session`` · ``nfc_session_complete`` ·
    FIN from the client.
    """
    if mode not in ("nbd", "nbdssl"):
        raise ValueError("mode must be 'nbd' or 'nbdssl'")
    flow, ch, pace, rng = sc.authd_tcp(client, host, at, conditions)
    facts = greet_and_tls(sc, ch, pace, host, tls1, None)
    session = authd.ticket(rng)
    thumb = host.cert.sha256 if host.profile.sha256 else host.cert.sha1
    ch.play(authd.nfc_vddk_control(pace, session, host.profile.banner_id, thumb, ssl=mode == "nbdssl"))
    if mode == "nbdssl":
        second_tls(sc, ch, host, tls2 or tls1, facts)
    else:
        ch.abandon_tls()
    disk = authd.datastore_path(rng, vm, ".vmdk")
    ch.play(nfc.vddk_handshake(pace) + nfc.vddk_read(pace, rng, disk, size))
    ch.close(CLIENT, pace("program"))
    facts.update(login_kind="session", users=[], command="PROXY",
                 target="ha-nfcssl" if mode == "nbdssl" else "ha-nfc", continues_in_clear=mode == "nbd",
                 nfc_mode=mode, nfc_bytes=size)
    sc.label(flow, feature="NFC", service="authd", persona=host.persona,
             transport="tls+tls2" if mode == "nbdssl" else "tls+clear", expected=facts,
             notes=f"VDDK {mode} read of {size} bytes from {disk}")
    return flow


def nfclib_upload(sc: Scenario, client: Client, host: Host, at: float, size: int, path: str, *, ssl: bool = False,
                  tls1: str = "1.2", conditions: Conditions | None = None) -> Flow:
    """An nfclib/photon-style file upload (protocol.md §5.3 b, §11.5).

    Phases: handshake · ``banner`` · TLS #1 · ``session`` · ``thumbprint`` (``PlainText`` or a
    16-char token with ``ssl``) → ``200 <sha1>`` · ``proxy`` (``PROXY nfc``/``nfcssl``) ·
    ``handoff`` · [TLS #2 with ``ssl``] · ``nfc_first_message`` (CLIENTRANDOM) · ``nfc_file_put``
    · FILE_DATA chunks ≤ 256 KiB · ``nfc_end_of_file`` · ``nfc_putfile_done`` ·
    ``nfc_session_complete`` (echoed) · FIN.
    """
    flow, ch, pace, rng = sc.authd_tcp(client, host, at, conditions)
    facts = greet_and_tls(sc, ch, pace, host, tls1, None)
    token = authd.client_token(rng) if ssl else "PlainText"
    service = "nfcssl" if ssl else "nfc"
    ch.play(authd.nfclib_control(pace, authd.ticket(rng), service, token, host.cert.sha1))
    if ssl:
        second_tls(sc, ch, host, tls1, facts)
    else:
        ch.abandon_tls()
    ch.play(nfc.nfclib_upload(pace, rng, path, size, token))
    ch.close(CLIENT, pace("program"))
    facts.update(login_kind="session", command="PROXY", target="ha-nfcssl" if ssl else "ha-nfc",
                 continues_in_clear=not ssl, nfc_mode="nfclib-ssl" if ssl else "nfclib", nfc_bytes=size)
    sc.label(flow, feature="NFC", service="authd", persona=host.persona,
             transport="tls+tls2" if ssl else "tls+clear", expected=facts, notes=f"upload of {size} bytes to {path}")
    return flow


def credential_login(sc: Scenario, client: Client, host: Host, at: float,
                     attempts: Iterable[tuple[str, str, bool]], *, per_connection: bool = False,
                     tls: str | None = None, silent_failures: bool = False,
                     conditions: Conditions | None = None) -> list[Flow]:
    """Password logins (protocol.md §3.5, §11.2): Hydra style on one connection, or Medusa style
    (``per_connection``) with a new connection per attempt.

    Phases per connection: handshake · ``banner`` · TLS #1 (SSL personas only; plaintext on
    legacy and 912 daemons) · per attempt ``user`` → 331, ``pass`` → ``login_ok`` (230) or
    ``login_failed`` (``530 Login incorrect.``; no reply with ``silent_failures``) · FIN from the
    client. Returns the flows in order.
    """
    attempts = list(attempts)
    groups = [[a] for a in attempts] if per_connection else [attempts]
    flows = []
    t = at
    for group in groups:
        flow, ch, pace, rng = sc.authd_tcp(client, host, t, conditions)
        facts = greet_and_tls(sc, ch, pace, host, tls, None)
        for n, (user, password, ok) in enumerate(group):
            steps = authd.login(pace, user, password, ok, silent_failure=silent_failures)
            if n:
                steps[0] = Step(steps[0].side, steps[0].data, pace("attempt"), steps[0].mark)
            ch.play(steps)
        ch.close(CLIENT, pace.between(0.3, 2.0) if silent_failures and not group[-1][2] else pace("program"))
        fails = sum(1 for _, _, ok in group if not ok)
        outcome = "ok" if any(ok for _, _, ok in group) else ("unanswered" if silent_failures else "failed")
        facts.update(login=outcome, login_kind="password", login_attempts=len(group), login_failures=fails,
                     users=[u for u, _, _ in group])
        transport = "tls" if host.profile.ssl_required else "plain"
        sc.label(flow, feature="NONE", service="authd", persona=host.persona, transport=transport, expected=facts,
                 notes="credential login" + (" (brute force)" if fails > 1 or per_connection else ""))
        flows.append(flow)
        t = ch.conv.ready("client") + pace("attempt")
    return flows


def probe(sc: Scenario, client: Client, host: Host, at: float, text: bytes = b"TEST\r\n\r\n") -> Flow:
    """A scanner's plaintext probe (OpenVAS ``TEST``, protocol.md §2.3, §11.1.2).

    Phases: handshake · ``banner`` · ``probe`` line · SSL-required daemon: the server closes
    (``fin`` from the server) | non-SSL daemon: ``530 Please login with USER and PASS.`` then the
    client closes.
    """
    flow, ch, pace, _ = sc.authd_tcp(client, host, at)
    profile = host.profile
    ch.conv.open(mark="syn")
    ch.send(SERVER, authd.banner(profile.banner_id), pace("reply"), "banner")
    ch.send(CLIENT, text, pace("program"), "probe")
    answer = authd.probe_answer(profile.ssl_required)
    if answer is None:
        ch.close(SERVER, pace("reply"))
    else:
        ch.send(SERVER, answer, pace("reply"), "please_login")
        ch.close(CLIENT, pace("program"))
    sc.label(flow, feature="NONE", service="authd", persona=host.persona, transport="plain",
             expected={"banner": profile.banner, "banner_id": profile.banner_id,
                       "ssl_required": profile.ssl_required, "app": "authd"},
             notes="scanner probe before TLS" + (" (server closes)" if answer is None else ""))
    return flow


def soap_over_902(sc: Scenario, client: Client, host: Host, at: float, *, user: str = "vpxuser",
                  tls: str = "1.2", vms: int = 40) -> Flow:
    """SOAP over 902 — the lab's model (no public wire definition, protocol.md §6).

    Phases: handshake · ``banner`` · TLS #1 · password login (``user``/``pass``/``login_ok``) ·
    ``soap_<Method>`` for RetrieveServiceContent, Login, RetrieveProperties (large response),
    Logout — each an HTTP/1.1 POST /sdk and its 200 response inside TLS #1 · close_notify + FIN.
    """
    flow, ch, pace, rng = sc.authd_tcp(client, host, at)
    facts = greet_and_tls(sc, ch, pace, host, tls, None)
    ch.play(authd.login(pace, user, "s3cr3t-" + str(rng.randrange(10**6)), ok=True))
    for method, req, resp in soap.session(rng, host.name, user, vms):
        ch.play([Step(CLIENT, req, pace("program"), f"soap_{method}"), Step(SERVER, resp, pace("http"))])
    ch.close(CLIENT, pace("program"), notify=True)
    facts.update(login="ok", login_kind="password", login_attempts=1, users=[user], model=True)
    sc.label(flow, feature="SOAP", service="authd", persona=host.persona, transport="tls", expected=facts,
             notes="MODEL: vim25 SOAP as HTTP/1.1 inside TLS #1 after USER/PASS; not observed on the wire")
    return flow


def vmxargs(sc: Scenario, client: Client, host: Host, at: float, *, vm: str = "vm-app02", tls: str = "1.2") -> Flow:
    """VMXARGS — the lab's model of a ``CONNECT_ARGV`` exchange (protocol.md §3.3, §6).

    Phases: handshake · ``banner`` · TLS #1 · ticket login · ``connect_argv`` (``CONNECT_ARGV
    <vmx> -s …``) · ``vmxargs_reply`` (``200 Connect <vmx>``) · FIN from the client shortly after,
    with no second handshake.
    """
    flow, ch, pace, rng = sc.authd_tcp(client, host, at)
    facts = greet_and_tls(sc, ch, pace, host, tls, None)
    ticket = authd.ticket(rng)
    vmx = authd.datastore_path(rng, vm)
    ch.play(authd.login(pace, ticket, ticket, ok=True))
    ch.play(authd.vmxargs_control(pace, vmx, ["-s", "vmx.stdio.keep=TRUE", "-s", "mks.enable3d=FALSE"]))
    ch.close(CLIENT, pace.between(0.05, 0.2))
    facts.update(login="ok", login_kind="ticket", login_attempts=1, users=[ticket], command="CONNECT_ARGV",
                 target=vmx, model=True)
    sc.label(flow, feature="VMXARGS", service="authd", persona=host.persona, transport="tls", expected=facts,
             notes="MODEL: CONNECT_ARGV syntax and reply are assumptions")
    return flow


def unanswered(sc: Scenario, client: Client, host: Host, at: float, retries=(1.0, 2.0, 4.0)) -> Flow:
    """SYNs to the authd port that nobody answers: ``syn`` then retransmissions after each gap."""
    flow, ch, *_ = sc.authd_tcp(client, host, at)
    ch.conv.syn_unanswered(at, retries, mark="syn")
    sc.label(flow, feature="NONE", service="authd", persona=host.persona, transport="none",
             notes=f"no SYN-ACK; {len(retries) + 1} SYNs")
    return flow


def refused(sc: Scenario, client: Client, host: Host, at: float, retries=()) -> Flow:
    """A SYN to the authd port answered by RST/ACK (nothing listening); optional retries."""
    flow, ch, *_ = sc.authd_tcp(client, host, at)
    ch.conv.refuse(at, retries, mark="syn")
    sc.label(flow, feature="NONE", service="authd", persona=host.persona, transport="none",
             notes="connection refused (RST/ACK)")
    return flow


def classic_handoff(sc: Scenario, client: Client, host: Host, at: float, seconds: float, *, tls: str = "1.0",
                    vm: str = "w2k3-sql") -> tuple[Flow, Flow]:
    """Classic ESX: a short 903 session, then the console on 902 (seed article; protocol.md §7).

    903 (model — the real 903 dialogue is not public): handshake · ``banner`` (B3) · TLS #1 ·
    ticket login · close_notify + FIN. Then, 0.2–0.9 s later, the same client opens 902 on the
    same host and runs a full ``mks_console``; its label links back via ``related.handoff_from``.
    """
    control = host.as_persona("esx-classic-903")
    flow, ch, pace, rng = sc.authd_tcp(client, control, at)
    facts = greet_and_tls(sc, ch, pace, control, tls, None)
    ticket = authd.ticket(rng)
    ch.play(authd.login(pace, ticket, ticket, ok=True))
    end = ch.close(CLIENT, pace("program"), notify=True)
    facts.update(login="ok", login_kind="ticket", login_attempts=1, users=[ticket], model=True)
    sc.label(flow, feature="MKS", service="authd", persona=control.persona, transport="tls", expected=facts,
             notes="MODEL: classic ESX service-console step on 903 before the 902 console")
    console = mks_console(sc, client, host.as_persona("esx-classic"), end + pace.between(0.2, 0.9), seconds,
                          tls1=tls, vm=vm)
    console.label["related"] = {"handoff_from": flow.uid}
    flow.label["related"] = {"handoff_to": console.uid}
    return flow, console


# -- background ------------------------------------------------------------------------------------

def dns_lookup(sc: Scenario, client: Client, resolver: str, name: str, answer: str, at: float) -> Flow:
    """A DNS A/AAAA query and its answer (``dns_query``, ``dns_response``)."""
    flow = sc.udp(client, resolver, 53, at)
    rng = sc.rng_for(flow.uid)
    query = background.dns_query(rng.getrandbits(16), name, 28 if ":" in answer else 1)
    t = flow.conn.send("client", query, at, "dns_query")
    flow.conn.send("server", background.dns_response(query, [ipaddress.ip_address(answer).packed]),
                   t + rng.uniform(0.0003, 0.004), "dns_response")
    sc.label(flow, feature="NONE", service="dns", transport="udp", expected={"app": "dns"}, notes=f"{name} -> {answer}")
    return flow


def https_session(sc: Scenario, client: Client, server: Host, at: float, requests: int = 4,
                  tls: str = "1.2") -> Flow:
    """HTTPS to port 443 (vSphere UI/API): TLS with SNI, ``requests`` GETs, close_notify + FIN."""
    flow, ch, pace, rng = sc.tcp(client, server.ip, 443, at)
    ch.conv.open(mark="syn")
    pair = sc.tls(server, tls, sni=server.name)
    ch.start_tls(pair, "tls1")
    ch.play(background.https_exchange(pace, rng, server.name, requests))
    ch.close(CLIENT, pace.between(0.5, 2.0), notify=True)
    sc.label(flow, feature="NONE", service="https", transport="tls",
             expected={"app": "https", "tls_handshakes": 1, "tls_version": pair.version, "tls_cipher": pair.cipher,
                       "sni": server.name, "cert_sha1": server.cert.sha1, "cert_sha256": server.cert.sha256})
    return flow


def ssh_session(sc: Scenario, client: Client, server: Host, at: float, commands: int = 3) -> Flow:
    """An interactive SSH session to port 22 (banners, key exchange, echoed keystrokes)."""
    flow, ch, pace, rng = sc.tcp(client, server.ip, 22, at)
    ch.conv.open(mark="syn")
    ch.play(background.ssh_session(pace, rng, commands))
    ch.close(CLIENT, pace.between(0.2, 1.0))
    sc.label(flow, feature="NONE", service="ssh", transport="ssh", expected={"app": "ssh"})
    return flow


def heartbeats(sc: Scenario, host: Host, vcenter: str, at: float, count: int, interval: float = 10.0) -> Flow:
    """vpxa heartbeats host → vCenter on UDP 902 (the *other* protocol on port 902, §9)."""
    flow = sc.udp(Client(host.name, host.ip, "linux"), vcenter, 902, at, client_port=902)
    for n in range(count):
        flow.conn.send("client", background.vpxa_heartbeat(n + 1, host.ip), at + n * interval,
                       "heartbeat" if n == 0 else None)
    sc.label(flow, feature="NONE", service="vpxa-heartbeat", transport="udp", expected={"app": "vpxa-heartbeat"},
             notes="UDP 902 is not authd")
    return flow
