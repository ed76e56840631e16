"""The service's own keys, one per purpose (SECURITY-TESTS E17: never shared).

- checkpoint signing key (Ed25519): signs audit log checkpoints;
- receipt signing key (Ed25519): signs consent receipts;
- survivor token key (Ed25519): signs survivor access tokens (API.md: a different
  key from the staff tokens' issuer);
- development staff token key (Ed25519, development and test only): signs the
  tokens `accord token issue` prints, standing in for an identity provider;
- cursor secret: authenticates pagination cursors;
- webhook signing key (Ed25519): signs every webhook (`v1a`), its public key
  published at GET /v1/webhooks/signing-key;
- webhook secrets key: seals each webhook endpoint's HMAC secret (`v1`) in the
  database.

Each lives in its own 0600 file in the key directory. Development and test
generate missing keys on first start; production refuses to start without them
(create them with `accord keys init`). Reached only through `Signer`, so a
deployment can substitute an HSM or a cloud KMS.

A new key is written to a temporary file `.<name>.<random>` beside it, then linked
into place (service/crypto.py `write_secret_file`); a process killed in between
leaves that copy of a secret key behind. Loading the keyring removes every such
leftover of the files named here, under an exclusive lock on the directory that
every creation of a key here also holds, so a process starting beside another
never removes the other's file while it is being written. Keys are read only by
their exact names, never a temporary.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from service.crypto import FileSigner, Signer, write_secret_file
from service.settings import Settings

CHECKPOINT_KEY = "checkpoint.ed25519"
RECEIPT_KEY = "receipt.ed25519"
CURSOR_SECRET = "cursor.secret"  # noqa: S105 - a file name
SURVIVOR_TOKEN_KEY = "survivor-token.ed25519"  # noqa: S105 - a file name
DEV_STAFF_TOKEN_KEY = "dev-staff-token.ed25519"  # noqa: S105 - a file name
WEBHOOK_KEY = "webhook.ed25519"
WEBHOOK_SECRETS_KEY = "webhook-secrets.key"
KEY_FILES = (
    CHECKPOINT_KEY,
    RECEIPT_KEY,
    CURSOR_SECRET,
    SURVIVOR_TOKEN_KEY,
    DEV_STAFF_TOKEN_KEY,
    WEBHOOK_KEY,
    WEBHOOK_SECRETS_KEY,
)


@dataclass(frozen=True)
class Keyring:
    checkpoint: Signer
    receipt: Signer
    survivor_token: Signer
    cursor_secret: bytes
    webhook: Signer
    webhook_secrets_key: bytes
    # Only when no identity provider is configured outside production.
    dev_staff_token: Signer | None


class MissingKeyError(RuntimeError):
    pass


def _signer(path: Path, create: bool) -> FileSigner:
    if create:
        return FileSigner.load_or_create(path)
    if not path.exists():
        raise MissingKeyError(f"key file {path} is missing; run `accord keys init`")
    return FileSigner.load(path)


def _secret(path: Path, create: bool) -> bytes:
    if not path.exists():
        if not create:
            raise MissingKeyError(f"key file {path} is missing; run `accord keys init`")
        write_secret_file(path, secrets.token_bytes(32))
    secret = path.read_bytes()
    if len(secret) < 32:
        raise MissingKeyError(f"key file {path} must hold at least 32 bytes")
    return secret


@contextmanager
def _key_dir_lock(key_dir: Path, create: bool) -> Iterator[None]:
    """An exclusive lock on the key directory itself (flock on its descriptor: no
    lock file), held while keys are created and leftovers removed."""
    if create:
        key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    elif not key_dir.is_dir():
        yield  # nothing to clean; the first missing key names the problem
        return
    fd = os.open(key_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_leftovers(key_dir: Path) -> list[str]:
    """Remove the temporary copies of key files that a process killed while
    creating a key left behind (`.<key file name>.<random>`); returns their names.
    Call only under `_key_dir_lock`: a live writer's temporary looks the same."""
    removed: list[str] = []
    for entry in os.scandir(key_dir):
        if any(entry.name.startswith(f".{name}.") for name in KEY_FILES) and not entry.is_dir(
            follow_symlinks=False
        ):
            os.unlink(entry.path)
            removed.append(entry.name)
    return sorted(removed)


def load_keyring(settings: Settings, *, create: bool | None = None) -> Keyring:
    create = settings.generates_dev_keys if create is None else create
    key_dir = settings.key_dir
    with _key_dir_lock(key_dir, create):
        if key_dir.is_dir():
            remove_leftovers(key_dir)
        return Keyring(
            checkpoint=_signer(key_dir / CHECKPOINT_KEY, create),
            receipt=_signer(key_dir / RECEIPT_KEY, create),
            survivor_token=_signer(key_dir / SURVIVOR_TOKEN_KEY, create),
            cursor_secret=_secret(key_dir / CURSOR_SECRET, create),
            webhook=_signer(key_dir / WEBHOOK_KEY, create),
            webhook_secrets_key=_secret(key_dir / WEBHOOK_SECRETS_KEY, create)[:32],
            dev_staff_token=_dev_staff_key(settings, create=create),
        )


def _dev_staff_key(settings: Settings, *, create: bool) -> Signer | None:
    if not settings.uses_dev_staff_key:
        return None
    return _signer(settings.key_dir / DEV_STAFF_TOKEN_KEY, create)


def load_dev_staff_key(settings: Settings, *, create: bool) -> Signer | None:
    """The development stand-in for an identity provider; never outside dev and test."""
    if not settings.uses_dev_staff_key:
        return None
    with _key_dir_lock(settings.key_dir, create):
        return _dev_staff_key(settings, create=create)
