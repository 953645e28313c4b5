"""The one TCP layer (net/tcp.py): the same flags give the same outcome for an authd connection
(flows.FlowTable, reassembled, a real Session each) and a console connection (consolepath,
control packets only), and both tables share one mechanism: port reuse, cap with eviction of
the least recently active, capture-time expiry."""

import ipaddress

import pytest

from dissect.port902.analyzers import consolepath as cp
from dissect.port902.analyzers.session import Session
from dissect.port902.io.capture import IPPROTO_TCP, Packet
from dissect.port902.net import tcp
from dissect.port902.net.flows import FlowTable

SYN, ACK, FIN, RST, PSH = tcp.SYN, tcp.ACK, tcp.FIN, tcp.RST, tcp.PSH
C, S = ipaddress.ip_address("10.0.0.1").packed, ipaddress.ip_address("10.0.0.5").packed
DATA = b"\x16\x03\x01\x00\x05hello"  # starts like a TLS handshake record: the console reader keeps it too
C_ISN, S_ISN = 1000, 5000


def pkt(frame, ts, from_client, flags, payload=b"", sport=50000, port=443, isn=C_ISN):
    """A segment of the connection (client sport -> server port), sequence numbers consistent."""
    if from_client:
        src, dst, sp, dp = C, S, sport, port
        seq, ack = isn + (0 if flags & SYN else 1), S_ISN + 1 if flags & ACK else 0
    else:
        src, dst, sp, dp = S, C, port, sport
        seq, ack = S_ISN + (0 if flags & SYN else 1), isn + 1 if flags & ACK else 0
    return Packet(frame, ts, IPPROTO_TCP, src, dst, sp, dp, seq, ack, flags, 1000, payload, len(payload), 60)


def flows(packets, **kw):
    done = []
    t = FlowTable(Session, done.append, **kw)
    for p in packets:
        t.add(p)
    t.close()
    return t, done


def console(packets, **kw):
    t = cp.ConsolePathTracker(**kw)
    for p in packets:
        t.feed(p)
    t.close()
    return t, t.connections()


HANDSHAKE = [(True, SYN), (False, SYN | ACK), (True, ACK)]
# (flags per packet: from_client, flags, with data?) -> Zeek conn_state (its conn.log documentation)
CASES = {
    "S0": [(True, SYN)],
    "S0 retried": [(True, SYN), (True, SYN), (True, SYN)],
    "REJ": [(True, SYN), (False, RST | ACK)],
    "RSTOS0": [(True, SYN), (True, RST)],
    "SH": [(True, SYN), (True, FIN)],
    "S1": HANDSHAKE + [(True, ACK | PSH, DATA), (False, ACK | PSH, DATA)],
    "SF": HANDSHAKE + [(True, FIN | ACK), (False, FIN | ACK)],
    "S2": HANDSHAKE + [(True, FIN | ACK)],
    "S3": HANDSHAKE + [(False, FIN | ACK)],
    "RSTO": HANDSHAKE + [(True, ACK | PSH, DATA), (True, RST | ACK)],
    "RSTR": HANDSHAKE + [(False, RST | ACK)],
    "RSTRH": [(False, SYN | ACK), (False, RST)],
    "SHR": [(False, SYN | ACK), (False, FIN | ACK)],
    "OTH": [(True, ACK | PSH, DATA), (False, ACK | PSH, DATA)],
    "OTH reset": [(True, ACK | PSH, DATA), (False, RST | ACK)],
}
PLAIN = {"S0": "no_answer", "REJ": "refused", "RSTOS0": "no_answer", "SH": "no_answer", "S1": "established",
         "SF": "closed", "S2": "established", "S3": "established", "RSTO": "reset", "RSTR": "reset",
         "RSTRH": "reset", "SHR": "established", "OTH": "partial"}


def segments(spec):
    return [pkt(i, i * 0.01, c, f, *rest) for i, (c, f, *rest) in enumerate(spec, 1)]


@pytest.mark.parametrize("name", list(CASES))
def test_same_flags_same_state_for_authd_and_console_connections(name):
    expected = name.split()[0]
    assert expected in tcp.CONN_STATES
    _t, (conn,) = flows(segments(CASES[name]), watched_ports=frozenset({443}))
    _t2, (cconn,) = console(segments(CASES[name]))
    assert conn.conn_state == cconn.conn_state == expected
    assert conn.state == cconn.state == PLAIN[expected] == tcp.PLAIN_STATE[expected]
    assert cconn.state in tcp.STATES and (cconn.client_ip, cconn.server_port) == ("10.0.0.1", 443)
    assert cconn.syn_count == conn.orig.syn == sum(1 for c, f, *_ in CASES[name] if c and f & SYN)


def test_every_conn_state_has_one_plain_state_and_a_meaning():
    assert set(tcp.PLAIN_STATE) == set(tcp.CONN_STATES) == {n.split()[0] for n in CASES}
    assert set(tcp.PLAIN_STATE.values()) == set(tcp.STATES)


# -- the shared table ----------------------------------------------------------------------------


def both(packets, **kw):
    _t, a = flows(packets, watched_ports=frozenset({443}), **kw)
    _t2, b = console(packets, **kw)
    return sorted((c.start, c.state) for c in a), sorted((c.start, c.state) for c in b)


def test_port_reuse_new_isn_after_answer_is_a_new_connection():
    answered = [pkt(1, 0.0, True, SYN), pkt(2, 0.01, False, SYN | ACK), pkt(3, 0.02, True, ACK)]
    again = [pkt(4, 5.0, True, SYN, isn=C_ISN + 77_000), pkt(5, 5.01, False, RST | ACK, isn=C_ISN + 77_000)]
    a, b = both(answered + again)
    assert a == b == [(0.0, "established"), (5.0, "refused")]


def test_retransmitted_syn_stays_one_connection():
    # the SYN-ACK was lost on the way to the client: its SYN comes again, same ISN
    p = [pkt(1, 0.0, True, SYN), pkt(2, 0.01, False, SYN | ACK), pkt(3, 1.0, True, SYN), pkt(4, 1.01, False, SYN | ACK),
         pkt(5, 1.02, True, ACK)]
    a, b = both(p)
    assert a == b == [(0.0, "established")]
    # an unanswered attempt retried with a new ISN is the same attempt too
    a, b = both([pkt(1, 0.0, True, SYN), pkt(2, 3.0, True, SYN, isn=C_ISN + 9)])
    assert a == b == [(0.0, "no_answer")]


def test_after_close_the_tuple_opens_a_new_connection():
    first = segments(CASES["SF"])
    second = [pkt(10, 10.0, True, SYN, isn=C_ISN + 500)]
    a, b = both(first + second)
    assert a == b == [(0.01, "closed"), (10.0, "no_answer")]


@pytest.mark.parametrize("kind", ["flows", "console"])
def test_cap_evicts_the_least_recently_active(kind):
    p = [pkt(i + 1, float(i), True, SYN, sport=30000 + i) for i in range(10)]
    p.append(pkt(11, 10.0, True, SYN, sport=30000))  # the first attempt is retried: now the most recent
    p.append(pkt(12, 11.0, True, SYN, sport=40000))  # the eleventh connection
    if kind == "flows":
        done = []
        t = FlowTable(Session, done.append, watched_ports=frozenset({443}), max_live=10)
        for x in p:
            t.add(x)
        finished = [c.orig_port for c in done]
    else:
        t = cp.ConsolePathTracker(max_live=10)
        for x in p:
            t.feed(x)
        finished = [c.client_port for c in t.finished]
    assert finished == [30001] and t.evicted == 1 and t.live == 10 and len(t.table) == 20
    t.close()
    assert t.live == 0 and t.table == {}


@pytest.mark.parametrize("kind", ["flows", "console"])
def test_expiry_on_capture_time(kind):
    p = [pkt(1, 0.0, True, SYN), pkt(2, 0.0, True, SYN, sport=50001), pkt(3, 0.01, False, SYN | ACK, sport=50001),
         pkt(4, 0.02, True, ACK, sport=50001)]
    p.append(pkt(5, tcp.ATTEMPT_TIMEOUT_S + 31.0, True, SYN, sport=50002))  # later: the sweep runs
    if kind == "flows":
        done = []
        t = FlowTable(Session, done.append, watched_ports=frozenset({443}))
        for x in p:
            t.add(x)
        gone = [c.orig_port for c in done]
    else:
        t = cp.ConsolePathTracker()
        for x in p:
            t.feed(x)
        gone = [c.client_port for c in t.finished]
    # the unanswered attempt is done after ATTEMPT_TIMEOUT_S; the established one is not idle long enough
    assert gone == [50000] and t.expired == 1 and t.live == 2


def test_console_finished_beyond_the_cap_are_counted():
    t = cp.ConsolePathTracker(max_live=5, max_finished=7)
    for i in range(30):
        t.feed(pkt(2 * i + 1, float(i), True, SYN, sport=20000 + i))
        t.feed(pkt(2 * i + 2, float(i) + 0.01, False, RST | ACK, sport=20000 + i))
    t.close()
    assert len(t.connections()) == 7 and t.dropped == 23 and t.live == 0
    assert {c.state for c in t.connections()} == {"refused"}


# -- plain VNC consoles (analyzers/vnc) speak the same vocabulary ----------------------------------

RFB = b"RFB 003.008\n"
GREET = [(False, ACK | PSH, RFB), (True, ACK | PSH, RFB)]
VNC_CASES = {
    "S1": HANDSHAKE + GREET,
    "SF": HANDSHAKE + GREET + [(True, FIN | ACK), (False, FIN | ACK)],
    "S2": HANDSHAKE + GREET + [(True, FIN | ACK)],
    "S3": HANDSHAKE + GREET + [(False, FIN | ACK)],
    "RSTO": HANDSHAKE + GREET + [(True, RST | ACK)],
    "RSTR": HANDSHAKE + GREET + [(False, RST | ACK)],
    "OTH": GREET,
}


@pytest.mark.parametrize("name", list(VNC_CASES))
def test_vnc_sessions_get_the_state_an_authd_connection_gets(name):
    from types import SimpleNamespace

    from dissect.port902.analyzers.vnc import VncConsoles
    from dissect.port902.io.capture import Selection

    packets = [pkt(i, i * 0.01, c, f, *rest, port=5900) for i, (c, f, *rest) in enumerate(VNC_CASES[name], 1)]
    vnc = VncConsoles()
    vnc.select(Selection())
    for p in packets:
        vnc.packet(p)
    vnc.finish(SimpleNamespace(captures=[]))
    (session,) = vnc.sessions
    _t, (conn,) = flows(packets, watched_ports=frozenset({5900}))
    assert session.state == conn.state == tcp.PLAIN_STATE[name]
    assert (session.client, session.server) == ("10.0.0.1:50000", "10.0.0.5:5900")
