"""The pipeline's entry points into decryption: which keys a capture gets, and the verdict of a
decrypted session (the metadata verdict kept as ``feature_inferred``).  Kept here so the
pipeline (``analysis``) changes by a few lines only."""

from __future__ import annotations

import os

from .keylog import KeyLog, load_keylog, read_pcapng_secrets
from .verdict import decrypted_verdict


def load_keylogs(keylog) -> KeyLog | None:
    """A KeyLog from a path, several paths or a KeyLog; None when nothing was given."""
    if keylog is None:
        return None
    if isinstance(keylog, KeyLog):
        return keylog
    if isinstance(keylog, (str, os.PathLike)):
        keylog = [keylog]
    merged = KeyLog()
    for path in keylog:
        merged.update(load_keylog(path))
    return merged


def capture_keylog(path, given: KeyLog | None) -> KeyLog | None:
    """The given keys plus those in the capture's Decryption Secrets Blocks; None when neither."""
    embedded = read_pcapng_secrets(path)
    if not embedded:
        return given if given else None
    if not given:
        return embedded
    merged = KeyLog()
    merged.update(given)
    merged.update(embedded)
    return merged


_DIALOGUE = ("dialogue", "user", "login_outcome", "login_attempts", "logins_failed", "logins", "login_summary",
             "connect_kind", "connect_target", "connect_ok", "commands", "connect_code", "connect_frame",
             "connect_reply_frame")


def classify_decrypted(rec, classify, failure_of) -> None:
    """Classify ``rec`` twice: on what was visible (``feature_inferred``, the classifier's own
    verdict) and on the decrypted plaintext (``feature``, confidence 1.0, reason "decrypted")."""
    full = {k: getattr(rec, k) for k in _DIALOGUE}
    for k, v in rec.visible.items():
        setattr(rec, k, v)
    failure = rec.failure
    rec.failure = failure_of(rec)
    meta = classify(rec)
    for k, v in full.items():
        setattr(rec, k, v)
    rec.failure = failure
    rec.inferred_dialogue, rec.inferred_logins = meta.dialogue, meta.logins
    truth = decrypted_verdict(rec)
    if truth is None:  # nothing was decrypted that says more: the metadata verdict stands
        rec.feature, rec.confidence, rec.reasons = meta.label, meta.confidence, meta.reasons
        return
    rec.feature_inferred, rec.confidence_inferred = meta.label, meta.confidence
    label, reasons = truth
    if meta.label != label:
        reasons = reasons + [f"the metadata classifier said {meta.label} ({meta.confidence}): "
                             f"{meta.reasons[0] if meta.reasons else 'no reason'}"]
    rec.feature, rec.confidence, rec.reasons = label, 1.0, reasons
