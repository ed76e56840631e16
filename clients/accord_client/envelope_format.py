"""The envelope's canonical bytes: the ONE implementation shared by client and server.

Everything here is pure (hashlib, json, base64; no nacl) so that the service
(`service/envelopes/format.py` imports this module) and the client compute the
associated data, field digests, signed bytes and envelope ids with the same
code and cannot drift. The byte layouts are specified in docs/envelope.md and
pinned by tests/vectors/envelope.json.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

VERSION = 1

# Domain-separation labels. Each prefixed preimage is `label || 0x0A || JCS(object)`;
# canonical JSON never contains a raw 0x0A, so the split point is unambiguous, and
# no two uses (AD, digest, signature) can ever produce the same bytes.
FIELD_AD_LABEL = b"accord/envelope/v1/field-ad"
FIELD_DIGEST_LABEL = b"accord/envelope/v1/field-digest"
SIGNATURE_LABEL = b"accord/envelope/v1/signature"
# Used as BLAKE2b messages keyed by the per-field data key (see client crypto.py).
KEY_COMMITMENT_LABEL = b"accord/envelope/v1/key-commitment"
FIELD_KEY_LABEL = b"accord/envelope/v1/field-encryption-key"

# Sizes (bytes) fixed by libsodium's primitives.
DATA_KEY_BYTES = 32
NONCE_BYTES = 24  # XChaCha20-Poly1305-IETF public nonce
TAG_BYTES = 16
SEALED_KEY_BYTES = 32 + 16 + DATA_KEY_BYTES  # ephemeral pk || MAC || sealed data key
KEY_COMMITMENT_BYTES = 32
SIGNATURE_BYTES = 64
DIGEST_BYTES = 32

# Limits (docs/envelope.md "Limits"). The worst-case JSON of an envelope within
# these limits is about 760 KB, under the service's 1 MiB request-body limit.
MIN_FIELDS = 1
MAX_FIELDS = 200
MAX_NAME_LENGTH = 64  # field names, categories and purposes
MIN_CIPHERTEXT_BYTES = NONCE_BYTES + TAG_BYTES  # an empty value
MAX_CIPHERTEXT_BYTES = 65_536  # decoded nonce || ciphertext || tag
MAX_VALUE_BYTES = MAX_CIPHERTEXT_BYTES - NONCE_BYTES - TAG_BYTES  # UTF-8 bytes of one value
MAX_TOTAL_CIPHERTEXT_BYTES = 524_288  # decoded, summed over all fields
MAX_ENVELOPE_JSON_BYTES = 1_048_576  # raw JSON handed to a parser

_MAX_SAFE_INTEGER = 2**53 - 1  # RFC 8785 numbers must be exact IEEE 754 doubles


def canonical_json(value: object) -> bytes:
    """RFC 8785 (JCS) bytes for the subset used here: objects with ASCII keys,
    arrays, strings, integers in the IEEE-754-exact range, booleans and null.

    For that subset Python's sorted, compact, non-ASCII-escaping dump is exactly
    JCS (ASCII keys sort the same by UTF-16 code unit as by code point; string
    escapes are JSON.stringify's). Floats are refused, not rounded.
    """
    _check_canonical(value, depth=0)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # A lone surrogate would make encoding fail here: such a string is not Unicode text.
    return text.encode("utf-8")


def _check_canonical(value: object, *, depth: int) -> None:
    if depth > 32:
        raise ValueError("canonical JSON nesting too deep")
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INTEGER:
            raise ValueError("integer outside the exact IEEE 754 range")
        return
    # Concrete types before the Mapping ABC, whose check costs several times more.
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_canonical(item, depth=depth + 1)
        return
    if isinstance(value, dict) or isinstance(value, Mapping):  # noqa: SIM101 - dict is the fast path
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise ValueError("canonical JSON object keys must be ASCII strings")
            _check_canonical(item, depth=depth + 1)
        return
    raise ValueError(f"type {type(value).__name__} is not allowed in canonical JSON")


def b64encode(raw: bytes) -> str:
    """Standard alphabet, with padding: the only base64 form the envelope uses."""
    return base64.b64encode(raw).decode("ascii")


def b64decode_strict(text: str) -> bytes:
    """Standard base64, canonical padding, no whitespace, no URL-safe alphabet.

    The one implementation: the service imports it (service/crypto.py), so both
    sides accept and reject exactly the same texts.
    """
    if not isinstance(text, str):
        raise ValueError("base64 value must be a string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("not strict base64") from exc
    # Re-encoding must give the same text: rules out non-zero padding bits, so
    # one byte string has exactly one accepted spelling.
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("base64 is not canonical")
    return raw


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def key_id_for(public_key: bytes) -> str:
    """Same rule as the service's key ids: hex of the first 16 bytes of SHA-256(key)."""
    return hashlib.sha256(public_key).hexdigest()[:32]


def _prefixed(label: bytes, value: object) -> bytes:
    return label + b"\n" + canonical_json(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvelopeContext:
    subject_id: str
    purpose: str
    consent_id: str | None
    request_id: str | None

    def to_json(self) -> dict[str, str | None]:
        return {
            "subject_id": self.subject_id,
            "purpose": self.purpose,
            "consent_id": self.consent_id,
            "request_id": self.request_id,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvelopeHeader:
    """Everything the sender signs besides the fields: who, to whom, about what."""

    sender_org: str
    sender_key_id: str
    recipient_org: str
    recipient_key_id: str
    context: EnvelopeContext
    version: int = VERSION

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "sender_org": self.sender_org,
            "sender_key_id": self.sender_key_id,
            "recipient_org": self.recipient_org,
            "recipient_key_id": self.recipient_key_id,
            "context": self.context.to_json(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestEntry:
    """What the signature commits to for one field, without its ciphertext or sealed key.

    Non-secret, fixed size: the service can keep it after it shreds the sealed
    key, to deliver the field as withheld and to record it in the audit log.
    """

    name: str
    category: str
    ciphertext_sha256: bytes
    sealed_key_sha256: bytes
    key_commitment: bytes

    def digest_preimage(self) -> dict[str, str]:
        return {
            "name": self.name,
            "category": self.category,
            "ciphertext_sha256": b64encode(self.ciphertext_sha256),
            "sealed_key_sha256": b64encode(self.sealed_key_sha256),
            "key_commitment": b64encode(self.key_commitment),
        }

    def digest(self) -> bytes:
        return sha256(_prefixed(FIELD_DIGEST_LABEL, self.digest_preimage()))


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvelopeField:
    name: str
    category: str
    ciphertext: bytes  # nonce (24) || XChaCha20-Poly1305 ciphertext || tag (16)
    sealed_key: bytes  # crypto_box_seal of the 32-byte data key
    key_commitment: bytes

    def manifest_entry(self) -> ManifestEntry:
        return ManifestEntry(
            name=self.name,
            category=self.category,
            ciphertext_sha256=sha256(self.ciphertext),
            sealed_key_sha256=sha256(self.sealed_key),
            key_commitment=self.key_commitment,
        )

    def digest(self) -> bytes:
        return self.manifest_entry().digest()

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "category": self.category,
            "ciphertext": b64encode(self.ciphertext),
            "sealed_key": b64encode(self.sealed_key),
            "key_commitment": b64encode(self.key_commitment),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    header: EnvelopeHeader
    fields: tuple[EnvelopeField, ...]  # strictly ascending by name
    signature: bytes

    def manifest(self) -> tuple[ManifestEntry, ...]:
        return tuple(f.manifest_entry() for f in self.fields)

    def manifest_digests(self) -> list[bytes]:
        return [entry.digest() for entry in self.manifest()]

    def signed_bytes(self) -> bytes:
        return signed_bytes(self.header, self.manifest_digests())

    def to_json(self) -> dict[str, object]:
        return {
            **self.header.to_json(),
            "fields": [f.to_json() for f in self.fields],
            "signature": b64encode(self.signature),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """A delivery as the recipient's client reads it: some fields in full, the rest as entries."""

    header: EnvelopeHeader
    released: tuple[EnvelopeField, ...]
    withheld: tuple[ManifestEntry, ...]
    signature: bytes

    def manifest(self) -> list[ManifestEntry]:
        entries = [f.manifest_entry() for f in self.released] + list(self.withheld)
        return sorted(entries, key=lambda e: e.name)


def field_ad(header: EnvelopeHeader, name: str, category: str) -> bytes:
    """The AEAD associated data of one field: binds it to its name, its category
    and the whole header, so a ciphertext moved to another field, relabelled,
    or re-targeted fails to decrypt even before the signature is considered."""
    return _prefixed(
        FIELD_AD_LABEL, {"header": header.to_json(), "name": name, "category": category}
    )


def field_digest(
    name: str, category: str, ciphertext: bytes, sealed_key: bytes, key_commitment: bytes
) -> bytes:
    return EnvelopeField(
        name=name,
        category=category,
        ciphertext=ciphertext,
        sealed_key=sealed_key,
        key_commitment=key_commitment,
    ).digest()


def signed_bytes(header: EnvelopeHeader, manifest_digests: Sequence[bytes]) -> bytes:
    """The exact message the sender's Ed25519 key signs.

    Only digests of the fields are signed, so a recipient given some fields in
    full and the rest as digests (withheld at delivery) can still verify it.
    """
    for digest in manifest_digests:
        if len(digest) != DIGEST_BYTES:
            raise ValueError("manifest digests are SHA-256 values")
    manifest = [b64encode(d) for d in manifest_digests]
    return _prefixed(SIGNATURE_LABEL, {"header": header.to_json(), "manifest": manifest})


def envelope_id(envelope: Envelope) -> str:
    """Identity of an envelope: lowercase hex SHA-256 of its canonical JSON.

    Strict base64 and strict (non-malleable) Ed25519 verification leave one
    accepted encoding per envelope, so a replay always has the same id.
    """
    return hashlib.sha256(canonical_json(envelope.to_json())).hexdigest()
