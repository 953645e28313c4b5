"""A real vmware-authd emulator: a TCP daemon that third-party clients can log into and use.

Run ``python -m dissect.port902.lab.server --listen 127.0.0.1:0 --ready-file F --log L``.
Unlike the capture generator (``scenarios``), this is a network server: real sockets, Python's
``ssl`` (OpenSSL) for every handshake, one thread per connection. Its ``--log`` (JSON lines, one
object per finished connection) is ground truth about what happened that does not depend on the
dissector.

Behaviour follows protocol.md:

* §2.1, §11.1.1 — the persona's banner, sent at once on accept (``authd.BANNERS``).
* §3.1, §3.2, §11.1.2–3 — SSL-required personas expect a ClientHello right after the banner
  (TLS #1 with the lab's ESXi default-style certificate, ``certs``); a plaintext line instead
  closes the connection (ESXi 8). Non-SSL personas talk in clear and answer a line before login
  with ``530 Please login with USER and PASS.``.
* §3.3, §3.5, §11.2 — ``USER`` → ``331 Password required for <u>.``, ``PASS`` → ``230 User <u>
  logged in.`` / ``530 Login incorrect.``, more attempts on the same connection allowed;
  ``SESSION`` (no reply), ``BANNER`` (the banner again), ``THUMBPRINT`` / ``THUMBPRINT_SHA2``
  (``200`` + the certificate's SHA-1 / SHA-256 thumbprint; a colon thumbprint argument to the
  SHA-2 form → ``501 Invalid arguments``).
* §4.2 — ``CONNECT <vmx> mks`` after login → ``200 Connect <vmx>``, TLS #1 abandoned without
  close_notify, a new TLS handshake on the raw stream, the client's 16-byte token, the console
  (``services.serve_console``: built-in RFB responder or relay to ``--vnc``).
* §5.3 — ``PROXY vpxa-nfc|nfc`` → ``200 Connect ha-nfc`` + cleartext NFC; ``PROXY
  vpxa-nfcssl|nfcssl`` → ``200 Connect ha-nfcssl`` + TLS #2 + NFC (``services.serve_nfc``).
* §6 (lab model) — ``CONNECT_ARGV <vmx> args…`` after login → ``200 Connect <vmx>``, no
  hand-off; an HTTP request inside TLS #1 → HTTP/1.1 SOAP responses (``services.serve_soap``).

Texts that no source gives are the lab's model and are named as such below (``MODEL_*``).
The log never holds passwords, tickets, session ids or client tokens: only command verbs, user
names of credential logins (``<ticket>`` for MKS-ticket logins), reply codes and outcomes.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import select
import signal
import socket
import ssl
import sys
import termios
import threading
import time

from . import services
from .authd import BANNERS, LOGIN_INCORRECT, PLEASE_LOGIN, line
from .certs import host_cert, thumbprint
from .personas import PERSONAS
from .rawtls import PeerClosed, PlainChannel, ProtocolViolation, TlsChannel, Wire, server_context
from .tlsbio import _pem_files

#: CLI persona -> lab persona key (banner per protocol.md §11.1.1)
PERSONA_KEYS = {"esxi8": "esxi8", "esxi6": "esxi6", "esxi55": "esxi55", "workstation": "ws902",
                "workstation912": "ws912", "legacy": "gsx-legacy"}
DEFAULT_CERT_NAME = "localhost.localdomain"        # CN of the ESXi default certificate (§8)
MODEL_USER_FIRST = "503 Login with USER first."    # code VMAD_USERFIRST (§3.4); text is the lab's model
MODEL_BAD_COMMAND = "500 Unknown command."         # VMAD_BADCOMMAND; text is the lab's model
MODEL_NO_SERVICE = "554 No such service."          # VMAD_NOSUCHSERVICE; text is the lab's model
MODEL_GOODBYE = "221 Goodbye."                     # VMAD_GOODBYE; text is the lab's model
BAD_ARGS = "501 Invalid arguments"                 # §3.3 (VDDK write-up)
NFC_SERVICES = {"vpxa-nfc": ("ha-nfc", False), "nfc": ("ha-nfc", False),
                "vpxa-nfcssl": ("ha-nfcssl", True), "nfcssl": ("ha-nfcssl", True)}
TICKET = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
VERB = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
MAX_LINES = 100_000


class Config:
    """Everything a connection handler needs, built once from the command line."""

    def __init__(self, args: argparse.Namespace):
        self.persona = args.persona
        lab = PERSONAS[PERSONA_KEYS[args.persona]]
        self.banner_id = args.banner or lab.banner_id
        self.banner = line(BANNERS[self.banner_id])
        self.ssl_required = "SSL Required" in BANNERS[self.banner_id]
        if args.cert:
            cert_file, key_file = args.cert, args.key or args.cert
            with open(cert_file, "rb") as handle:
                der = ssl.PEM_cert_to_DER_cert(handle.read().decode())
        else:
            cert = host_cert(args.cert_name)
            cert_file, key_file = _pem_files(cert)
            der = cert.der
        self.sha1, self.sha256 = thumbprint(der, "sha1"), thumbprint(der, "sha256")
        self.ctx = server_context(cert_file, key_file, args.tls_min, args.tls_max, args.tls13_tickets)
        self.users = dict(u.split(":", 1) for u in args.users.split(",") if ":" in u) if args.users else {}
        self.sessions = {s for s in (args.sessions or "").split(",") if s}
        self.any_session = args.any_session
        self.vnc = _hostport(args.vnc) if args.vnc else None
        self.nfc_root = args.nfc_root
        self.idle_timeout = args.idle_timeout


class Connection:
    """One client connection: banner, TLS #1 or clear dialogue, hand-off; writes its log record."""

    def __init__(self, cfg: Config, sock: socket.socket, peer, local):
        self.cfg, self.sock = cfg, sock
        self.wire = Wire(sock)
        self.rec = {
            "client_ip": peer[0], "client_port": peer[1], "server_ip": local[0], "server_port": local[1],
            "persona": cfg.persona, "banner_id": cfg.banner_id, "start": time.time(), "end": None,
            "tls": [], "pre_tls": None, "commands": [], "replies": [], "logins": [], "login_attempts": 0,
            "logins_failed": 0, "session": None, "feature": "NONE", "handoff": None, "handoff_target": None,
            "bytes": {"c2s": 0, "s2c": 0}, "end_reason": None, "detail": None,
        }
        self.user: str | None = None
        self.logged_in = False
        self.session_ok = False
        self.token: str | None = None
        self.shut_down = False                         # ended by Server.stop()

    # -- plumbing ---------------------------------------------------------------------------------

    def reply(self, ch, text: str) -> None:
        self.rec["replies"].append(int(text[:3]))
        ch.send(line(text))

    def _tls(self, number: int) -> TlsChannel:
        """Handshake number ``number`` on the raw stream (the client must send a ClientHello)."""
        entry = {"handshake": number, "version": None, "cipher": None, "error": None}
        self.rec["tls"].append(entry)
        try:
            self.wire.need(1)
        except PeerClosed:
            entry["error"] = "closed before ClientHello"
            raise
        if self.wire.buf[0] != 0x16:
            entry["error"] = "no ClientHello"
            raise ProtocolViolation(f"TLS #{number}: client sent {bytes(self.wire.buf[:8])!r} instead of a ClientHello")
        ch = TlsChannel(self.wire, self.cfg.ctx)
        try:
            ch.handshake()
        except ssl.SSLError as exc:
            entry["error"] = exc.reason or str(exc)
            raise
        except PeerClosed:
            entry["error"] = "closed during handshake"
            raise
        entry["version"], entry["cipher"] = ch.version, ch.cipher
        return ch

    def run(self) -> dict:
        rec = self.rec
        try:
            self.sock.settimeout(self.cfg.idle_timeout)
            self._run()
            rec["end_reason"] = rec["end_reason"] or "server_closed"
        except PeerClosed as exc:
            rec["end_reason"], rec["detail"] = "client_closed", str(exc)
        except (socket.timeout, TimeoutError):
            rec["end_reason"] = "idle_timeout"
        except ProtocolViolation as exc:
            rec["end_reason"], rec["detail"] = "violation", str(exc)
        except ssl.SSLError as exc:
            rec["end_reason"], rec["detail"] = "tls_error", exc.reason or str(exc)
        except OSError as exc:
            rec["end_reason"] = rec["end_reason"] or "socket_error"
            rec["detail"] = rec["detail"] or str(exc)
        except Exception as exc:                       # never let one client take the daemon down
            rec["end_reason"], rec["detail"] = "error", f"{type(exc).__name__}: {exc}"
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            rec["end"] = time.time()
            rec["bytes"] = {"c2s": self.wire.c2s, "s2c": self.wire.s2c}
        return rec

    def _run(self) -> None:
        cfg = self.cfg
        self.wire.send(cfg.banner)
        if not cfg.ssl_required:
            self.dialogue(PlainChannel(self.wire))
            return
        self.wire.need(1)
        if self.wire.buf[0] != 0x16:                   # plaintext instead of a ClientHello: close (§11.1.2)
            self._pre_tls_close()
            return
        self.dialogue(self._tls(1))

    def _pre_tls_close(self) -> None:
        self.sock.settimeout(0.2)                      # collect the probe line, so the close is a FIN
        try:
            while b"\n" not in self.wire.buf and len(self.wire.buf) < 4096:
                self.wire.recv_more()
        except (PeerClosed, OSError):
            pass
        first = bytes(self.wire.buf).split(b"\r\n")[0].split(b" ")[0].decode("latin-1")
        self.rec["pre_tls"] = {"bytes": len(self.wire.buf), "verb": first.upper() if VERB.match(first) else None}
        self.rec["end_reason"] = "pre_tls_plaintext"
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # -- authd dialogue (§3) ----------------------------------------------------------------------

    def dialogue(self, ch) -> None:
        rec = self.rec
        for _ in range(MAX_LINES):
            raw = ch.read_line()
            if services.is_http_request(raw):
                rec["commands"].append("HTTP")
                services.serve_soap(ch, raw, rec)      # sets feature SOAP once it answers an envelope
                return
            text = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            verb, _, arg = text.partition(" ")
            rec["commands"].append(verb.upper() if VERB.match(verb) else ("" if not verb else "<malformed>"))
            if self.command(ch, verb.upper(), arg) is False:
                return
        raise ProtocolViolation(f"more than {MAX_LINES} lines")

    def command(self, ch, verb: str, arg: str) -> bool | None:
        """Answer one line; ``False`` ends the dialogue (hand-off done or QUIT)."""
        cfg, rec = self.cfg, self.rec
        if verb == "USER":
            self.user, self.logged_in = arg, False
            self.reply(ch, f"331 Password required for {arg}.")
        elif verb == "PASS":
            if self.user is None:
                self.reply(ch, MODEL_USER_FIRST)
                return None
            user, self.user = self.user, None
            ticket = bool(TICKET.match(user)) and arg == user
            ok = ticket or (user in cfg.users and cfg.users[user] == arg)
            rec["login_attempts"] += 1
            rec["logins_failed"] += not ok
            rec["logins"].append({"user": "<ticket>" if TICKET.match(user) else user,
                                  "kind": "ticket" if ticket else "password",
                                  "outcome": "accepted" if ok else "rejected"})
            self.logged_in = ok
            self.reply(ch, f"230 User {user} logged in." if ok else LOGIN_INCORRECT)
        elif verb == "SESSION":                        # no reply of its own (§3.3)
            self.session_ok = cfg.any_session or arg.strip() in cfg.sessions
            rec["session"] = "accepted" if self.session_ok else "rejected"
        elif verb == "BANNER":
            rec["replies"].append(220)
            ch.send(cfg.banner)
        elif verb == "THUMBPRINT":
            if not arg.strip():
                self.reply(ch, BAD_ARGS)
                return None
            self.token = arg.strip()
            self.reply(ch, f"200 {cfg.sha1}")
        elif verb == "THUMBPRINT_SHA2":
            if not arg.strip() or ":" in arg:
                self.reply(ch, BAD_ARGS)
                return None
            self.token = arg.strip()
            self.reply(ch, f"200 {cfg.sha256}")
        elif verb == "CONNECT":
            return self._connect(ch, arg)
        elif verb == "CONNECT_ARGV":
            parts = arg.split()
            if not self.logged_in:
                self.reply(ch, PLEASE_LOGIN)
            elif not parts:
                self.reply(ch, BAD_ARGS)
            else:
                rec["feature"] = "VMXARGS"
                self.reply(ch, f"200 Connect {parts[0]}")
        elif verb == "PROXY":
            return self._proxy(ch, arg.strip())
        elif verb == "QUIT":
            self.reply(ch, MODEL_GOODBYE)
            rec["end_reason"] = "quit"
            return False
        elif not (self.logged_in or self.session_ok):
            self.reply(ch, PLEASE_LOGIN)               # a line before login (§3.1, §11.1.2)
        else:
            self.reply(ch, MODEL_BAD_COMMAND)
        return None

    def _connect(self, ch, arg: str) -> bool | None:
        vmx, _, kind = arg.rstrip().rpartition(" ")
        if not self.logged_in:
            self.reply(ch, PLEASE_LOGIN)
            return None
        if kind != "mks" or not vmx:
            self.reply(ch, BAD_ARGS)
            return None
        self.reply(ch, f"200 Connect {vmx}")
        rec = self.rec
        rec["handoff"], rec["handoff_target"] = "mks", "vmx"
        console = self._tls(2) if self.cfg.ssl_required else ch
        if self.cfg.ssl_required or self.token:
            token = console.take(16).decode("latin-1")
            if self.token and token != self.token[:16]:
                rec["end_reason"], rec["detail"] = "token_mismatch", "first TLS #2 bytes are not the THUMBPRINT token"
                return False
        rec["feature"] = "MKS"
        services.serve_console(console, self.cfg.vnc, os.path.splitext(os.path.basename(vmx))[0], rec,
                               self.cfg.idle_timeout)
        return False

    def _proxy(self, ch, service: str) -> bool | None:
        if not (self.session_ok or self.logged_in):
            self.reply(ch, PLEASE_LOGIN)
            return None
        if service not in NFC_SERVICES:
            self.reply(ch, MODEL_NO_SERVICE)
            return None
        target, tls2 = NFC_SERVICES[service]
        self.reply(ch, f"200 Connect {target}")
        rec = self.rec
        rec["feature"], rec["handoff"], rec["handoff_target"] = "NFC", "nfcssl" if tls2 else "nfc", target
        services.serve_nfc(self._tls(2) if tls2 else PlainChannel(self.wire), self.cfg.nfc_root, rec)
        return False


class Server:
    """Listener, connection threads, the JSONL log; ``stop()`` ends everything cleanly."""

    def __init__(self, cfg: Config, listen: tuple[str, int], log_path: str | None, max_connections: int,
                 exit_after: int | None = None, verbose: bool = False):
        self.cfg, self.verbose = cfg, verbose
        family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(listen)
        self.sock.listen(128)
        self.slots = threading.BoundedSemaphore(max_connections)
        self.exit_after = exit_after
        self.log = open(log_path, "a", encoding="utf-8") if log_path else None
        self.lock = threading.Lock()
        self.live: dict[int, Connection] = {}
        self.threads: list[threading.Thread] = []
        self.accepted = 0
        self.stopping = threading.Event()

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def write(self, rec: dict) -> None:
        with self.lock:
            if self.log:
                self.log.write(json.dumps(rec, sort_keys=True) + "\n")
                self.log.flush()
            if self.verbose:
                print(f"{rec['client_ip']}:{rec['client_port']} {rec['feature']} {rec['end_reason']} "
                      f"{' '.join(rec['commands'])}", file=sys.stderr, flush=True)

    def _handle(self, conn: Connection) -> None:
        try:
            rec = conn.run()
            if conn.shut_down and rec["end_reason"] in ("client_closed", "socket_error"):
                rec["end_reason"], rec["detail"] = "shutdown", None
            self.write(rec)
        finally:
            with self.lock:
                self.live.pop(id(conn), None)
            self.slots.release()

    def serve(self) -> None:
        while not self.stopping.is_set():
            self.slots.acquire()
            try:
                sock, peer = self.sock.accept()
            except OSError:
                self.slots.release()
                break
            conn = Connection(self.cfg, sock, peer, sock.getsockname())
            with self.lock:
                self.live[id(conn)] = conn
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
            thread.start()
            self.accepted += 1
            if self.exit_after and self.accepted >= self.exit_after:
                for t in self.threads:
                    t.join()
                break

    def stop(self) -> None:
        """Stop accepting, end live connections (their records say ``shutdown``); idempotent."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            live = list(self.live.values())
        for conn in live:
            queued = _close_queued(conn.sock)
            if queued is not None:                     # None: the socket is already gone
                conn.shut_down = not queued
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        for thread in list(self.threads):
            thread.join(timeout=5)
        if self.log:
            self.log.close()


def _close_queued(sock: socket.socket) -> bool | None:
    """The client's FIN has arrived and nothing is left unread: it closed before we stopped.

    Asked without reading: a peek from this (signal-handler) thread could race the connection
    thread for the last bytes and then block for the whole idle timeout."""
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLRDHUP)
        events = poller.poll(0)
        if not events or not events[0][1] & select.POLLRDHUP:
            return False
        pending = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return int.from_bytes(pending, sys.byteorder) == 0
    except (OSError, ValueError):
        return None


def _hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT``."""
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or [v6]:PORT, got {text!r}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return host, port


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dissect.port902.lab.server",
                                description="Lab vmware-authd (port 902) server; see the module docstring.")
    p.add_argument("--listen", type=_hostport, default=("127.0.0.1", 902), help="HOST:PORT or [v6]:PORT (0 = any)")
    p.add_argument("--persona", choices=sorted(PERSONA_KEYS), default="esxi8")
    p.add_argument("--banner", choices=sorted(BANNERS), help="override the persona's banner (B1..B10)")
    p.add_argument("--tls-min", choices=("1.0", "1.1", "1.2", "1.3"), default="1.2")
    p.add_argument("--tls-max", choices=("1.2", "1.3"), default="1.3")
    p.add_argument("--tls13-tickets", type=int, default=2, metavar="N",
                   help="TLS 1.3 session tickets sent after each handshake (OpenSSL default 2; 0 = none)")
    p.add_argument("--users", default="", help="credential logins, user:password[,user:password]")
    p.add_argument("--sessions", default="", help="NFC service-ticket session ids accepted by SESSION")
    p.add_argument("--any-session", action="store_true", help="accept every SESSION id")
    p.add_argument("--vnc", help="relay MKS consoles to this VNC server (HOST:PORT)")
    p.add_argument("--nfc-root", help="directory of files served / stored by the NFC service")
    p.add_argument("--cert", help="PEM certificate (default: the lab's ESXi default-style certificate)")
    p.add_argument("--key", help="PEM private key (default: --cert)")
    p.add_argument("--cert-name", default=DEFAULT_CERT_NAME, help="CN of the generated default certificate")
    p.add_argument("--log", help="JSONL ground-truth log, one object per finished connection")
    p.add_argument("--ready-file", help="written with the bound HOST:PORT once listening")
    p.add_argument("--max-connections", type=int, default=256, help="connections served at once (more wait)")
    p.add_argument("--exit-after", type=int, help="exit after this many connections have finished")
    p.add_argument("--idle-timeout", type=float, default=120.0, help="seconds without client bytes before closing")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per connection on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.max_connections < 1:
        parser().error("--max-connections must be at least 1")
    try:
        cfg = Config(args)
        server = Server(cfg, args.listen, args.log, args.max_connections, args.exit_after, args.verbose)
    except (OSError, ValueError, ssl.SSLError) as exc:
        print(f"server: {exc}", file=sys.stderr)
        return 2
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(server.address + "\n")
        os.replace(tmp, args.ready_file)

    def _stop(signum, frame):
        server.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if args.verbose:
        print(f"listening on {server.address} as {cfg.persona} ({cfg.banner_id})", file=sys.stderr, flush=True)
    serve = threading.Thread(target=server.serve, daemon=True)
    serve.start()
    while serve.is_alive():
        serve.join(0.2)
    server.stop()
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
