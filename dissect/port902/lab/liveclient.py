"""Real port-902 clients for the live lab: one process = one client's session(s) on real sockets.

    python -m dissect.port902.lab.liveclient PERSONA --server HOST:PORT [--seed N] [--result FILE] ...

Why: the classifier is tuned on the in-process lab; the live lab measures it on traffic made by
real processes through the kernel's TCP stack (``live.py``). Each persona does on the wire what
the client it imitates does, per protocol.md (TLS handling in ``livewire``):

``mks``        VMRC / esxclient-style console (§4.2): ticket ``USER``/``PASS`` (331/230 echo it),
               ``THUMBPRINT <16 chars>`` → ``200 <sha1>``, ``CONNECT <vmx> mks`` → ``200 Connect``,
               TLS #2 on the raw stream pinned to that SHA-1, the 16-char token as first TLS #2
               data, then RFB relayed to a real VNC viewer (``livemks``); ``--use``
               interactive | idle | quick.
``nfc-vddk``   VDDK 8 (§5.3 a, §11.4): ``SESSION`` + ``BANNER `` in one write, ``THUMBPRINT_SHA2
               PlainText`` (``THUMBPRINT`` without ``SHA256 supported``), ``PROXY vpxa-nfc[ssl]``
               (``nfc[ssl]`` with ``--direct``), then cleartext NFC (nbd) or TLS #2 (nbdssl):
               the classic handshake and AIO reads / writes (``nfc``, ``nfcstream``).
``nfc-nfclib`` VMware nfclib (§5.3 b, §11.5): ``SESSION``, ``THUMBPRINT PlainText|<token>``,
               ``PROXY nfc|nfcssl``; NFC_CLIENTRANDOM, FILE_PUT / FILE_GET + FILE_DATA.
``nfc-photon`` photon-controller (§5.3 c): ``SESSION`` and ``PROXY`` back to back, no THUMBPRINT,
               file transfer without CLIENTRANDOM.
``soap``       the lab's SOAP-over-902 model (§6): password login, HTTP/1.1 POSTs of vim25
               envelopes inside TLS #1 (``soapsession``), close_notify.
``vmxargs``    the lab's VMXARGS model: ticket login, one ``CONNECT_ARGV <vmx> -s …``, its reply.
``brute``      Hydra style (§2.3, §3.5): several ``USER``/``PASS`` on one connection; with
               ``--per-connection`` Medusa / Metasploit style, a new connection per attempt.
``hangup``     a client that gives up early (after the banner, after TLS #1, or after ``USER``).
``banner``     banner grab (nmap NULL probe), ``probe`` OpenVAS ``TEST\\r\\n\\r\\n`` (§2.3),
``tls-only``   banner, TLS #1, nothing else (certificate scanners).

Ground truth: the result file (``--result``, JSON) lists every connection the process made
with what it actually did — endpoints, banner read, each handshake's version and cipher,
logins, hand-off command and target, NFC mode and bytes, payload bytes, timed marks.
``--marks`` prints ``MARK <name>`` lines on stdout as the session passes them (the harness
starts a capture inside a session on such a mark). Exit status 0 on success, 1 on failure
(the error is in the result too).
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import time
import traceback

from . import authd, nfc, nfcstream, soapsession
from .channel import CLIENT
from .pace import Pace
from .livewire import Wire, WireError, client_context

PERSONAS = ("mks", "nfc-vddk", "nfc-nfclib", "nfc-photon", "soap", "vmxargs", "brute", "hangup", "banner", "probe",
            "tls-only")
FEATURE = {"mks": "MKS", "nfc-vddk": "NFC", "nfc-nfclib": "NFC", "nfc-photon": "NFC", "soap": "SOAP",
           "vmxargs": "VMXARGS"}
USERS = ("root", "admin", "administrator", "vmware", "esxadmin", "test", "backup", "svc-vcenter")
PASSWORDS = ("vmware", "VMware1!", "password", "123456", "root", "admin", "P@ssw0rd", "Welcome1", "changeme",
             "esxi", "letmein", "Passw0rd!")
PROBES = {"openvas": b"TEST\r\n\r\n", "generic": b"\r\n\r\n", "http": b"GET / HTTP/1.0\r\n\r\n", "help": b"HELP\r\n"}


class Session:
    """Shared state of one client process: arguments, generator, connections made, output."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rng = random.Random(args.seed)
        self.pace = Pace(self.rng)
        host, _, port = args.server.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.connections: list[dict] = []
        self.wires: list[Wire] = []
        self.ctx = client_context(args.tls_max, args.tls_min)

    def mark(self, what: str) -> None:
        if self.args.marks:
            print(f"MARK {what} {time.time():.6f}", flush=True)

    def connect(self) -> Wire:
        wire = Wire(self.host, self.port, timeout=self.args.timeout, on_mark=self.mark)
        self.wires.append(wire)
        return wire

    def sni(self) -> str | None:
        return self.args.sni or None

    def done(self, wire: Wire, outcome: str, **facts) -> dict:
        """Record one finished connection (its facts plus what the persona adds)."""
        row = {**wire.facts(), "outcome": outcome, **facts}
        self.connections.append(row)
        wire.recorded = True
        return row

    def abort(self, error: str) -> None:
        """Record the connections a failure left unfinished (they are on the wire all the same)."""
        for wire in self.wires:
            if not getattr(wire, "recorded", False):
                wire.sock.close()
                self.done(wire, "error", feature=FEATURE.get(self.args.persona, "NONE"), error=error)

    def sleep(self, seconds: float) -> None:
        if seconds > 0.001:
            time.sleep(seconds)


# -- scripted NFC dialogues (steps from nfc / nfcstream, server replies read for real) ------------

def _items(data) -> tuple[bytes, ...]:
    return data if isinstance(data, tuple) else (data,)


def _read_like(wire: Wire, expected: bytes) -> bytes:
    """Read the server's message that the script expects here: same type, same framing."""
    head = wire.recv_exact(4)
    if head != expected[:4]:
        raise WireError(f"NFC: server sent {head.hex()}…, the dialogue expects {expected[:4].hex()}…")
    if struct.unpack("<I", head)[0] == nfc.FILE_DATA and len(expected) >= nfc.MSG_SIZE + 8:
        rest = wire.recv_exact(nfc.MSG_SIZE + 8 - 4)
        size = struct.unpack("<I", rest[-4:])[0]
        return head + rest + wire.recv_exact(size)
    if head == struct.pack("<I", nfc.AIO_MAGIC):
        header = wire.recv_exact(12)
        payload = wire.recv_exact(struct.unpack("<I", header[4:8])[0])
        kind, wanted = struct.unpack("<I", header[:4])[0], _aio_kind(expected)
        if kind != wanted:
            text = wire.recv_exact(struct.unpack_from("<I", payload, 8)[0]) if kind == nfc.AIO_ERROR else b""
            raise WireError(f"NFC: server answered AIO type {kind} {text.decode('latin-1')!r}, expected {wanted}")
        extra = len(expected) - 16 - len(payload)
        return head + header + payload + (wire.recv_exact(extra) if extra > 0 else b"")
    return head + wire.recv_exact(len(expected) - 4)


def _aio_kind(frame: bytes) -> int | None:
    if len(frame) >= 16 and frame[:4] == struct.pack("<I", nfc.AIO_MAGIC):
        return struct.unpack_from("<I", frame, 4)[0]
    return None


def _rehandle(frame: bytes, handles: tuple[bytes, bytes] | None) -> bytes:
    """Use the disk handle the server returned in OPEN_FILE where the script has its own
    (IO, DDB_GET and CLOSE_FILE payloads start with the handle, §5.5)."""
    if handles and _aio_kind(frame) in (nfc.AIO_IO, nfc.AIO_DDB_GET, nfc.AIO_CLOSE_FILE) \
            and frame[16:24] == handles[0]:
        return frame[:16] + handles[1] + frame[24:]
    return frame


def play_nfc(s: Session, wire: Wire, steps, gap: float = 0.0) -> dict:
    """Run an NFC dialogue: send the client's messages, read and check the server's.

    A download's FILE_DATA stream is read up to the server's zero-length FILE_DATA whatever
    chunking the server chose. ``gap`` adds a delay before each client message (a consumer
    slower than the network). Returns byte counts of file data each way.
    """
    moved = {"sent": 0, "received": 0, "messages_in": 0}
    streamed = False
    handles = None                           # (the script's disk handle, the server's)
    for step in steps:
        if step.side == CLIENT:
            s.sleep(step.delay + gap)
            if step.mark:
                wire.mark(step.mark)
            for item in _items(step.data):
                item = _rehandle(item, handles)
                wire.send(item)
                moved["sent"] += len(item)
            continue
        for item in _items(step.data):
            classic_data = item[:4] == struct.pack("<I", nfc.FILE_DATA)
            if classic_data and streamed:
                continue                     # already read to the end of the server's stream
            if not classic_data:
                streamed = False
                got = _read_like(wire, item)
                if _aio_kind(item) == nfc.AIO_OPEN_FILE and _aio_kind(got) == nfc.AIO_OPEN_FILE:
                    handles = (item[24:32], got[24:32])
                moved["received"] += len(got)
                moved["messages_in"] += 1
                continue
            while True:                      # a FILE_DATA stream from the server
                got = _read_like(wire, item)
                moved["received"] += len(got) - nfc.MSG_SIZE - 8
                moved["messages_in"] += 1
                if len(got) == nfc.MSG_SIZE + 8:
                    streamed = True
                    break
    return moved


def _handoff(s: Session, wire: Wire, ssl: bool, pin: str | None) -> None:
    """After ``200 Connect``: drop TLS #1 silently; nbdssl / nfcssl start TLS #2 (pinned)."""
    wire.abandon_tls()
    wire.mark("handoff")
    if ssl:
        info = wire.start_tls(client_context(s.args.tls_max, s.args.tls_min), None, "tls2")
        if pin and len(pin) == len(info["cert_sha1"]) and pin != info["cert_sha1"]:
            raise WireError(f"TLS #2 certificate {info['cert_sha1']} is not the one announced ({pin})")


def _nfc_path(s: Session, suffix: str) -> str:
    return s.args.path or authd.datastore_path(s.rng, s.args.vm, suffix)


def run_nfc(s: Session) -> None:
    a = s.args
    wire = s.connect()
    banner = wire.greet(s.ctx, s.sni())
    sid = authd.ticket(s.rng)
    ssl = a.ssl
    style = a.persona.split("-", 1)[1]
    pin = None
    if style == "vddk":
        wire.mark("session")
        wire.send(authd.line(f"SESSION {sid}") + authd.line("BANNER "))        # one write, one record
        again = wire.read_line()
        if not again.startswith("220 "):
            raise WireError(f"BANNER: unexpected reply {again!r}")
        verb = "THUMBPRINT_SHA2" if "SHA256 supported" in banner else "THUMBPRINT"
        wire.mark("thumbprint")
        wire.command(f"{verb} PlainText", "200")
        service = ("nfcssl" if ssl else "nfc") if a.direct else ("vpxa-nfcssl" if ssl else "vpxa-nfc")
    elif style == "nfclib":
        token = authd.client_token(s.rng) if ssl else "PlainText"
        wire.mark("session")
        wire.send_line(f"SESSION {sid}")
        wire.mark("thumbprint")
        pin = wire.command(f"THUMBPRINT {token}", "200")[4:].strip()
        service = "nfcssl" if ssl else "nfc"
    else:                                    # photon: SESSION and PROXY back to back, then one reply
        service = "nfcssl" if ssl else a.service or s.rng.choice(("nfc", "vpxa-nfc"))
        wire.mark("session")
        wire.send_line(f"SESSION {sid}")
    wire.mark("proxy")
    reply = wire.command(f"PROXY {service}", "200")
    target = reply[len("200 Connect "):].strip() if reply.startswith("200 Connect ") else reply[4:].strip()
    _handoff(s, wire, ssl, pin)
    gap = a.gap
    if style == "vddk":
        disk = _nfc_path(s, ".vmdk")
        steps = [*nfc.vddk_handshake(s.pace, a.nfc_version),
                 *nfcstream.vddk_io(s.pace, s.rng, disk, a.bytes, write=a.write, io_size=a.io_size)]
        mode, what = ("nbdssl" if ssl else "nbd"), disk
    else:
        what = _nfc_path(s, a.suffix)
        token = None if style == "photon" else (token if ssl else "PlainText")
        move = nfcstream.file_put if a.write else nfcstream.file_get
        steps = move(s.pace, s.rng, what, a.bytes, token=token, disk=False, chunk=a.chunk)
        mode = "nfclib-ssl" if ssl else "nfclib"
    moved = play_nfc(s, wire, steps, gap)
    outcome = wire.close(a.end if a.end != "notify" or ssl else "fin")
    s.done(wire, outcome, feature="NFC", login_kind="session", users=[], command="PROXY", service=service,
           target=target, continues_in_clear=not ssl, nfc_mode=mode, nfc_bytes=a.bytes,
           traffic={"model": "nfc", "style": a.persona, "direction": "write" if a.write else "read",
                    "bytes": a.bytes, "ssl": ssl, "io_size": a.io_size, "gap_s": gap, "path": what,
                    "moved": moved, "end": a.end})


# -- SOAP, VMXARGS ---------------------------------------------------------------------------------

def _http_response(wire: Wire) -> tuple[str, int]:
    """One HTTP/1.1 response inside TLS #1: status line and body size (Content-Length)."""
    head = bytearray()
    while b"\r\n\r\n" not in head:
        head += wire.recv_exact(1) if len(head) > 3 else wire.recv_exact(4)
    text = head.decode("latin-1")
    length = 0
    for header in text.split("\r\n")[1:]:
        name, _, value = header.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    wire.recv_exact(length)
    return text.split("\r\n", 1)[0], length


def run_soap(s: Session) -> None:
    a = s.args
    wire = s.connect()
    wire.greet(s.ctx, s.sni())
    wire.mark("user")
    wire.command(f"USER {a.user}", "331")
    wire.command(f"PASS {a.password}", "230")
    wire.mark("login_ok")
    plan = soapsession.draw_plan(s.rng, a.soap_kind)
    plan = soapsession.SoapPlan(plan.kind, min(plan.calls, a.calls), plan.think, None, 0.0, plan.objects,
                                plan.agent, plan.logout)
    methods, statuses = [], []
    for step in soapsession.session(s.pace, s.rng, s.host, a.user, plan):
        if step.side != CLIENT:
            status, _ = _http_response(wire)
            statuses.append(status)
            continue
        s.sleep(min(step.delay * a.think_scale, a.max_think))
        if step.mark:
            wire.mark(step.mark)
        methods.append(step.data.split(b"<soapenv:Body><", 1)[-1].split(b" ", 1)[0].decode())
        wire.send(step.data)
    outcome = wire.close(a.end)
    s.done(wire, outcome, feature="SOAP", login="ok", login_kind="password", login_attempts=1, users=[a.user],
           model=True, traffic={"model": "soap", "kind": plan.kind, "calls": len(methods), "methods": methods,
                                "statuses": sorted(set(statuses)), "end": a.end})


def run_vmxargs(s: Session) -> None:
    a = s.args
    wire = s.connect()
    wire.greet(s.ctx, s.sni())
    ticket = authd.ticket(s.rng)
    wire.mark("user")
    wire.command(f"USER {ticket}", "331")
    wire.command(f"PASS {ticket}", "230")
    vmx = authd.datastore_path(s.rng, a.vm)
    options = []
    for _ in range(s.rng.randint(1, 4)):
        options += ["-s", s.rng.choice(("vmx.stdio.keep=TRUE", "mks.enable3d=FALSE", "svga.autodetect=TRUE",
                                        "tools.syncTime=FALSE", "vmx.buildType=release"))]
    wire.mark("connect_argv")
    reply = wire.command(" ".join(["CONNECT_ARGV", vmx, *options]), "200")
    s.sleep(a.linger)
    outcome = wire.close(a.end)
    s.done(wire, outcome, feature="VMXARGS", login="ok", login_kind="ticket", login_attempts=1, users=[ticket],
           command="CONNECT_ARGV", target=vmx, model=True, reply=reply,
           traffic={"model": "vmxargs", "options": len(options) // 2, "linger_s": a.linger, "end": a.end})


# -- NONE: brute force, probes, early hang-ups ---------------------------------------------------------

def _attempt(wire: Wire, user: str, password: str, silent_wait: float) -> str:
    """One USER/PASS pair: ``ok`` (230), ``failed`` (530), ``unanswered`` (no reply in time)."""
    wire.mark("user")
    wire.command(f"USER {user}", "331")
    wire.send_line(f"PASS {password}")
    wire.mark("pass")
    wire.sock.settimeout(silent_wait)
    try:
        reply = wire.read_line()
    except TimeoutError:
        return "unanswered"
    finally:
        wire.sock.settimeout(wire.timeout)
    return "ok" if reply.startswith("230") else "failed"


def run_brute(s: Session) -> None:
    a = s.args
    user = a.user if a.user != "vpxuser" else s.rng.choice(USERS)
    passwords = s.rng.sample(PASSWORDS, min(a.attempts, len(PASSWORDS)))
    if a.password_last:
        passwords[-1] = a.password
    groups = [[p] for p in passwords] if a.per_connection else [passwords]
    for group in groups:
        wire = s.connect()
        wire.greet(s.ctx, s.sni())
        results = []
        for n, password in enumerate(group):
            if n:
                s.sleep(s.pace("attempt") * a.think_scale * 4)
            try:
                results.append(_attempt(wire, user, password, a.silent_wait))
            except EOFError:
                results.append("closed")
                break
            if results[-1] == "ok":
                break
        outcome = wire.close(a.end)
        answered = [r for r in results if r in ("ok", "failed")]
        login = "ok" if "ok" in results else ("failed" if answered else "unanswered")
        s.done(wire, outcome, feature="NONE", login=login, login_kind="password", login_attempts=len(results),
               login_failures=sum(1 for r in results if r != "ok"), users=[user] * len(results),
               traffic={"model": "brute-multi" if a.per_connection else "brute-single", "attempts": results,
                        "of": len(groups), "end": a.end})
        if len(groups) > 1:
            s.sleep(s.pace("attempt") * a.think_scale * 4)


def run_short(s: Session) -> None:
    """banner grab, plaintext probe, TLS-only scan, early hang-up."""
    a = s.args
    wire = s.connect()
    facts: dict = {"feature": "NONE", "traffic": {"model": a.persona, "end": a.end}}
    if a.persona == "banner":
        wire.banner()
    elif a.persona == "probe":
        wire.banner()
        text = PROBES[a.probe]
        wire.mark("probe")
        wire.send(text)
        wire.sock.settimeout(a.silent_wait)
        try:
            answer = wire.recv_some()
            facts["traffic"]["answer"] = answer.decode("latin-1").strip() if answer else "closed by server"
        except TimeoutError:
            facts["traffic"]["answer"] = None
        facts["traffic"]["probe"] = a.probe
    elif a.persona == "tls-only":
        wire.greet(s.ctx, s.sni())
    else:                                    # hangup after banner | tls | user
        wire.banner()
        if a.hangup_after in ("tls", "user") and "SSL" in wire.banner_text:
            wire.start_tls(s.ctx, s.sni(), "tls1")
        if a.hangup_after == "user":
            wire.command(f"USER {s.rng.choice(USERS)}", "331")
            facts.update(login="unanswered", login_kind="password", login_attempts=1)
        facts["traffic"]["after"] = a.hangup_after
    s.sleep(a.linger)
    outcome = wire.close(a.end)
    s.done(wire, outcome, **facts)


def run(s: Session) -> None:
    persona = s.args.persona
    if persona == "mks":
        from . import livemks
        livemks.run_mks(s)
    elif persona.startswith("nfc-"):
        run_nfc(s)
    elif persona == "soap":
        run_soap(s)
    elif persona == "vmxargs":
        run_vmxargs(s)
    elif persona == "brute":
        run_brute(s)
    else:
        run_short(s)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dissect.port902.lab.liveclient",
                                description=__doc__.split("\n\n")[1].strip())
    p.add_argument("persona", choices=PERSONAS)
    p.add_argument("--server", required=True, help="HOST:PORT of authd")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--result", help="write the ground-truth JSON here (default: stdout)")
    p.add_argument("--marks", action="store_true", help="print MARK lines as the session progresses")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--tls-max", choices=("1.0", "1.1", "1.2", "1.3"))
    p.add_argument("--tls-min", choices=("1.0", "1.1", "1.2", "1.3"), default="1.0")
    p.add_argument("--sni", help="server name in the ClientHello")
    p.add_argument("--end", choices=("fin", "rst", "notify"), default="fin", help="how the client ends")
    p.add_argument("--vm", default="vm01", help="VM name in vmx / vmdk paths")
    p.add_argument("--user", default="vpxuser")
    p.add_argument("--password", default="vmware")
    p.add_argument("--think-scale", type=float, default=1.0, help="scale human think times")
    p.add_argument("--max-think", type=float, default=2.0)
    p.add_argument("--linger", type=float, default=0.1, help="seconds before closing (vmxargs, probes)")
    # MKS
    p.add_argument("--use", choices=("interactive", "idle", "quick"), default="interactive")
    p.add_argument("--viewer", choices=("tigervnc", "vncdotool"), default="vncdotool")
    p.add_argument("--display", help="X display for xtigervncviewer")
    p.add_argument("--seconds", type=float, default=4.0, help="console time")
    # NFC
    p.add_argument("--ssl", action="store_true", help="nbdssl / nfcssl: NFC inside TLS #2")
    p.add_argument("--write", action="store_true", help="upload / disk write instead of a read")
    p.add_argument("--bytes", type=int, default=1 << 20)
    p.add_argument("--io-size", type=int, default=262144)
    p.add_argument("--chunk", type=int, default=nfc.MAX_XFER)
    p.add_argument("--gap", type=float, default=0.0, help="seconds before each client NFC message")
    p.add_argument("--direct", action="store_true", help="VDDK with a direct-ESXi ticket (PROXY nfc)")
    p.add_argument("--service", help="photon PROXY service")
    p.add_argument("--path", help="datastore path of the disk / file (default: drawn)")
    p.add_argument("--suffix", default=".iso", help="file suffix for nfclib / photon transfers")
    p.add_argument("--nfc-version", type=int, default=nfc.ESXI8_NFC_VERSION)
    # SOAP
    p.add_argument("--soap-kind", choices=tuple(soapsession.KINDS))
    p.add_argument("--calls", type=int, default=8, help="at most this many SOAP calls")
    # NONE
    p.add_argument("--attempts", type=int, default=3)
    p.add_argument("--per-connection", action="store_true", help="brute force: one connection per attempt")
    p.add_argument("--password-last", action="store_true", help="brute force: the last password is right")
    p.add_argument("--silent-wait", type=float, default=1.5, help="seconds to wait for an answer")
    p.add_argument("--probe", choices=tuple(PROBES), default="openvas")
    p.add_argument("--hangup-after", choices=("banner", "tls", "user"), default="banner")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    s = Session(args)
    error = None
    started = time.time()
    try:
        run(s)
    except Exception as exc:                  # recorded in the result: the harness decides
        error = f"{type(exc).__name__}: {exc}"
        s.abort(error)
        if not args.result:
            traceback.print_exc()
    result = {"persona": args.persona, "feature": FEATURE.get(args.persona, "NONE"), "seed": args.seed,
              "argv": sys.argv[1:] if argv is None else list(argv), "started": round(started, 6),
              "ended": round(time.time(), 6), "error": error, "connections": s.connections}
    text = json.dumps(result, indent=1)
    if args.result:
        with open(args.result, "w") as handle:
            handle.write(text + "\n")
    else:
        print(text)
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
