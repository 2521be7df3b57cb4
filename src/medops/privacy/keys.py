"""The secret key behind pseudonyms and patient keys, and the keyed patient hash.

One key (``MEDOPS_DEID_KEY``, never stored with the data, never printed) derives the
pseudonymisation surrogates and the ``patient_key`` prepare writes into each row, so the
forward path (prepare) and erasure (``medops data forget``) share this small module and
nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from medops.errors import MedopsError

DEFAULT_KEY_ENV = "MEDOPS_DEID_KEY"
MIN_KEY_BYTES = 16
PATIENT_KEY = "patient_key"
PATIENT_KEY_HEX = 32  # 128 bits: no collision between patients in practice


class PseudonymKeyError(MedopsError, ValueError):
    """The key is missing or too short; the message names the variable, never the value."""


def load_key(variable: str = DEFAULT_KEY_ENV) -> bytes:
    """The HMAC key from environment variable ``variable`` (UTF-8 bytes, at least 16).

    One key serves pseudonymisation and patient keys for erasure (docs/privacy.md).
    """
    how = (
        f"set it to a secret of at least {MIN_KEY_BYTES} bytes, e.g. "
        f'export {variable}="$(openssl rand -base64 32)", kept out of recipes and data '
        "(see docs/privacy.md)"
    )
    value = os.environ.get(variable)
    if not value:
        raise PseudonymKeyError(f"environment variable {variable} is not set; {how}")
    key = value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(
            f"environment variable {variable} holds fewer than {MIN_KEY_BYTES} bytes; {how}"
        )
    return key


def optional_secret(variable: str = DEFAULT_KEY_ENV) -> bytes | None:
    """The key if ``variable`` is set, else None; one set but too short is still an error,
    as silently writing unkeyed rows would make them unerasable by patient."""
    return load_key(variable) if os.environ.get(variable) else None


def patient_key(key: bytes, patient_id: str) -> str:
    """The keyed hash written into prepared rows: links a patient's rows without naming them."""
    digest = hmac.new(key, f"patient:{patient_id}".encode(), hashlib.sha256).hexdigest()
    return digest[:PATIENT_KEY_HEX]


def key_id(key: bytes) -> str:
    """Names a key without revealing it, so erasure can tell a dataset keyed under another."""
    return hmac.new(key, b"medops-key-id", hashlib.sha256).hexdigest()[:16]
