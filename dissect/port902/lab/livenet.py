"""Network plumbing of the live lab: namespaces, veth pairs, a router, impairments, tcpdump.

Why: the live lab (``live.py``) needs traffic that went through the kernel's real TCP stack
(congestion control, delayed ACKs, retransmissions, segmentation offload) between real
processes, under controlled network conditions, captured by tcpdump as an operator would.

Topology of one *lane* (all addresses exist only inside the lane's namespaces)::

    [client ns] c0 ==veth== r0 [router ns] r1 ==veth== s0 [server ns]
     10.90.A.2/24          10.90.A.1   10.90.B.1          10.90.B.2/24

Impairments are applied in the router's FORWARD path, so both end hosts see a real network:

* **netem** (``tc qdisc … netem delay/jitter/loss/rate``) when the kernel has ``sch_netem``;
* otherwise (``probe_netem()`` is False — the case on kernels built without it) the same knobs
  come from parts that exist: **rate** from ``tc tbf`` on the router's egress interfaces,
  **loss** from ``iptables -m statistic --mode random … -j DROP``, **delay and jitter** from
  ``Delayer``, an NFQUEUE program (raw nfnetlink, no extra library) that holds each forwarded
  packet for ``delay ± jitter`` and releases it in order (jitter without reordering, like a
  queue). What was used is returned by ``Lane.impair`` and goes into the capture's labels.
* **MTU** on all four veth ends, optional **MSS clamp** (iptables TCPMSS in the router), and
  segmentation **offload** on or off on the client interface (``ethtool -K``): with it on,
  tcpdump on the client sees TSO/GRO super-frames, as on a real host capture.

Everything a lane starts is tracked; ``Lane.close`` kills those processes by their own process
group and deletes the namespaces, also after a failure.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time

NLM_F_REQUEST, NLM_F_ACK = 1, 4
NETLINK_NETFILTER = 12
NFQ_MSG_PACKET, NFQ_MSG_VERDICT, NFQ_MSG_CONFIG = 0x300, 0x301, 0x302
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_COPY_META, NFQA_CFG_F_FAIL_OPEN = 1, 1, 1
NF_ACCEPT = 1
QUEUES = {"c2s": 1, "s2c": 2}


def run(*cmd: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command (inside namespace ``ns``); raise with its stderr when it fails."""
    argv = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def probe_netem() -> bool:
    """Whether ``tc qdisc … netem`` works here (tried in a scratch namespace)."""
    ns = f"d9probe{os.getpid()}"
    try:
        run("ip", "netns", "add", ns)
        run("ip", "link", "add", "p0", "type", "veth", "peer", "name", "p1", ns=ns)
        return run("tc", "qdisc", "add", "dev", "p0", "root", "netem", "delay", "1ms", ns=ns, check=False).returncode == 0
    except (RuntimeError, FileNotFoundError):
        return False
    finally:
        run("ip", "netns", "del", ns, check=False)


def can_create_namespaces() -> tuple[bool, str]:
    """(True, "") when namespaces and veth pairs can be made here, else (False, why)."""
    ns = f"d9check{os.getpid()}"
    try:
        run("ip", "netns", "add", ns)
        run("ip", "link", "add", "k0", "type", "veth", "peer", "name", "k1", ns=ns)
        return True, ""
    except FileNotFoundError as exc:
        return False, f"iproute2 missing: {exc}"
    except RuntimeError as exc:
        return False, f"cannot create network namespaces / veth pairs: {exc}"
    finally:
        if subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.find(ns) >= 0:
            run("ip", "netns", "del", ns, check=False)


# -- the NFQUEUE delayer --------------------------------------------------------------------------

def _attr(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _message(kind: int, queue: int, attrs: bytes, flags: int, seq: int) -> bytes:
    body = struct.pack("!BBH", socket.AF_UNSPEC, 0, queue) + attrs
    return struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | flags, seq, 0) + body


class Delayer:
    """Holds forwarded packets for ``delay_s`` ± ``jitter_s`` per direction (NFQUEUE 1 and 2).

    Release times never go backwards within a direction, so jitter spreads packets out without
    reordering them. Queues fail open (a full queue passes packets instead of dropping them).
    """

    def __init__(self, delay_s: float, jitter_s: float, seed: int, maxlen: int = 20000):
        self.delay, self.jitter = delay_s, jitter_s
        self.rng = random.Random(seed)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)            # SO_RCVBUFFORCE
        self.sock.bind((0, 0))
        self.seq = 0
        self.held: list[tuple[float, int, int, int]] = []
        self.last = {q: 0.0 for q in QUEUES.values()}
        self.count = 0
        for queue in QUEUES.values():
            self._config(queue, _attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)))
            self._config(queue, _attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
                         + _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen))
                         + _attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))
                         + _attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)))

    def _config(self, queue: int, attrs: bytes) -> None:
        self.seq += 1
        self.sock.send(_message(NFQ_MSG_CONFIG, queue, attrs, NLM_F_ACK, self.seq))
        reply = self.sock.recv(65536)
        kind = struct.unpack_from("=H", reply, 4)[0]
        if kind == 2 and struct.unpack_from("=i", reply, 16)[0] != 0:           # NLMSG_ERROR
            raise OSError(-struct.unpack_from("=i", reply, 16)[0], f"NFQUEUE config of queue {queue} refused")

    def _verdict(self, queue: int, packet_id: int) -> None:
        self.seq += 1
        self.sock.send(_message(NFQ_MSG_VERDICT, queue, _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT,
                                                                                               packet_id)), 0, self.seq))

    def _receive(self, data: bytes, now: float) -> None:
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if length < 16:
                break
            if kind == NFQ_MSG_PACKET:
                queue = struct.unpack_from("!H", data, offset + 18)[0]
                pos = offset + 20
                while pos + 4 <= offset + length:
                    alen, atype = struct.unpack_from("=HH", data, pos)
                    if alen < 4:
                        break
                    if atype & 0x7FFF == NFQA_PACKET_HDR:
                        packet_id = struct.unpack_from("!I", data, pos + 4)[0]
                        wait = max(0.0, self.delay + self.rng.uniform(-self.jitter, self.jitter))
                        release = max(now + wait, self.last.get(queue, 0.0))
                        self.last[queue] = release
                        heapq.heappush(self.held, (release, self.count, queue, packet_id))
                        self.count += 1
                    pos += (alen + 3) & ~3
            offset += (length + 3) & ~3

    def serve(self, stop_after: float | None = None) -> None:
        """Forward packets until SIGTERM (or ``stop_after`` seconds)."""
        ends = time.monotonic() + stop_after if stop_after else None
        running = [True]
        signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
        while running[0] and (ends is None or time.monotonic() < ends):
            now = time.monotonic()
            timeout = 0.5 if not self.held else max(0.0, min(0.5, self.held[0][0] - now))
            try:
                ready, _, _ = select.select([self.sock], [], [], timeout)
            except InterruptedError:
                continue
            if ready:
                self._receive(self.sock.recv(1 << 20), time.monotonic())
            now = time.monotonic()
            while self.held and self.held[0][0] <= now:
                _, _, queue, packet_id = heapq.heappop(self.held)
                self._verdict(queue, packet_id)
        for _, _, queue, packet_id in self.held:                               # let nothing hang
            self._verdict(queue, packet_id)


# -- a lane ----------------------------------------------------------------------------------------

class Lane:
    """Client, router and server namespaces joined by two veth pairs (see the module docstring)."""

    def __init__(self, name: str, client_net: int = 10, server_net: int = 11):
        self.name = name
        self.client_ns, self.router_ns, self.server_ns = f"{name}-c", f"{name}-r", f"{name}-s"
        self.client_ip, self.server_ip = f"10.90.{client_net}.2", f"10.90.{server_net}.2"
        self.nets = (client_net, server_net)
        self.procs: list[subprocess.Popen] = []
        self.created: list[str] = []
        self.impairment: dict = {}

    # namespaces ---------------------------------------------------------------------------------

    def create(self) -> "Lane":
        for ns in (self.client_ns, self.router_ns, self.server_ns):
            run("ip", "netns", "add", ns)
            self.created.append(ns)
            run("ip", "link", "set", "lo", "up", ns=ns)
        run("ip", "link", "add", "c0", "type", "veth", "peer", "name", "r0", ns=self.router_ns)
        run("ip", "link", "add", "r1", "type", "veth", "peer", "name", "s0", ns=self.router_ns)
        run("ip", "link", "set", "c0", "netns", self.client_ns, ns=self.router_ns)
        run("ip", "link", "set", "s0", "netns", self.server_ns, ns=self.router_ns)
        a, b = self.nets
        for ns, dev, addr in ((self.client_ns, "c0", f"10.90.{a}.2/24"), (self.router_ns, "r0", f"10.90.{a}.1/24"),
                              (self.router_ns, "r1", f"10.90.{b}.1/24"), (self.server_ns, "s0", f"10.90.{b}.2/24")):
            run("ip", "addr", "add", addr, "dev", dev, ns=ns)
            run("ip", "link", "set", dev, "up", ns=ns)
        run("ip", "route", "add", "default", "via", f"10.90.{a}.1", ns=self.client_ns)
        run("ip", "route", "add", "default", "via", f"10.90.{b}.1", ns=self.server_ns)
        run("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=self.router_ns)
        return self

    def impair(self, *, rtt_ms: float = 0.0, jitter_ms: float = 0.0, loss: float = 0.0, rate_mbit: float | None = None,
               mtu: int = 1500, mss: int | None = None, offload: bool = True, netem: bool = False,
               seed: int = 0) -> dict:
        """(Re)apply network conditions to the router and the veths; returns what was used.

        ``rtt_ms`` is added to the round trip (half each way), ``jitter_ms`` spreads each
        direction's delay, ``loss`` is the drop probability per forwarded packet and direction.
        """
        self.clear_impairment()
        for ns, dev in ((self.client_ns, "c0"), (self.router_ns, "r0"), (self.router_ns, "r1"), (self.server_ns, "s0")):
            run("ip", "link", "set", dev, "mtu", str(mtu), ns=ns)
        state = "on" if offload else "off"
        run("ethtool", "-K", "c0", "tso", state, "gso", state, "gro", state, ns=self.client_ns, check=False)
        delay_ms = rtt_ms / 2                             # per direction
        used = {"rtt_ms": rtt_ms, "jitter_ms": jitter_ms, "loss_rate": loss, "rate_mbit": rate_mbit, "mtu": mtu,
                "mss_clamp": mss, "offload": offload, "delay_by": None, "loss_by": None, "rate_by": None}
        if netem:
            for dev in ("r0", "r1"):
                spec = ["netem"]
                if delay_ms:
                    spec += ["delay", f"{delay_ms}ms", f"{jitter_ms}ms"]
                if loss:
                    spec += ["loss", f"{100 * loss:.3f}%"]
                if rate_mbit:
                    spec += ["rate", f"{rate_mbit}mbit"]
                run("tc", "qdisc", "replace", "dev", dev, "root", *spec, ns=self.router_ns)
            used.update(delay_by="netem" if delay_ms else None, loss_by="netem" if loss else None,
                        rate_by="netem" if rate_mbit else None)
        else:
            if rate_mbit:
                burst = max(16000, int(rate_mbit * 1e6 / 8 / 100))          # 10 ms worth of bytes
                for dev in ("r0", "r1"):
                    run("tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{rate_mbit}mbit",
                        "burst", str(burst), "latency", "200ms", ns=self.router_ns)
                used["rate_by"] = "tbf"
            if loss:
                for dev in ("r0", "r1"):
                    run("iptables", "-A", "FORWARD", "-i", dev, "-m", "statistic", "--mode", "random",
                        "--probability", f"{loss:.5f}", "-j", "DROP", ns=self.router_ns)
                used["loss_by"] = "iptables-statistic"
            if delay_ms:
                run("iptables", "-A", "FORWARD", "-i", "r0", "-j", "NFQUEUE", "--queue-num", str(QUEUES["c2s"]),
                    ns=self.router_ns)
                run("iptables", "-A", "FORWARD", "-i", "r1", "-j", "NFQUEUE", "--queue-num", str(QUEUES["s2c"]),
                    ns=self.router_ns)
                self.delayer = self.spawn(self.router_ns, [sys.executable, "-m", "dissect.port902.lab.livenet",
                                                           "delay", "--delay-ms", str(delay_ms),
                                                           "--jitter-ms", str(jitter_ms), "--seed", str(seed)],
                                          stdout=subprocess.DEVNULL)
                time.sleep(0.15)                       # bound before the first packet needs it
                if self.delayer.poll() is not None:
                    raise RuntimeError("NFQUEUE delayer did not start")
                used["delay_by"] = "nfqueue-delayer"
        if mss:
            run("iptables", "-t", "mangle", "-A", "FORWARD", "-p", "tcp", "--tcp-flags", "SYN,RST", "SYN",
                "-j", "TCPMSS", "--set-mss", str(mss), ns=self.router_ns)
        self.impairment = used
        return used

    def clear_impairment(self) -> None:
        delayer = getattr(self, "delayer", None)
        if delayer is not None:
            self.stop(delayer)
            self.delayer = None
        for dev in ("r0", "r1"):
            run("tc", "qdisc", "del", "dev", dev, "root", ns=self.router_ns, check=False)
        run("iptables", "-F", "FORWARD", ns=self.router_ns, check=False)
        run("iptables", "-t", "mangle", "-F", "FORWARD", ns=self.router_ns, check=False)

    # processes ----------------------------------------------------------------------------------

    def spawn(self, ns: str, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start ``argv`` inside ``ns`` in a process group of its own (so it can be ended alone)."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 3.0) -> int | None:
        """End one started process (its own group) and reap it."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
                proc.wait(wait)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    @staticmethod
    def release(proc: subprocess.Popen) -> None:
        """Close the pipes of an ended process."""
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def close(self) -> None:
        """Kill everything this lane started and delete its namespaces (idempotent)."""
        for proc in reversed(self.procs):
            try:
                self.stop(proc, wait=2.0)
            except OSError:
                pass
            self.release(proc)
        self.procs.clear()
        for ns in reversed(self.created):
            run("ip", "netns", "del", ns, check=False)
        self.created.clear()

    def __enter__(self) -> "Lane":
        return self.create()

    def __exit__(self, *exc) -> None:
        self.close()


class Tcpdump:
    """tcpdump on one interface of a lane, writing a pcap; ``start`` returns once it listens."""

    def __init__(self, lane: Lane, ns: str, iface: str, path: str, snaplen: int = 262144, link: str | None = None,
                 bpf: str = "tcp"):
        self.lane, self.path = lane, path
        argv = ["tcpdump", "-i", iface, "-s", str(snaplen), "-w", path, "-U", "--immediate-mode", "-n", "-B", "32768"]
        if link:
            argv += ["-y", link]
        self.argv = argv + [bpf]
        self.ns = ns
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None
        self.stats = ""

    def start(self, timeout: float = 5.0) -> float:
        self.proc = self.lane.spawn(self.ns, self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + timeout
        said = b""
        fd = self.proc.stderr.fileno()
        while time.time() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 4096)              # unbuffered: the pipe may hold several lines
                said += chunk
                if b"listening on" in said:
                    self.started_at = time.time()
                    return self.started_at
                if not chunk:
                    break
        raise RuntimeError(f"tcpdump did not start: {said.decode(errors='replace').strip()}")

    def stop(self) -> str:
        """SIGINT (flushes the file), then its packet counters from stderr."""
        time.sleep(0.05)
        Lane.stop(self.proc, signal.SIGINT, wait=5.0)
        self.stats = self.proc.stderr.read().decode(errors="replace").strip()
        self.proc.stderr.close()
        return self.stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dissect.port902.lab.livenet")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("delay", help="run the NFQUEUE delayer (inside a router namespace)")
    d.add_argument("--delay-ms", type=float, required=True, help="one-way delay added per direction")
    d.add_argument("--jitter-ms", type=float, default=0.0)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--seconds", type=float, help="stop after this long (default: until SIGTERM)")
    sub.add_parser("probe", help="print whether netem and namespaces work here")
    args = p.parse_args(argv)
    if args.command == "probe":
        ok, why = can_create_namespaces()
        print(f"namespaces: {'yes' if ok else 'no: ' + why}\nnetem: {'yes' if probe_netem() else 'no'}")
        return 0
    Delayer(args.delay_ms / 1000, args.jitter_ms / 1000, args.seed).serve(args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
