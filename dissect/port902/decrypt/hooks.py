"""The pipeline's entry points into decryption: which keys a capture gets, and the verdict of a
decrypted session (the metadata verdict kept as ``feature_inferred``).  Kept here so the
pipeline (``analysis``) changes by a few lines only."""

from __future__ import annotations

import os
from dataclasses import replace

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


def classify_decrypted(rec, classify, failure_of):
    """``rec`` judged twice: on what was visible (``feature_inferred``, the classifier's own
    verdict, from a copy holding only the wire's dialogue) and on the decrypted plaintext
    (``feature``, confidence 1.0, reason "decrypted").  Returns the judged record (records are
    frozen)."""
    seen = replace(rec, **rec.visible)
    meta = classify(replace(seen, failure=failure_of(seen)))
    judged = replace(rec, inferred_dialogue=meta.dialogue, inferred_logins=meta.logins)
    truth = decrypted_verdict(rec)
    if truth is None:  # nothing was decrypted that says more: the metadata verdict stands
        return replace(judged, feature=meta.label, confidence=meta.confidence, reasons=meta.reasons)
    label, reasons = truth
    if meta.label != label:
        reasons = reasons + [f"the metadata classifier said {meta.label} ({meta.confidence}): "
                             f"{meta.reasons[0] if meta.reasons else 'no reason'}"]
    return replace(judged, feature=label, confidence=1.0, reasons=reasons, feature_inferred=meta.label,
                   confidence_inferred=meta.confidence)
