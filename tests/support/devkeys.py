"""The development staff token key, read independently of the service's code so the
tests' token factory does not trust the code it tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

DEV_STAFF_KEY_FILE = "dev-staff-token.ed25519"
SURVIVOR_KEY_FILE = "survivor-token.ed25519"


def _private_key(key_dir: Path, name: str) -> tuple[bytes, str]:
    seed = (key_dir / name).read_bytes()
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    kid = hashlib.sha256(public).hexdigest()[:32]
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return pem, kid


def staff_private_key(key_dir: Path) -> tuple[bytes, str]:
    """(PEM of the dev staff key, its kid). The service creates it on first start."""
    return _private_key(key_dir, DEV_STAFF_KEY_FILE)


def survivor_private_key(key_dir: Path) -> tuple[bytes, str]:
    return _private_key(key_dir, SURVIVOR_KEY_FILE)
