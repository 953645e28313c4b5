"""Connection builders with field-like traffic models, for datasets (``dataset.py``).

Why: ``scenarios`` holds the builders of the bundled samples, each one fixed traffic shape.
A classifier trained or validated on those alone learns the lab, not the field. The builders
here take a *plan* — a console profile, an NFC style/direction/size/io size, a SOAP client
kind — and produce the same authd dialogues (protocol.md §3–§5, via ``authd``) followed by the
traffic models of ``console``, ``nfcstream`` and ``soapsession``; NONE-type connections add
the banner grabs and TLS-only probes scanners make. Every builder labels its flow through
``Scenario.label`` (same schema as the samples) and stores its plan under ``label["traffic"]``.

Endings vary as they do in the field: FIN after close_notify, FIN without it, RST, the server
closing (VM powered off), or the session still open when the capture ends.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import authd, console, nfc, nfcstream, soapsession
from .channel import CLIENT, SERVER, Channel, Step
from .pace import Pace
from .scenario import Client, Flow, Host, Scenario
from .scenarios import greet_and_tls, second_tls      # shared with the sample builders

ENDINGS = ("notify", "fin", "rst", "server", "open")


def finish(ch: Channel, pace: Pace, end: str, after: float = 0.0) -> None:
    """End a connection: ``notify`` (close_notify + FIN), ``fin``, ``rst``, ``server`` (server
    FIN, e.g. the VM was powered off), or ``open`` (still running when the capture ends)."""
    delay = after + pace("program")
    if end == "notify":
        ch.close(CLIENT, delay, notify=True)
    elif end == "fin":
        ch.close(CLIENT, delay)
    elif end == "rst":
        ch.reset(CLIENT, delay)
    elif end == "server":
        ch.close(SERVER, delay, notify=True)
    elif end != "open":
        raise ValueError(f"unknown ending {end!r}")


def _vm_name(rng: random.Random) -> str:
    stem = rng.choice(("web", "db", "app", "dc", "file", "build", "jump", "sql", "exch", "k8s-node", "win10-vdi",
                       "ubuntu", "rhel9", "test"))
    return f"{stem}{rng.randint(1, 99):02d}" + rng.choice(("", "", "-prod", "-dev", " (clone)", "_old"))


# -- MKS ---------------------------------------------------------------------------------------------

def mks_session(sc: Scenario, client: Client, host: Host, at: float, plan: console.ConsolePlan, *,
                tls1: str, tls2: str, sni: str | None = None, end: str = "notify", vm: str | None = None) -> Flow:
    """A console (protocol.md §4.2) followed by ``plan``'s RFB traffic (``console.Console``)."""
    flow, ch, pace, rng = sc.authd_tcp(client, host, at)
    facts = greet_and_tls(sc, ch, pace, host, tls1, sni)
    ticket, token = authd.ticket(rng), authd.client_token(rng)
    vm = vm or _vm_name(rng)
    vmx = authd.datastore_path(rng, vm)
    ch.play(authd.mks_control(pace, ticket, token, host.cert.sha1, vmx))
    second_tls(sc, ch, host, tls2, facts)
    width, height = plan.boot_from or (plan.width, plan.height)
    screen = console.FastScreen(rng, width, height, name=vm)
    ch.play(console.opening(screen, pace, token))
    ch.play(console.Console(screen, pace, rng, plan).steps())
    finish(ch, pace, end, rng.uniform(0.2, 1.5))
    facts.update(login="ok", login_kind="ticket", login_attempts=1, users=[ticket], command="CONNECT", target=vmx)
    sc.label(flow, feature="MKS", service="authd", transport="tls+tls2", persona=host.persona, expected=facts,
             notes=f"console of {vm}: {plan.profile}, {plan.seconds:.0f} s, {plan.width}x{plan.height}; ends {end}")
    flow.label["traffic"] = {**plan.as_dict(), "end": end}
    return flow


# -- NFC ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NfcPlan:
    """One NFC session: ``style`` vddk-aio | vddk-fssrvr | nfclib | photon; ``write`` = upload /
    restore; ``ssl`` = second TLS (nbdssl / nfclib-ssl)."""

    style: str
    write: bool
    size: int
    ssl: bool = False
    io_size: int = 262144
    queue_depth: int = 1
    disk: bool = True
    chunk: int = nfc.MAX_XFER
    sparse: float = 0.3
    scattered: bool = False
    direct: bool = False          # direct-ESXi ticket: ``PROXY nfc`` instead of ``vpxa-nfc``

    def as_dict(self) -> dict:
        return {"model": "nfc", "style": self.style, "direction": "write" if self.write else "read",
                "bytes": self.size, "ssl": self.ssl, "io_size": self.io_size, "queue_depth": self.queue_depth,
                "disk": self.disk, "chunk": self.chunk, "sparse": self.sparse, "scattered": self.scattered,
                "direct": self.direct}


STYLES = ("vddk-aio", "vddk-fssrvr", "nfclib", "photon")


def nfc_session(sc: Scenario, client: Client, host: Host, at: float, plan: NfcPlan, *, tls1: str, tls2: str,
                sni: str | None = None, end: str = "fin") -> Flow:
    """An NFC session (protocol.md §5.3) in one of four client styles, any size, either way."""
    if plan.style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}")
    flow, ch, pace, rng = sc.authd_tcp(client, host, at)
    facts = greet_and_tls(sc, ch, pace, host, tls1, sni)
    session_id = authd.ticket(rng)
    target = "ha-nfcssl" if plan.ssl else "ha-nfc"
    vm = _vm_name(rng)
    if plan.style.startswith("vddk"):
        thumb = host.cert.sha256 if host.profile.sha256 else host.cert.sha1
        service = ("nfcssl" if plan.ssl else "nfc") if plan.direct else None
        ch.play(authd.nfc_vddk_control(pace, session_id, host.profile.banner_id, thumb, ssl=plan.ssl, service=service))
    elif plan.style == "nfclib":           # the THUMBPRINT token comes back in NFC_CLIENTRANDOM (§5.3 b)
        token = authd.client_token(rng) if plan.ssl else "PlainText"
        ch.play(authd.nfclib_control(pace, session_id, "nfcssl" if plan.ssl else "nfc", token, host.cert.sha1))
    else:                                   # photon Authd.java: SESSION and PROXY back to back, no THUMBPRINT
        service = rng.choice(("nfc", "vpxa-nfc"))
        ch.play([Step(CLIENT, (authd.line(f"SESSION {session_id}"), authd.line(f"PROXY {service}")), pace("program"),
                      "session"),
                 Step(SERVER, authd.line(f"200 Connect {target}"), pace("proxy"), "handoff")])
    if plan.ssl:
        second_tls(sc, ch, host, tls2, facts)
    else:
        ch.abandon_tls()
    if plan.style == "vddk-aio":
        disk = authd.datastore_path(rng, vm, ".vmdk")
        version = nfc.ESXI8_NFC_VERSION if host.persona == "esxi8" else rng.choice((9, 10))
        ch.play(nfc.vddk_handshake(pace, version))
        ch.play(nfcstream.vddk_io(pace, rng, disk, plan.size, write=plan.write, io_size=plan.io_size,
                                  queue_depth=plan.queue_depth, sparse=plan.sparse, scattered=plan.scattered))
        what = disk
    elif plan.style == "vddk-fssrvr":
        disk = authd.datastore_path(rng, vm, ".vmdk")
        ch.play(nfcstream.fssrvr_io(pace, rng, disk, plan.size, write=plan.write, io_size=plan.io_size,
                                    sparse=plan.sparse, scattered=plan.scattered))
        what = disk
    else:
        suffix = ".vmdk" if plan.disk else rng.choice((".iso", ".vmx", ".nvram", ".log", ".ova", ".img"))
        path = (f"[{rng.choice(('datastore1', 'vsanDatastore', 'nfs-iso', 'SAN-LUN01'))}] {vm}/{vm}{suffix}"
                if rng.random() < 0.5 else authd.datastore_path(rng, vm, suffix))
        token = None if plan.style == "photon" else token
        move = nfcstream.file_put if plan.write else nfcstream.file_get
        ch.play(move(pace, rng, path, plan.size, token=token, disk=plan.disk, chunk=plan.chunk, sparse=plan.sparse))
        what = path
    finish(ch, pace, end)
    if plan.style in ("vddk-aio", "vddk-fssrvr"):
        mode = "nbdssl" if plan.ssl else "nbd"
    else:
        mode = "nfclib-ssl" if plan.ssl else "nfclib"
    facts.update(login_kind="session", users=[], command="PROXY", target=target, continues_in_clear=not plan.ssl,
                 nfc_mode=mode, nfc_bytes=plan.size, model=plan.style == "vddk-fssrvr" and not plan.write)
    sc.label(flow, feature="NFC", service="authd", persona=host.persona,
             transport="tls+tls2" if plan.ssl else "tls+clear", expected=facts,
             notes=f"{plan.style} {'write' if plan.write else 'read'} of {plan.size} bytes, {what}")
    flow.label["traffic"] = {**plan.as_dict(), "end": end}
    return flow


# -- SOAP, VMXARGS -------------------------------------------------------------------------------

def soap_session(sc: Scenario, client: Client, host: Host, at: float, plan: soapsession.SoapPlan, *,
                 tls: str | None, sni: str | None = None, user: str = "vpxuser", ticket_login: bool = False,
                 end: str = "notify") -> Flow:
    """SOAP over 902 — the lab's model (protocol.md §6): login, then ``plan``'s HTTP exchanges
    inside TLS #1 (plaintext on non-SSL daemons)."""
    flow, ch, pace, rng = sc.authd_tcp(client, host, at)
    facts = greet_and_tls(sc, ch, pace, host, tls, sni)
    name = authd.ticket(rng) if ticket_login else user
    ch.play(authd.login(pace, name, name if ticket_login else f"s3cr3t-{rng.randrange(10**6)}", ok=True))
    ch.play(soapsession.session(pace, rng, host.name, user, plan))
    finish(ch, pace, end)
    facts.update(login="ok", login_kind="ticket" if ticket_login else "password", login_attempts=1, users=[name],
                 model=True)
    transport = "tls" if host.profile.ssl_required else "plain"
    sc.label(flow, feature="SOAP", service="authd", persona=host.persona, transport=transport, expected=facts,
             notes=f"MODEL: vim25 SOAP ({plan.kind}, {plan.calls} calls) after USER/PASS; not observed on the wire")
    flow.label["traffic"] = {**plan.as_dict(), "end": end}
    return flow


VMX_OPTIONS = ("vmx.stdio.keep=TRUE", "mks.enable3d=FALSE", "vmx.buildType=release", "monitor.virtual_mmu=hardware",
               "log.keepOld=10", "vmx.log.level=verbose", "mainMem.useNamedFile=FALSE", "svga.autodetect=TRUE",
               "tools.syncTime=TRUE", "sched.mem.pshare.enable=FALSE")


def vmxargs_session(sc: Scenario, client: Client, host: Host, at: float, *, tls: str, sni: str | None = None,
                    options: int = 2, end: str = "fin", linger: float = 0.1) -> Flow:
    """VMXARGS — the lab's model of a ``CONNECT_ARGV`` exchange (protocol.md §3.3, §6) with a
    varying number of ``-s`` options, then the client leaves after ``linger`` seconds."""
    flow, ch, pace, rng = sc.authd_tcp(client, host, at)
    facts = greet_and_tls(sc, ch, pace, host, tls, sni)
    ticket = authd.ticket(rng)
    vm = _vm_name(rng)
    vmx = authd.datastore_path(rng, vm)
    argv: list[str] = []
    for option in rng.sample(VMX_OPTIONS, min(options, len(VMX_OPTIONS))):
        argv += ["-s", option]
    ch.play(authd.login(pace, ticket, ticket, ok=True))
    ch.play(authd.vmxargs_control(pace, vmx, argv))
    finish(ch, pace, end, linger)
    facts.update(login="ok", login_kind="ticket", login_attempts=1, users=[ticket], command="CONNECT_ARGV",
                 target=vmx, model=True)
    sc.label(flow, feature="VMXARGS", service="authd", persona=host.persona, transport="tls", expected=facts,
             notes="MODEL: CONNECT_ARGV syntax and reply are assumptions")
    flow.label["traffic"] = {"model": "vmxargs", "options": options, "linger_s": round(linger, 3), "end": end}
    return flow


# -- NONE: scanners and probes ----------------------------------------------------------------------

def tls_only(sc: Scenario, client: Client, host: Host, at: float, *, tls: str, sni: str | None = None,
             end: str = "notify") -> Flow:
    """Banner, TLS handshake, close: a version/certificate scanner (Metasploit ``vmauthd_version``,
    nmap ``ssl-cert``) — TLS #1 without a single authd command."""
    flow, ch, pace, rng = sc.authd_tcp(client, host, at)
    facts = greet_and_tls(sc, ch, pace, host, tls, sni)
    finish(ch, pace, end, rng.uniform(0.0, 0.05))
    sc.label(flow, feature="NONE", service="authd", persona=host.persona, transport="tls", expected=facts,
             notes=f"TLS handshake only (certificate / version scan), ends {end}")
    flow.label["traffic"] = {"model": "tls-only", "end": end}
    return flow


def banner_grab(sc: Scenario, client: Client, host: Host, at: float, *, end: str = "fin") -> Flow:
    """Connect, read the greeting, leave (nmap NULL probe, masscan/zgrab banner grabs)."""
    flow, ch, pace, rng = sc.authd_tcp(client, host, at)
    profile = host.profile
    ch.conv.open(mark="syn")
    ch.send(SERVER, authd.banner(profile.banner_id), pace("reply"), "banner")
    finish(ch, pace, "rst" if end == "rst" else "fin", rng.uniform(0.0, 0.3))
    sc.label(flow, feature="NONE", service="authd", persona=host.persona, transport="plain",
             expected={"banner": profile.banner, "banner_id": profile.banner_id,
                       "ssl_required": profile.ssl_required, "app": "authd"},
             notes="banner grab: the client reads the greeting and leaves")
    flow.label["traffic"] = {"model": "banner-grab", "end": end}
    return flow


PROBES = (b"TEST\r\n\r\n", b"\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n", b"HELP\r\n", b"OPTIONS / RTSP/1.0\r\n\r\n",
          b"\x80\x00\x00\x28\x72\xfe\x1d\x13\x00\x00\x00\x00\x00\x00\x00\x02\x00\x01\x86\xa0")
USERS = ("root", "admin", "administrator", "vmware", "esxadmin", "test", "user", "backup", "svc-vcenter")
PASSWORDS = ("vmware", "VMware1!", "password", "123456", "root", "admin", "P@ssw0rd", "Welcome1", "changeme",
             "esxi", "Passw0rd!", "qwerty", "letmein", "VMware123!", "toor")
