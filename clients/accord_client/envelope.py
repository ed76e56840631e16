"""Seal and open envelopes (docs/envelope.md): the client's public envelope API.

Trust decisions made here:
- The sender's signing key is never taken from the envelope or the delivery:
  the caller looks it up in the directory by key id and also passes the
  organization the directory says owns it, so a key of org C cannot vouch for
  an envelope claiming to come from org A (SECURITY-TESTS E03).
- Opening verifies the signature over released digests plus withheld digests
  before anything is decrypted, then checks each key commitment, then decrypts
  with the bound associated data. Values are returned all together or not at all.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from accord_client.crypto import (
    ed25519_public_key,
    open_value,
    seal_value,
    sign_ed25519,
    validate_ed25519_public_key,
    validate_x25519_public_key,
    verify_ed25519,
    x25519_public_key,
)
from accord_client.envelope_errors import (
    ContextMismatchError,
    EnvelopeMalformedError,
    Problem,
    SenderMismatchError,
    SignatureInvalidError,
    UnsupportedVersionError,
    WrongRecipientError,
)
from accord_client.envelope_format import (
    KEY_COMMITMENT_BYTES,
    MAX_FIELDS,
    MAX_VALUE_BYTES,
    MIN_CIPHERTEXT_BYTES,
    SEALED_KEY_BYTES,
    SIGNATURE_BYTES,
    Delivery,
    Envelope,
    EnvelopeContext,
    EnvelopeField,
    EnvelopeHeader,
    ManifestEntry,
    field_ad,
    key_id_for,
    signed_bytes,
)
from accord_client.envelope_parse import CONTEXT_KEYS, parse_delivery_obj, parse_envelope_obj
from accord_client.strict_json import StrictJSONError, loads_strict

# The categories of the shipped taxonomy (policies/categories.toml; a test keeps
# them equal). A field named after a category must carry that category
# (docs/envelope.md "Labels"): pass `categories=` to `seal_envelope` with the
# deployment's own taxonomy (GET /v1/policies) when it differs.
TAXONOMY_CATEGORIES = frozenset(
    {
        "identity", "contact", "location", "demographics", "language", "needs",
        "case_summary", "trafficking_type", "immigration_status", "health",
        "mental_health", "counseling_notes", "substance_use", "criminal_history",
        "children", "safety_plan", "financial", "employment", "legal_case",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class PlainField:
    """One field to seal. `value` is survivor data: kept out of repr and logs."""

    name: str
    category: str
    value: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedEnvelope:
    """What `open_envelope` and `open_delivery` return, all of it verified.

    - `header`: signed by the sender (who, to whom, subject, purpose, consent).
    - `values`: {field name: value} of the released fields, in name order.
      Survivor data: kept out of repr.
    - `withheld`: the manifest entries (name, category, hashes, commitment) of
      the fields the service withheld; their signed digests are part of what
      the signature covers, so the list is exactly what the sender sent minus
      what was released. Reasons and policies are the service's unsigned
      annotations and are not repeated here.
    """

    header: EnvelopeHeader
    values: Mapping[str, str] = field(repr=False)
    withheld: tuple[ManifestEntry, ...] = ()


def _malformed(problems: Iterable[Problem]) -> EnvelopeMalformedError:
    problems = tuple(problems)
    if any(p.code == "unsupported_version" for p in problems):
        return UnsupportedVersionError(problems)
    return EnvelopeMalformedError(problems)


def seal_envelope(
    fields: Iterable[PlainField],
    *,
    sender_org: str,
    sender_signing_key: bytes,
    recipient_org: str,
    recipient_encryption_key: bytes,
    subject_id: str,
    purpose: str,
    consent_id: str | None,
    request_id: str | None = None,
    categories: Collection[str] = TAXONOMY_CATEGORIES,
) -> dict[str, object]:
    """Encrypt each field to the recipient's X25519 key and sign the result.

    A field whose name is one of `categories` (the taxonomy's) must carry that
    category, or nothing is sealed (`label_mismatch`, as the service refuses it).

    `sender_signing_key` is the sender's 32-byte Ed25519 seed;
    `recipient_encryption_key` the recipient's current X25519 public key from
    the directory. Fields are sorted by name (the format's canonical order),
    so problem paths such as `envelope.fields[2].value` refer to that order.
    Returns the wire JSON object (API.md "Envelopes").
    """
    validate_x25519_public_key(recipient_encryption_key)
    plain = sorted(fields, key=lambda f: str(f.name))
    if len(plain) > MAX_FIELDS:
        raise EnvelopeMalformedError(
            [Problem("envelope.fields", "limit", f"at most {MAX_FIELDS} fields")]
        )
    header = EnvelopeHeader(
        sender_org=sender_org,
        sender_key_id=key_id_for(ed25519_public_key(sender_signing_key)),
        recipient_org=recipient_org,
        recipient_key_id=key_id_for(recipient_encryption_key),
        context=EnvelopeContext(
            subject_id=subject_id,
            purpose=purpose,
            consent_id=consent_id,
            request_id=request_id,
        ),
    )
    # Header, names and categories are checked before any value is touched, with
    # the service's own rules on a skeleton (placeholder bytes in place of crypto).
    problems = list(_skeleton_problems(header, plain))
    problems += [
        Problem(
            f"envelope.fields[{i}].category",
            "label_mismatch",
            "a field named after a category must carry that category",
        )
        for i, item in enumerate(plain)
        if item.name in categories and item.category != item.name
    ]
    encoded: list[bytes] = []
    for i, item in enumerate(plain):
        path = f"envelope.fields[{i}].value"
        try:
            raw = item.value.encode("utf-8") if isinstance(item.value, str) else None
        except UnicodeEncodeError:  # a lone surrogate is not Unicode text
            raw = None
        if raw is None:
            problems.append(Problem(path, "type", "must be a Unicode string"))
        elif len(raw) > MAX_VALUE_BYTES:
            problems.append(Problem(path, "limit", f"at most {MAX_VALUE_BYTES} UTF-8 bytes"))
        encoded.append(raw or b"")
    if problems:
        raise _malformed(problems)
    sealed = []
    for item, raw in zip(plain, encoded, strict=True):
        box = seal_value(
            raw,
            associated_data=field_ad(header, item.name, item.category),
            recipient_public_key=recipient_encryption_key,
        )
        sealed.append(
            EnvelopeField(
                name=item.name,
                category=item.category,
                ciphertext=box.ciphertext,
                sealed_key=box.sealed_key,
                key_commitment=box.key_commitment,
            )
        )
    message = signed_bytes(header, [f.digest() for f in sealed])
    signature = sign_ed25519(sender_signing_key, message)
    wire = Envelope(header=header, fields=tuple(sealed), signature=signature).to_json()
    # Self-check with the very rules the service applies, so an envelope this
    # library produces is never one the service must reject for its structure.
    _, structure_problems = parse_envelope_obj(wire)
    if structure_problems:
        raise _malformed(structure_problems)
    return wire


def _skeleton_problems(header: EnvelopeHeader, plain: Sequence[PlainField]) -> tuple[Problem, ...]:
    skeleton = Envelope(
        header=header,
        fields=tuple(
            EnvelopeField(
                name=item.name,
                category=item.category,
                ciphertext=bytes(MIN_CIPHERTEXT_BYTES),
                sealed_key=bytes(SEALED_KEY_BYTES),
                key_commitment=bytes(KEY_COMMITMENT_BYTES),
            )
            for item in plain
        ),
        signature=bytes(SIGNATURE_BYTES),
    )
    return parse_envelope_obj(skeleton.to_json())[1]


def _load(document: Mapping[str, object] | bytes | str, root: str) -> object:
    if isinstance(document, (bytes, str)):
        try:
            return loads_strict(document, root=root)
        except StrictJSONError as exc:
            raise EnvelopeMalformedError(exc.problems) from None
    return document


def open_envelope(
    envelope: Mapping[str, object] | bytes | str,
    *,
    recipient_private_key: bytes,
    sender_signing_key: bytes,
    expected_sender_org: str,
    expected_recipient_org: str,
    expected_context: Mapping[str, str | None] | None = None,
) -> OpenedEnvelope:
    """Open a complete envelope (every field present). See `open_delivery`."""
    parsed, problems = parse_envelope_obj(_load(envelope, "envelope"))
    if parsed is None:
        raise _malformed(problems)
    as_delivery = Delivery(
        header=parsed.header, released=parsed.fields, withheld=(), signature=parsed.signature
    )
    return _open(
        as_delivery,
        recipient_private_key,
        sender_signing_key,
        expected_sender_org,
        expected_recipient_org,
        expected_context,
    )


def open_delivery(
    delivery: Mapping[str, object] | bytes | str,
    *,
    recipient_private_key: bytes,
    sender_signing_key: bytes,
    expected_sender_org: str,
    expected_recipient_org: str,
    expected_context: Mapping[str, str | None] | None = None,
) -> OpenedEnvelope:
    """Verify and decrypt the released fields of a deliver response.

    - `recipient_private_key`: the X25519 private key whose key id the header
      names (keys.OrganizationKeys.encryption_private_key(key_id) finds it).
    - `sender_signing_key`: the Ed25519 public key looked up by the CALLER in
      the directory by the header's sender_key_id, never one from the response.
    - `expected_sender_org`: the organization the directory says owns that key.
    - `expected_context`: optional subset of the context (subject_id, purpose,
      consent_id, request_id) that must match exactly.

    Returns the verified header, the released values and the withheld entries.
    Raises a subclass of EnvelopeError on any failure and then returns nothing
    at all: no value is released to the caller unless every check passed.
    """
    parsed, problems = parse_delivery_obj(_load(delivery, "delivery"))
    if parsed is None:
        raise _malformed(problems)
    return _open(
        parsed,
        recipient_private_key,
        sender_signing_key,
        expected_sender_org,
        expected_recipient_org,
        expected_context,
    )


def _check_binding(
    header: EnvelopeHeader,
    recipient_private_key: bytes,
    sender_signing_key: bytes,
    expected_sender_org: str,
    expected_recipient_org: str,
    expected_context: Mapping[str, str | None] | None,
) -> None:
    validate_ed25519_public_key(sender_signing_key)
    if header.recipient_org != expected_recipient_org:
        raise WrongRecipientError("envelope is addressed to another organization")
    if header.recipient_key_id != key_id_for(x25519_public_key(recipient_private_key)):
        raise WrongRecipientError("envelope is sealed to another encryption key id")
    if header.sender_org != expected_sender_org:
        raise SenderMismatchError("sender_org is not the owner of the given signing key")
    if header.sender_key_id != key_id_for(sender_signing_key):
        raise SenderMismatchError("sender_key_id is not the id of the given signing key")
    if expected_context is not None:
        unknown = set(expected_context) - set(CONTEXT_KEYS)
        if unknown:
            raise ValueError("expected_context may only name context keys")
        actual = header.context.to_json()
        for key, value in expected_context.items():
            if actual[key] != value:
                raise ContextMismatchError(f"context.{key} is not the expected value")


def _open(
    parsed: Delivery,
    recipient_private_key: bytes,
    sender_signing_key: bytes,
    expected_sender_org: str,
    expected_recipient_org: str,
    expected_context: Mapping[str, str | None] | None,
) -> OpenedEnvelope:
    header = parsed.header
    _check_binding(
        header,
        recipient_private_key,
        sender_signing_key,
        expected_sender_org,
        expected_recipient_org,
        expected_context,
    )
    message = signed_bytes(header, [entry.digest() for entry in parsed.manifest()])
    if not verify_ed25519(sender_signing_key, message, parsed.signature):
        raise SignatureInvalidError("signature does not verify under the sender's key")
    values: dict[str, str] = {}
    for i, item in enumerate(parsed.released):
        plaintext = open_value(
            ciphertext=item.ciphertext,
            sealed_key=item.sealed_key,
            commitment=item.key_commitment,
            associated_data=field_ad(header, item.name, item.category),
            recipient_private_key=recipient_private_key,
        )
        try:
            values[item.name] = plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise EnvelopeMalformedError(
                [Problem(f"released[{i}]", "utf8", "decrypted value is not UTF-8")]
            ) from None
    return OpenedEnvelope(header=header, values=values, withheld=parsed.withheld)
