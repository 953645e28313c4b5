"""The feature a decrypted session used, read from its plaintext (confidence 1.0).

The decision order follows protocol.md §3.3-§5: the hand-off command inside TLS #1
(``CONNECT <vmx> mks`` → MKS, ``PROXY <service>`` → NFC, ``CONNECT_*ARGV`` → VMXARGS), HTTP
inside TLS #1 → SOAP, then what TLS #2 carried (RFB → MKS, NFC messages → NFC), then logins
only → NONE.  The metadata classifier's verdict is kept beside it (``feature_inferred``) and
compared: :func:`agreement` says when they differ.
"""

from __future__ import annotations


def decrypted_verdict(rec) -> tuple[str, list[str]] | None:
    """(label, reasons) when the plaintext decides the feature, else None."""
    dec = rec.decryption
    if dec is None or not dec.decrypted:
        return None
    lines = [ln for ln in rec.dialogue if ln.decrypted]
    frame = {ln.verb: ln.frame for ln in lines if ln.from_client and ln.verb}
    inner2 = {hs: kind for hs, kind in dec.inner.items() if hs >= 2}
    rfb = dec.rfb_summary()
    after = []
    if rfb is not None:
        after.append(f"TLS #{rfb['handshake']} carries RFB: ServerInit {rfb['width']}x{rfb['height']} "
                     f"'{rfb['name']}', {rfb['framebuffer_updates']} screen updates, "
                     f"{rfb['key_events']} key and {rfb['pointer_events']} pointer events")
    if "nfc" in inner2.values():
        after.append(f"TLS #2 carries NFC: {sum(dec.nfc_counts.values())} messages, "
                     f"{dec.nfc_data_bytes} bytes of file data")
    if rec.continued_in_clear and rec.nfc_message_types:
        after.append("the stream continued with NFC in clear after TLS #1")
    http = [m for hs, m in dec.http_messages if hs == 1 and m.from_client]
    if rec.connect_kind == "mks":
        return "MKS", [f"decrypted: client sent 'CONNECT <vmx> mks' inside TLS #1 (frame {frame.get('CONNECT')})"] + after
    if rec.connect_kind == "proxy":
        return "NFC", [f"decrypted: client sent 'PROXY {rec.connect_target}' inside TLS #1 "
                       f"(frame {frame.get('PROXY')})"] + after
    if rec.connect_kind == "vmxargs":
        return "VMXARGS", ["decrypted: client sent a CONNECT_*ARGV command inside TLS #1"] + after
    if http:
        m = http[0]
        action = f", SOAPAction {m.soap_action}" if m.soap_action else ""
        return "SOAP", [f"decrypted: HTTP {m.method} {m.target}{action} inside TLS #1 (frame {m.frame}); "
                        f"{len(http)} request(s)"]
    if rfb is not None:
        return "MKS", ["decrypted: " + after[0]]
    if "nfc" in inner2.values():
        return "NFC", ["decrypted: " + after[-1]]
    if lines:
        return "NONE", [f"decrypted: only login exchanges inside TLS #1 ({rec.login_attempts} PASS, "
                        f"outcome {rec.login_outcome}), no hand-off"]
    return None


def agreement(rec) -> bool | None:
    """True / False when decryption decided the feature and the metadata verdict does / does
    not agree with it; None when there was nothing to compare."""
    if rec.feature_inferred is None:
        return None
    return rec.feature_inferred == rec.feature
