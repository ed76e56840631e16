"""The only server module that imports nacl.

The server never decrypts survivor data (DESIGN.md guarantee 1); it only verifies
signatures, validates public keys, signs its own statements (checkpoints, consent
receipts) and hashes. Functions take no algorithm or nonce parameters.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import nacl.secret
import nacl.signing

# Key validation and signature verification are the client library's, so the
# server and every member organization accept exactly the same keys and signatures.
from accord_client.crypto import (
    validate_ed25519_public_key,
    validate_x25519_public_key,
    verify_ed25519,
)
from accord_client.envelope_errors import InvalidKeyError
from accord_client.envelope_format import b64decode_strict, sha256

__all__ = [
    "FileSigner",
    "InvalidKeyError",
    "Signer",
    "b64decode_strict",
    "b64encode",
    "key_id_for",
    "sha256",
    "validate_ed25519_public_key",
    "validate_x25519_public_key",
    "verify_ed25519",
    "write_secret_file",
]


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_id_for(public_key: bytes) -> str:
    """A stable identifier for a public key: hex of the first 16 bytes of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:32]


class Signer(Protocol):
    """Signs the service's own statements. A deployment may back it with an HSM or KMS."""

    @property
    def public_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class FileSigner:
    """An Ed25519 key held in a 0600 file of 32 raw seed bytes."""

    _key: nacl.signing.SigningKey

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    def sign(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message).signature)

    @classmethod
    def load(cls, path: Path) -> FileSigner:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise PermissionError(f"key file {path.name} must not be readable by group or others")
        seed = path.read_bytes()
        if len(seed) != 32:
            raise InvalidKeyError(f"key file {path.name} must hold a 32-byte Ed25519 seed")
        return cls(nacl.signing.SigningKey(seed))

    @classmethod
    def load_or_create(cls, path: Path) -> FileSigner:
        if not path.exists():
            write_secret_file(path, nacl.signing.SigningKey.generate().encode())
        return cls.load(path)


def write_secret_file(path: Path, data: bytes) -> bool:
    """Create `path`, readable by its owner only, holding `data`, unless it exists;
    never overwrite. The file appears whole: `data` goes to a private temporary file
    in the same directory, which is then hard-linked into place, so processes that
    start together on a new key directory (`accord serve --workers N`) never read a
    partial key and never fail because another created it first. Returns whether
    this call created it (False: it existed, and was left as it is)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(temporary)


def generate_ed25519_seed() -> bytes:
    return bytes(nacl.signing.SigningKey.generate().encode())


def ed25519_public_from_seed(seed: bytes) -> bytes:
    return bytes(nacl.signing.SigningKey(seed).verify_key)


def seal_secret(key: bytes, secret: bytes) -> bytes:
    """Encrypt one of the service's own secrets (a webhook endpoint's signing
    secret) with a 32-byte key from the key directory (XSalsa20-Poly1305, random
    nonce), so a copy of the database alone does not reveal it. Never survivor data:
    the server holds no key that opens that."""
    return bytes(nacl.secret.SecretBox(key).encrypt(secret))


def open_secret(key: bytes, sealed: bytes) -> bytes:
    return bytes(nacl.secret.SecretBox(key).decrypt(sealed))
