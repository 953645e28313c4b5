"""Session features -> feature label, confidence and reasons (stage 5).

Labels: MKS (console), NFC (file copy), SOAP, VMXARGS; NONE when no feature was
used (never connected, banner probe, login attempts only); UNKNOWN for
established traffic the rules cannot place.

The rules are explicit and ordered by the strength of their evidence
(design.md §1): what is readable in clear decides outright (an authd dialogue,
cleartext NFC); then the *structure* of the encrypted stream (a second
handshake, the length of the last authd command before it, the size of the
first message after it: MKS's 16-byte token versus NFC's 264-byte messages);
only then volume and timing.  Each piece of evidence votes with a weight and
says why in words; the confidence is the winning share of the votes, lowered
when the capture began mid-stream.  Thresholds sit between protocol-given sizes
(a 16-byte token, a 264-byte NFC block, a ``PROXY`` line of ~20 bytes versus a
``CONNECT /vmfs/volumes/<uuid>/<vm>/<vm>.vmx mks`` line of 60+), not at values
fitted to a particular capture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import dialogue as dlg
from .features import FEATURES, IDLE_S, View, compute

LABELS = ("MKS", "NFC", "SOAP", "VMXARGS", "NONE", "UNKNOWN")
TOKEN_MAX = 32  # the MKS token is 16 bytes; CBC padding and record splitting blur the estimate up to ~32
NFC_MESSAGE_MIN = 200  # a classic NFC message is 264 bytes
LONG_COMMAND = 45  # 'CONNECT /vmfs/volumes/... mks' and '200 Connect /vmfs/...' are longer
SHORT_COMMAND = 35  # 'PROXY vpxa-nfcssl' / '200 Connect ha-nfcssl' are shorter
GREETING_ECHO = 120  # VDDK's BANNER command is answered by the 135-170 byte greeting
SOAP_SIZED = 250  # an HTTP response or request inside TLS #1 after a login
SOAP_REQUEST_MIN = 450  # an HTTP request line + headers + a vim25 envelope: NFC requests stay below 400
LOGIN_SIZED = 80  # USER/PASS lines with a ticket and their 331/230/530 replies stay under this
NFC_REQUEST_MAX = 400  # NFC requests: 60-byte AIO IO, 264-byte classic messages (+ a path)
MIN_SHAPE_MSGS = 8  # fewer client messages than this say little about volume and timing
BULK = 8192  # one message this large is file data or a screen, not a command
MIDSTREAM_LOGIN_SIZED = 100  # login-sized when the cipher (hence the record overhead) is unknown


@dataclass
class Verdict:
    label: str
    confidence: float
    reasons: list[str] = field(default_factory=list)
    dialogue: list[dict] = field(default_factory=list)  # inferred TLS #1 dialogue, record by record
    logins: list[str] = field(default_factory=list)  # inferred outcome per PASS inside TLS
    judged_as: str = "clear"  # clear | tls1 (decoded) | handoff (shape after a hand-off) | midstream
    inputs: dict | None = None  # the features the deciding rule read (features_frame shows these)
    decoded_as: str | None = None  # the winning dialogue template
    decoded_margin: float | None = None  # log10 likelihood ratio against the runner-up label
    decoded_dialogue: str | None = None  # the winning template's reading of the records, compact


@dataclass
class _Votes:
    votes: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, list[tuple[float, str]]] = field(default_factory=dict)

    def add(self, label: str, weight: float, reason: str) -> None:
        self.votes[label] = self.votes.get(label, 0.0) + weight
        self.reasons.setdefault(label, []).append((weight, reason))

    def verdict(self, ceiling: float = 0.99, floor_label: str = "UNKNOWN") -> Verdict:
        if not self.votes:
            return Verdict(floor_label, 0.3, ["no distinguishing evidence in what stays visible"])
        ranked = sorted(self.votes.items(), key=lambda kv: kv[1], reverse=True)
        label, top = ranked[0]
        total = sum(self.votes.values())
        confidence = min(ceiling, 0.5 + 0.5 * (top - (ranked[1][1] if len(ranked) > 1 else 0.0)) / total)
        if len(ranked) == 1:
            confidence = min(ceiling, 0.6 + 0.1 * top)
        reasons = [r for _, r in sorted(self.reasons[label], key=lambda wr: -wr[0])]
        for other, _ in ranked[1:]:
            reasons += [f"against: {r}" for _, r in sorted(self.reasons[other], key=lambda wr: -wr[0])]
        return Verdict(label, round(confidence, 3), reasons)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def classify(rec, feats: dict | None = None) -> Verdict:
    """Classify one SessionRecord; ``feats`` (from features.compute) is computed when not given.
    The verdict carries the feature values its deciding rule read (``inputs``)."""
    if feats is None:
        verdict = _no_conversation(rec)
        if verdict is not None:  # decided before any feature is read (half of a SYN flood's cost was here)
            return verdict
        v = View.of(rec)
        feats = {name: fn(v) for name, fn in FEATURES.items()}
    verdict = _classify(rec, feats)
    if verdict.inputs is None:
        verdict.inputs = feats
    return verdict


def _no_conversation(rec) -> Verdict | None:
    """Rule 1, never a conversation: decided from the TCP outcome alone (no feature read)."""
    if rec.state == "no_answer":
        return Verdict("NONE", 1.0, [f"no TCP connection: {rec.syn_count} SYN(s) unanswered"])
    if rec.state == "refused":
        return Verdict("NONE", 1.0, [f"connection refused: RST in answer to the SYN (frame {rec.rst_frame})"])
    if rec.bytes == (0, 0):
        return Verdict("NONE", 0.95, ["TCP connection without any payload"])
    return None


def _classify(rec, f: dict) -> Verdict:

    # -- 1. never a conversation ----------------------------------------------------------------
    verdict = _no_conversation(rec)
    if verdict is not None:
        return verdict

    # -- 2. what is readable in clear -------------------------------------------------------------
    lines = rec.dialogue
    cmd_frame = {ln.verb: ln.frame for ln in lines if ln.from_client and ln.verb}
    if rec.connect_kind == "mks":
        return Verdict("MKS", 0.99, [f"client asked for a console in clear: 'CONNECT <vmx> mks' (frame {cmd_frame.get('CONNECT')})"])
    if rec.connect_kind == "proxy":
        return Verdict("NFC", 0.99, [f"client asked for a service in clear: 'PROXY {rec.connect_target}' (frame {cmd_frame.get('PROXY')})"])
    if rec.connect_kind == "vmxargs":
        return Verdict("VMXARGS", 0.97, ["client sent a CONNECT_*ARGV command in clear"])
    http = [ln for ln in lines if ln.from_client and ln.text.split(" ", 1)[0] in ("POST", "GET")]
    soap = [ln for ln in http if ln.text.startswith("POST") or "/sdk" in ln.text or "soap" in ln.text.lower()]
    if soap:
        return Verdict("SOAP", 0.95, [f"SOAP/HTTP request in clear: '{soap[0].text[:60]}' (frame {soap[0].frame})"])
    if http and not rec.handshakes and rec.login_attempts == 0:
        return Verdict("NONE", 0.9, [f"HTTP probe in clear: '{http[0].text[:40]}' (frame {http[0].frame}), "
                                     "answered by the daemon, no login: a scanner"])
    if f["nfc_messages"]:
        types = sorted(set(rec.nfc_message_types) | set(rec.nfc_aio_types))
        return Verdict("NFC", 0.99, [f"cleartext NFC after TLS #1: {f['nfc_messages']} messages "
                                     f"({', '.join(types[:5])}{'...' if len(types) > 5 else ''})"])
    if f["continued_in_clear"]:
        return Verdict("NFC", 0.8, [f"the stream continued without TLS after TLS #1 (frame {rec.clear_after_tls_frame}): "
                                    "VDDK 'nbd' NFC hand-off"])
    login_replies = [ln for ln in lines if not ln.from_client and ln.code in (331, 230, 530)]
    if not rec.handshakes and (rec.login_attempts or login_replies) and rec.connect_kind is None:
        conf = 0.95 if not f["midstream"] else 0.8
        return Verdict("NONE", conf, [f"only login exchanges in clear: {rec.login_attempts} PASS, "
                                      f"{sum(1 for ln in login_replies if ln.code == 530)} '530' repl(ies), "
                                      f"outcome {rec.login_outcome}"])
    if not rec.handshakes and not f["midstream"]:
        if rec.banner is not None and rec.bytes[0] <= 64:
            return Verdict("NONE", 0.9, ["banner probe: the client read the greeting and sent "
                                         f"{rec.bytes[0]} byte(s) without starting TLS"])
        if rec.banner is not None and not lines[1:]:
            return Verdict("NONE", 0.85, ["banner only: nothing after the greeting"])

    # -- 3. structure of the encrypted stream -------------------------------------------------------
    if f["midstream"]:
        return _midstream(rec, f)
    if rec.handshakes:
        return _decoded(rec, f)
    return Verdict("UNKNOWN", 0.3, ["established, but neither TLS nor an authd dialogue could be read"])


MODEL_CEILING = 0.85  # SOAP-over-902 and VMXARGS have no public wire definition (protocol.md §6)
CEILING = 0.99
GAP_CEILING = 0.8  # bytes of the connection were never captured: the record sequence may be incomplete


def first_after(rec) -> tuple[int, int] | None:
    """Plaintext interval of the client's first application record in TLS #2 (after TLS 1.3's
    Finished, past TLS 1.0's empty CBC fragments): the MKS token is 16 bytes, an NFC message 264."""
    if len(rec.handshakes) < 2:
        return None
    obs, _tls13 = dlg.tls1_observations(rec, rec.handshakes[1].index)
    first = next((o for o in obs if o.direction == 0), None)
    return None if first is None else (first.lo, first.hi)


def _handoff_kind(rec, f: dict) -> str:
    if len(rec.handshakes) >= 2:
        return "tls2"
    if f["continued_in_clear"] or f["nfc_messages"]:
        return "clear"
    return "none"


FIT_MIN = 0.8  # mid-stream: share of records a template must explain to read them as TLS #1


def _decoded(rec, f: dict, ceiling: float = CEILING, require_fit: bool = False) -> Verdict | None:
    """Decode TLS #1 from its record sizes against the authd grammar (infer_dialogue) and let the
    most likely template decide; its likelihood against the runner-up label is the confidence.
    ``require_fit`` (a capture that began near a handshake it cannot place): None unless the
    records read as an authd dialogue — not, say, as what follows a hand-off."""
    handoff = _handoff_kind(rec, f)
    first = first_after(rec)
    dec = dlg.decode(rec, handoff, first)
    if require_fit:
        if dec is None or dec.best.template.label == "UNKNOWN":
            return None
        steps = dec.best.steps
        first = next((st.obs for st in steps if st.obs.direction == 0), None)
        if sum(1 for st in steps if st.tokens) < FIT_MIN * len(steps) or (first and first.lo == first.hi == 264):
            return None
    if dec is None:
        if len(rec.handshakes) >= 2:
            return _second_handshake(rec, f)
        hs = rec.handshakes[0]
        if hs.server_hello is None:
            alert = next((a for a in hs.alerts), None)
            why = (f"the TLS handshake failed: {alert[2]} alert {alert[3] or ''} (frame {alert[1]})".rstrip()
                   if alert else "the TLS handshake never completed (no ServerHello)")
            return Verdict("NONE", 0.95, [f"{why}; no authd command could be sent"])
        return Verdict("NONE", 0.9, ["TLS handshake only: no authd command was sent"])
    best, other = dec.best, dec.runner_up()
    label = best.template.label
    p1 = dec.posterior.get(label, 0.0)
    p2 = dec.posterior.get(other.template.label, 0.0) if other is not None else 0.0
    confidence = p1 / (p1 + p2) if p1 + p2 > 0 else 0.5
    cap = MODEL_CEILING if best.template.model else ceiling
    lost = sum(getattr(rec, "gaps", (0, 0)) or (0, 0))
    if lost:
        cap = min(cap, GAP_CEILING)
    confidence = round(min(cap, confidence), 3)
    reasons = [f"decoded from TLS #1 record sizes as {best.template.name}: {dlg.describe(best)}"]
    reasons += _decoded_reasons(rec, best, handoff, first)
    if dec.not_decoded:
        reasons.append(f"only the first {dec.observations} records of TLS #1 were decoded "
                       f"({dec.not_decoded} more follow)")
    if lost:
        reasons.append(f"the capture lost bytes of this connection ({lost} hole(s): snaplen or loss): records "
                       f"may be missing from the reading, so the confidence stays ≤ {GAP_CEILING}")
    if best.template.model:
        reasons.append(f"{label} over 902 has no public wire definition: this is the lab's model of it, "
                       f"so the confidence stays ≤ {MODEL_CEILING}")
    if other is not None and p1 > 0:
        ratio = p1 / p2 if p2 > 0 else math.inf
        reasons.append(f"against: {other.template.name} ({other.template.label}) — "
                       f"{'far' if ratio == math.inf or ratio > 1e6 else f'{ratio:.3g}×'} less likely: "
                       f"{dlg.describe(other, limit=6)}")
    margin = None
    if other is not None:
        margin = round((best.loglik - other.loglik) / math.log(10), 2)
    return Verdict(label, confidence, reasons, dec.inferred_dialogue(), list(best.logins), judged_as="tls1",
                   decoded_as=best.template.name, decoded_margin=margin, decoded_dialogue=dlg.describe(best))


def _decoded_reasons(rec, parse, handoff: str, first: tuple[int, int] | None) -> list[str]:
    label = parse.template.label
    out = []
    if parse.logins:
        out.append(dlg.login_summary(parse.logins))
    if label == "NONE":
        out.append("no CONNECT, PROXY or request followed: login attempts only" if parse.logins
                   else "no command beyond the login was sent")
    if handoff == "tls2":
        hs2 = rec.handshakes[1]
        tail = ""
        if first is not None:
            size = f"{first[0]}" if first[0] == first[1] else f"{first[0]}-{first[1]}"
            tail = {"MKS": f"; its first client record carries {size} bytes (the 16-byte MKS token)",
                    "NFC": f"; its first client record carries {size} bytes (a 264-byte NFC message)"}.get(label, "")
        out.append(f"a second TLS handshake started on the raw stream (frame {hs2.frame}) after the hand-off{tail}")
    elif handoff == "clear":
        out.append(f"the stream continued without TLS after TLS #1 (frame {rec.clear_after_tls_frame})")
    elif label in ("MKS", "NFC"):
        out.append("no hand-off followed: the service did not open (or the capture ended)")
    return out


def _second_handshake(rec, f: dict) -> Verdict:
    """MKS or NFC over TLS: both hand the stream to a fresh handshake after '200 Connect'."""
    votes = _Votes()
    hs2 = rec.handshakes[1]
    first = f["later_client_first"]
    if first is not None:
        if first <= TOKEN_MAX:
            votes.add("MKS", 3, f"first message after the second handshake (frame {hs2.frame}) is ~{first} bytes: "
                                "the 16-byte MKS token")
        elif first >= NFC_MESSAGE_MIN:
            votes.add("NFC", 3, f"first message after the second handshake is ~{first} bytes: a 264-byte NFC message")
    last = f["tls1_client_last"]
    if last is not None:
        if last >= LONG_COMMAND:
            votes.add("MKS", 2, f"last authd command before the hand-off is ~{last} bytes, "
                                "long like 'CONNECT <vmx path> mks'")
        elif last <= SHORT_COMMAND:
            votes.add("NFC", 2, f"last authd command before the hand-off is ~{last} bytes, short like 'PROXY vpxa-nfcssl'")
    reply = f["tls1_server_last"]
    if reply is not None:
        if reply >= LONG_COMMAND:
            votes.add("MKS", 1, f"the hand-off reply is ~{reply} bytes, like '200 Connect <vmx path>'")
        elif reply <= SHORT_COMMAND:
            votes.add("NFC", 1, f"the hand-off reply is ~{reply} bytes, like '200 Connect ha-nfcssl'")
    greet = f["tls1_server_first"]
    if greet is not None and greet >= GREETING_ECHO:
        votes.add("NFC", 1.5, f"first reply inside TLS #1 is ~{greet} bytes: the greeting re-sent for VDDK's BANNER")
    _shape_votes(votes, f, weight=1)
    verdict = votes.verdict()
    verdict.judged_as = "handoff"
    return verdict


def _shape_votes(votes: _Votes, f: dict, weight: float) -> None:
    """Volume and timing after the hand-off (or of a stream seen mid-way); silent on short exchanges.
    Relative measures (shares, regularity, pauses) carry most weight: mid-stream, the cipher and
    so the exact record overhead are unknown."""
    small, median = f["later_client_small_share"], f["later_client_median"]
    idle, alt = f["later_idle_count"], f["later_alternation"]
    large, sbytes = f["later_server_large_share"], f["later_server_bytes_share"]
    regular = f["later_client_regularity"]
    n = f["later_client_msgs"]
    if not n:
        return
    if small is not None and small >= 0.6 and median is not None and median <= 40 and (idle >= 1 or n >= 20):
        votes.add("MKS", weight, f"{_pct(small)} of {n} client messages are ≤ 64 bytes "
                                 f"(keys, pointer, update requests) with {idle} pause(s) > 1 s: an interactive console")
    if n < MIN_SHAPE_MSGS:
        return
    full = f["later_server_full_share"] or 0.0
    if (median is not None and median <= NFC_REQUEST_MAX and idle == 0 and regular is not None and regular >= 0.7
            and ((alt is not None and alt >= 0.5 and large is not None and large >= 0.3) or full >= 0.5)):
        votes.add("NFC", weight, f"{_pct(regular)} of {n} requests are ~{median:.0f} bytes (fixed-size, like NFC's "
                                 f"AIO IO or 264-byte messages), answered by bulk replies ({_pct(full)} of server "
                                 "records full-size) without pauses: a block read")
    if median is not None and median >= NFC_MESSAGE_MIN and sbytes is not None and sbytes < 0.3 and idle == 0:
        votes.add("NFC", weight, f"the client sends the bulk ({_pct(1 - sbytes)} of the bytes) in "
                                 f"~{median:.0f}-byte messages without pauses: upload")
    if median is not None and SOAP_REQUEST_MIN <= median < BULK and (sbytes or 0) >= 0.3:
        votes.add("SOAP", weight, f"requests of ~{median:.0f} bytes (HTTP + SOAP envelope sized) answered with "
                                  f"{_pct(sbytes or 0)} of the bytes")


def _midstream(rec, f: dict) -> Verdict:
    """The capture began inside the connection: no greeting, maybe no handshake; the shape
    (and a hand-off handshake, if one is visible) is what is left.  Confidence stays ≤ 0.8."""
    opening = f["tls1_client_first"]
    nfc_opening = opening is not None and NFC_MESSAGE_MIN <= opening <= NFC_REQUEST_MAX
    if rec.handshakes and not f["handoff_seen_midway"] and not nfc_opening:
        # nothing protected before the first visible handshake: the capture began either just before
        # TLS #1 (greeting missed) or right at the hand-off.  Judge it as TLS #1 first; if that
        # places nothing, as what follows a hand-off.
        inner = _decoded(rec, f, ceiling=0.8, require_fit=True)
        if inner is not None:
            inner.confidence = min(inner.confidence, 0.8)
            inner.reasons.append("capture began after the greeting, just before TLS #1")
            return inner
    midway = _decoded_midway(rec)
    if midway is not None:
        return midway
    if rec.handshakes and not f["handoff_seen_midway"]:
        # an NFC-sized first message (not an authd line) or nothing placeable as TLS #1:
        # judge what follows the visible handshake as a hand-off
        f = compute(rec, as_handoff=True)
    votes = _Votes()
    first, n = f["later_client_first"], f["later_client_msgs"]
    if first is not None and n >= 3:  # a hand-off is followed by its protocol, not by a lone message
        if first <= TOKEN_MAX:
            votes.add("MKS", 3, f"first message after a visible handshake is ~{first} bytes: the 16-byte MKS token")
        elif NFC_MESSAGE_MIN <= first <= NFC_REQUEST_MAX:
            votes.add("NFC", 2, f"first message after a visible handshake is ~{first} bytes: a 264-byte NFC message")
    alt = f["later_alternation"]
    crec, srec = f["later_client_record_max"] or 0, f["later_server_record_max"] or 0
    if (n >= 2 and alt is not None and alt >= 0.85 and crec <= MIDSTREAM_LOGIN_SIZED
            and srec <= MIDSTREAM_LOGIN_SIZED and (f["later_idle_max_s"] or 0.0) < IDLE_S):
        votes.add("NONE", 1.5, f"strict request/reply of short records only (≤ {max(crec, srec)} bytes, "
                               f"alternation {alt:.2f}) back to back, no pause ≥ {IDLE_S:g} s: USER/PASS answered "
                               "by 331/530 rather than a console waiting for its user")
    _shape_votes(votes, f, weight=1)
    if not votes.votes:
        _size_classes(votes, f)
    verdict = votes.verdict(ceiling=0.8)
    verdict.reasons.append("capture began mid-connection: no greeting seen, judged from what followed")
    verdict.judged_as, verdict.inputs = "midstream", f
    return verdict


MIDWAY_FIT = 0.9  # share of the records a template must explain to read a headless stream as TLS #1
MIDWAY_ANCHORED = 0.5  # ... share of its replies whose size the grammar pins (exact text or an echo)
MIDWAY_SHARED = 0.1  # ... at most this share of records carrying several lines (authd writes one per record)


def _decoded_midway(rec) -> Verdict | None:
    """A capture that began inside TLS #1 (protected records before any handshake): decode them
    against the templates entered at any line, the cipher's overhead a latent choice; accepted
    only when the reading explains nearly every record (post-hand-off traffic does not read as
    authd lines)."""
    got = dlg.decode_midway(rec)
    if got is None:
        return None
    dec, overhead = got
    best, other = dec.best, dec.runner_up()
    steps = best.steps
    if best.template.label == "UNKNOWN" or sum(1 for st in steps if st.tokens) < MIDWAY_FIT * len(steps):
        return None
    anchored, shared = dlg.anchored_share(best)
    if anchored < MIDWAY_ANCHORED or shared > MIDWAY_SHARED:
        return None
    label = best.template.label
    p1 = dec.posterior.get(label, 0.0)
    p2 = dec.posterior.get(other.template.label, 0.0) if other is not None else 0.0
    cap = min(0.8, MODEL_CEILING) if best.template.model else 0.8
    confidence = round(min(cap, p1 / (p1 + p2) if p1 + p2 > 0 else 0.5), 3)
    reasons = [f"decoded from record sizes as {best.template.name}, entered mid-way: {dlg.describe(best)}"]
    if best.logins:
        reasons.append(dlg.login_summary(best.logins))
    reasons.append(f"no handshake seen: record overhead taken as {overhead}, the most likely")
    if other is not None:
        reasons.append(f"against: {other.template.name} ({other.template.label}): {dlg.describe(other, limit=6)}")
    reasons.append("capture began mid-connection, inside TLS #1: judged from the visible dialogue")
    return Verdict(label, confidence, reasons, dec.inferred_dialogue(), list(best.logins), judged_as="tls1",
                   decoded_as=best.template.name, decoded_dialogue=dlg.describe(best),
                   decoded_margin=round((best.loglik - other.loglik) / math.log(10), 2) if other else None)


def _size_classes(votes: _Votes, f: dict) -> None:
    """Short or quiet streams seen mid-way: what the message sizes alone allow."""
    n, cmax, smax = f["later_client_msgs"], f["later_client_max"] or 0, f["later_server_max"] or 0
    median, sbytes = f["later_client_median"] or 0, f["later_server_bytes_share"]
    servers, full = f["later_server_msgs"], f["later_server_full_share"] or 0.0
    crec, srec = f["later_client_record_max"] or 0, f["later_server_record_max"] or 0
    if not n and not servers:
        return
    if cmax >= BULK and (sbytes if sbytes is not None else 1) < 0.3:
        votes.add("NFC", 1, f"client messages up to ~{cmax} bytes carry {_pct(1 - (sbytes or 0))} of the bytes: file data")
    elif median >= SOAP_REQUEST_MIN and cmax < BULK:
        votes.add("SOAP", 1, f"{n} request(s) of ~{median:.0f} bytes (HTTP + SOAP envelope sized), "
                             f"replies up to ~{smax} bytes")
    elif smax >= BULK and cmax <= NFC_REQUEST_MAX and (n <= MIN_SHAPE_MSGS or full >= 0.5):
        votes.add("NFC", 1, f"{n} small request(s) (≤ {cmax} bytes) answered by bulk replies up to ~{smax} bytes"
                            + (f", {_pct(full)} of server records full-size" if full else "") + ": a file read")
    elif servers >= 5 and n <= 2 and f["duration_s"] >= 10:
        votes.add("MKS", 1, f"the server keeps sending ({servers} messages over {f['duration_s']:.0f} s) while the "
                            "client is quiet: an idle console")
    elif 0 < n <= MIN_SHAPE_MSGS and crec <= MIDSTREAM_LOGIN_SIZED and srec <= MIDSTREAM_LOGIN_SIZED:
        votes.add("NONE", 1, f"only {n} short client message(s) (records ≤ {crec} bytes) with short replies: "
                             "login attempts")
    elif 0 < n <= MIN_SHAPE_MSGS and cmax < BULK and smax < BULK:
        votes.add("VMXARGS", 1, f"a short exchange of {n} command(s) up to ~{cmax} bytes, no bulk and no console "
                                "pattern: VMXARGS-style")
    elif (f["later_client_small_share"] or 0) >= 0.6:
        votes.add("MKS", 1, f"{n} client messages, mostly small, with server updates: a light console")
