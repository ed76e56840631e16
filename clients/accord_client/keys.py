"""An organization's key pairs and the passphrase-protected key file that holds them.

Keys belong to the organization, not to a person (DESIGN.md 3): a key file can
be kept by the organization's admins and survives staff turnover. Rotation adds
new key pairs and keeps the old private keys, so envelopes sealed to an old
key still open. No nacl here: primitives come from accord_client.crypto.

Key file (docs/envelope.md "Key file"): JSON with a clear header naming the
KDF and its parameters, and `box` = XChaCha20-Poly1305 of the canonical JSON of
the keys under an Argon2id key from the passphrase. The header is the AEAD's
associated data, so editing it (including lowering the work factors) fails
exactly like a wrong passphrase.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from accord_client import crypto
from accord_client.envelope_errors import DecryptionFailedError
from accord_client.envelope_format import (
    b64decode_strict,
    b64encode,
    canonical_json,
    key_id_for,
)
from accord_client.strict_json import StrictJSONError, loads_strict

__all__ = [
    "EncryptionKeyPair",
    "KeyFileDecryptionError",
    "KeyFileError",
    "KeyFileFormatError",
    "OrganizationKeys",
    "SigningKeyPair",
    "UnknownKeyIdError",
    "decrypt_key_file",
    "encrypt_key_file",
    "generate_organization_keys",
    "key_id_for",
    "load_key_file",
    "rotate",
    "save_key_file",
]

KEY_FILE_FORMAT = "accord-organization-keys"
KEY_FILE_VERSION = 1
KEY_FILE_AD_LABEL = b"accord/keyfile/v1"
KDF_ALGORITHM = "argon2id13"
CIPHER = "xchacha20poly1305-ietf"

# New files use libsodium's MODERATE profile (3 passes, 256 MiB; ~0.6 s here):
# the file guards an organization's long-lived private keys and is opened at
# start-up, not per request, so we buy more guessing cost than INTERACTIVE's
# 64 MiB. Files are accepted from INTERACTIVE up to SENSITIVE, nothing outside
# (a tampered header cannot make the loader allocate without bound).
_NEW_FILE_KDF = (crypto.ARGON2ID_OPSLIMIT_MODERATE, crypto.ARGON2ID_MEMLIMIT_MODERATE)
_KDF_OPSLIMIT_RANGE = (crypto.ARGON2ID_OPSLIMIT_INTERACTIVE, crypto.ARGON2ID_OPSLIMIT_SENSITIVE)
_KDF_MEMLIMIT_RANGE = (crypto.ARGON2ID_MEMLIMIT_INTERACTIVE, crypto.ARGON2ID_MEMLIMIT_SENSITIVE)


class KeyFileError(Exception):
    """The key file could not be used. Messages never contain key material."""


class KeyFileFormatError(KeyFileError):
    """Not a key file this library reads (structure, version, KDF parameters)."""


class KeyFileDecryptionError(KeyFileError):
    """Wrong passphrase, or the file was altered: authentication cannot tell which."""


class UnknownKeyIdError(KeyError):
    """No key with that id in this organization's key file."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _moment(now: datetime | None) -> datetime:
    """Key times are kept to the second (the file stores RFC 3339 without fractions)."""
    moment = now or _utc_now()
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True, kw_only=True)
class EncryptionKeyPair:
    """X25519: envelopes are sealed to `public_key`; `private_key` opens them."""

    key_id: str
    public_key: bytes
    private_key: bytes = field(repr=False)
    created_at: datetime
    retired_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKeyPair:
    """Ed25519: `seed` signs envelopes; `public_key` is registered in the directory."""

    key_id: str
    public_key: bytes
    seed: bytes = field(repr=False)
    created_at: datetime
    retired_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrganizationKeys:
    org_id: str
    encryption_keys: tuple[EncryptionKeyPair, ...]  # oldest first; the last is current
    signing_keys: tuple[SigningKeyPair, ...]

    @property
    def current_encryption_key(self) -> EncryptionKeyPair:
        return self.encryption_keys[-1]

    @property
    def current_signing_key(self) -> SigningKeyPair:
        return self.signing_keys[-1]

    def encryption_private_key(self, key_id: str) -> bytes:
        """The private key for an envelope header's recipient_key_id, current or retired."""
        for pair in self.encryption_keys:
            if pair.key_id == key_id:
                return pair.private_key
        raise UnknownKeyIdError(key_id)

    def public_registration(self) -> dict[str, str]:
        """Body of `PUT /v1/organizations/{org_id}/keys` for the current keys."""
        return {
            "encryption_public_key": b64encode(self.current_encryption_key.public_key),
            "signing_public_key": b64encode(self.current_signing_key.public_key),
        }


def _new_pairs(now: datetime) -> tuple[EncryptionKeyPair, SigningKeyPair]:
    private = crypto.generate_x25519_private_key()
    public = crypto.x25519_public_key(private)
    seed = crypto.generate_ed25519_seed()
    verify_key = crypto.ed25519_public_key(seed)
    return (
        EncryptionKeyPair(
            key_id=key_id_for(public), public_key=public, private_key=private, created_at=now
        ),
        SigningKeyPair(
            key_id=key_id_for(verify_key), public_key=verify_key, seed=seed, created_at=now
        ),
    )


def generate_organization_keys(org_id: str, *, now: datetime | None = None) -> OrganizationKeys:
    moment = _moment(now)
    encryption, signing = _new_pairs(moment)
    return OrganizationKeys(org_id=org_id, encryption_keys=(encryption,), signing_keys=(signing,))


def rotate(keys: OrganizationKeys, *, now: datetime | None = None) -> OrganizationKeys:
    """New current key pairs; the previous ones are marked retired and kept."""
    moment = _moment(now)
    encryption, signing = _new_pairs(moment)
    old_enc = tuple(
        k if k.retired_at else replace(k, retired_at=moment) for k in keys.encryption_keys
    )
    old_sig = tuple(k if k.retired_at else replace(k, retired_at=moment) for k in keys.signing_keys)
    return OrganizationKeys(
        org_id=keys.org_id,
        encryption_keys=(*old_enc, encryption),
        signing_keys=(*old_sig, signing),
    )


def _pair_plain(pair: EncryptionKeyPair | SigningKeyPair) -> dict[str, str | None]:
    if isinstance(pair, EncryptionKeyPair):
        secret_name, secret = "private_key", pair.private_key
    else:
        secret_name, secret = "seed", pair.seed
    return {
        "key_id": pair.key_id,
        "public_key": b64encode(pair.public_key),
        secret_name: b64encode(secret),
        "created_at": _rfc3339(pair.created_at),
        "retired_at": _rfc3339(pair.retired_at) if pair.retired_at else None,
    }


def _to_plain(keys: OrganizationKeys) -> dict[str, object]:
    return {
        "org_id": keys.org_id,
        "encryption_keys": [_pair_plain(k) for k in keys.encryption_keys],
        "signing_keys": [_pair_plain(k) for k in keys.signing_keys],
    }


def _passphrase_bytes(passphrase: str) -> bytes:
    # NFC so the same passphrase typed on systems that compose differently works.
    if not passphrase:
        raise KeyFileError("an empty passphrase protects nothing")
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def encrypt_key_file(keys: OrganizationKeys, passphrase: str) -> bytes:
    """The key file's bytes for these keys under this passphrase."""
    opslimit, memlimit = _NEW_FILE_KDF
    salt = crypto.new_kdf_salt()
    header: dict[str, object] = {
        "format": KEY_FILE_FORMAT,
        "version": KEY_FILE_VERSION,
        "kdf": {
            "algorithm": KDF_ALGORITHM,
            "opslimit": opslimit,
            "memlimit": memlimit,
            "salt": b64encode(salt),
        },
        "cipher": CIPHER,
    }
    secret = crypto.argon2id_key(
        _passphrase_bytes(passphrase), salt, opslimit=opslimit, memlimit=memlimit
    )
    box = crypto.secret_seal(secret, canonical_json(_to_plain(keys)), _header_ad(header))
    return canonical_json({**header, "box": b64encode(box)}) + b"\n"


def _header_ad(header: dict[str, object]) -> bytes:
    return KEY_FILE_AD_LABEL + b"\n" + canonical_json(header)


def _exact_keys(value: object, keys: set[str], what: str) -> dict[str, object]:
    if not isinstance(value, dict) or set(value) != keys:
        raise KeyFileFormatError(f"{what} must be an object with exactly the keys {sorted(keys)}")
    return value


def _int_in(value: object, bounds: tuple[int, int], what: str) -> int:
    if type(value) is not int or not bounds[0] <= value <= bounds[1]:
        raise KeyFileFormatError(f"{what} must be an integer in {bounds[0]}..{bounds[1]}")
    return value


def _b64(value: object, what: str, size: int | None = None) -> bytes:
    try:
        raw = b64decode_strict(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or (size is not None and len(raw) != size):
        raise KeyFileFormatError(
            f"{what} must be strict base64" + (f" of {size} bytes" if size else "")
        )
    return raw


def decrypt_key_file(data: bytes, passphrase: str) -> OrganizationKeys:
    """Check the header, derive the key, authenticate and decrypt, then check the keys."""
    try:
        document = loads_strict(data, root="keyfile", max_bytes=4 * 1024 * 1024)
    except StrictJSONError as exc:
        raise KeyFileFormatError("not a JSON key file") from exc
    top = _exact_keys(document, {"format", "version", "kdf", "cipher", "box"}, "key file")
    if top["format"] != KEY_FILE_FORMAT or top["cipher"] != CIPHER:
        raise KeyFileFormatError("not an Accord organization key file")
    if type(top["version"]) is not int or top["version"] != KEY_FILE_VERSION:
        raise KeyFileFormatError(f"only key file version {KEY_FILE_VERSION} is supported")
    kdf = _exact_keys(top["kdf"], {"algorithm", "opslimit", "memlimit", "salt"}, "kdf")
    if kdf["algorithm"] != KDF_ALGORITHM:
        raise KeyFileFormatError(f"kdf.algorithm must be {KDF_ALGORITHM}")
    opslimit = _int_in(kdf["opslimit"], _KDF_OPSLIMIT_RANGE, "kdf.opslimit")
    memlimit = _int_in(kdf["memlimit"], _KDF_MEMLIMIT_RANGE, "kdf.memlimit")
    salt = _b64(kdf["salt"], "kdf.salt", crypto.KDF_SALT_BYTES)
    box = _b64(top["box"], "box")
    header = {k: v for k, v in top.items() if k != "box"}
    secret = crypto.argon2id_key(
        _passphrase_bytes(passphrase), salt, opslimit=opslimit, memlimit=memlimit
    )
    try:
        plaintext = crypto.secret_open(secret, box, _header_ad(header))
    except DecryptionFailedError:
        raise KeyFileDecryptionError("wrong passphrase, or the key file was altered") from None
    return _from_plain(plaintext)


def _time(value: object, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise KeyFileFormatError(f"{what} must be an RFC 3339 UTC time")
    return moment


def _pair_times(rec: dict[str, object]) -> tuple[datetime, datetime | None]:
    retired = rec["retired_at"]
    created = _time(rec["created_at"], "created_at")
    return created, None if retired is None else _time(retired, "retired_at")


def _encryption_pair(item: object) -> EncryptionKeyPair:
    """One encryption key pair, its public key and id re-derived from the private key."""
    rec = _exact_keys(
        item, {"key_id", "public_key", "private_key", "created_at", "retired_at"}, "encryption key"
    )
    private = _b64(rec["private_key"], "private_key", crypto.X25519_KEY_BYTES)
    public = crypto.x25519_public_key(private)
    if rec["key_id"] != key_id_for(public) or _b64(rec["public_key"], "public_key") != public:
        raise KeyFileFormatError(
            "an encryption key's id or public key does not match its private key"
        )
    created, retired = _pair_times(rec)
    return EncryptionKeyPair(
        key_id=key_id_for(public),
        public_key=public,
        private_key=private,
        created_at=created,
        retired_at=retired,
    )


def _signing_pair(item: object) -> SigningKeyPair:
    """One signing key pair, its public key and id re-derived from the seed."""
    rec = _exact_keys(
        item, {"key_id", "public_key", "seed", "created_at", "retired_at"}, "signing key"
    )
    seed = _b64(rec["seed"], "seed", crypto.ED25519_SEED_BYTES)
    public = crypto.ed25519_public_key(seed)
    if rec["key_id"] != key_id_for(public) or _b64(rec["public_key"], "public_key") != public:
        raise KeyFileFormatError("a signing key's id or public key does not match its seed")
    created, retired = _pair_times(rec)
    return SigningKeyPair(
        key_id=key_id_for(public),
        public_key=public,
        seed=seed,
        created_at=created,
        retired_at=retired,
    )


def _from_plain(plaintext: bytes) -> OrganizationKeys:
    """Rebuild the keys, re-deriving every public key and key id from its secret:
    an inconsistent file is refused rather than used half-right."""
    try:
        plain = _exact_keys(
            loads_strict(plaintext, root="keys", max_bytes=4 * 1024 * 1024),
            {"org_id", "encryption_keys", "signing_keys"},
            "keys",
        )
    except StrictJSONError as exc:
        raise KeyFileFormatError("decrypted keys are not JSON") from exc
    org_id = plain["org_id"]
    enc_raw, sig_raw = plain["encryption_keys"], plain["signing_keys"]
    if (
        not isinstance(org_id, str)
        or not isinstance(enc_raw, list)
        or not isinstance(sig_raw, list)
        or not enc_raw
        or not sig_raw
    ):
        raise KeyFileFormatError(
            "keys must name an organization and hold at least one key pair each"
        )
    encryption = [_encryption_pair(item) for item in enc_raw]
    signing = [_signing_pair(item) for item in sig_raw]
    for pairs in (encryption, signing):
        if pairs[-1].retired_at is not None or any(p.retired_at is None for p in pairs[:-1]):
            raise KeyFileFormatError("exactly the last key pair of each kind must be current")
    return OrganizationKeys(
        org_id=org_id, encryption_keys=tuple(encryption), signing_keys=tuple(signing)
    )


def save_key_file(
    keys: OrganizationKeys, path: Path, passphrase: str, *, overwrite: bool = False
) -> None:
    """Write the key file owner-readable only (0600), atomically.

    The new file is written beside the old one and renamed over it, so a crash
    never leaves a half-written file in place of the organization's keys.
    """
    data = encrypt_key_file(keys, passphrase)
    if path.exists() and not overwrite:
        raise FileExistsError(f"key file {path.name} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def load_key_file(path: Path, passphrase: str) -> OrganizationKeys:
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise KeyFileError(f"key file {path.name} must not be accessible by group or others")
    return decrypt_key_file(path.read_bytes(), passphrase)
