"""Server-side checks of a submitted envelope: structure, binding, signature.

The server never decrypts (DESIGN.md guarantee 1): it checks what it can see.
Structure, limits, strict base64 and duplicate keys are enforced by the shared
parser (the same rules the client applies); base64 decoding, key ids and
Ed25519 verification go through service/crypto.py. Problems name JSON paths
and rules, never values (guarantee 7).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from accord_client.envelope_errors import Problem
from accord_client.envelope_format import Envelope
from accord_client.envelope_parse import parse_envelope_obj
from accord_client.strict_json import StrictJSONError, loads_strict

from service.crypto import b64decode_strict, key_id_for, verify_ed25519
from service.errors import BadRequestError, ProblemItem, RuleViolationError


class EnvelopeRejectedError(RuleViolationError):
    """Valid JSON, but the envelope breaks the format's rules (422); nothing is stored."""

    type_slug = "envelope-rejected"
    title = "The envelope breaks one or more rules"


class EnvelopeJSONError(BadRequestError):
    """The envelope is not JSON at all (400)."""

    type_slug = "malformed-json"
    title = "Malformed JSON"


def _items(problems: Iterable[Problem]) -> list[ProblemItem]:
    return [ProblemItem(p.path, p.message, {"code": p.code}) for p in problems]


def parse_envelope(raw: bytes | str | Mapping[str, object], *, path: str = "envelope") -> Envelope:
    """Parse and check an envelope, raising with every problem and its JSON path.

    Pass the raw bytes when possible: duplicate keys are only detectable before
    a JSON parser has kept one of them (pydantic and json.loads keep the last).
    An already-parsed mapping must come from `loads_strict` for the same reason.
    """
    obj: object = raw
    if isinstance(raw, (bytes, str)):
        try:
            obj = loads_strict(raw, root=path)
        except StrictJSONError as exc:
            if exc.syntax:
                raise EnvelopeJSONError(errors=_items(exc.problems)) from None
            raise EnvelopeRejectedError(errors=_items(exc.problems)) from None
    envelope, problems = parse_envelope_obj(obj, root=path, b64decode=b64decode_strict)
    if envelope is None:
        raise EnvelopeRejectedError(errors=_items(problems))
    return envelope


def verify_signature(envelope: Envelope, sender_public_key: bytes) -> bool:
    """Strict Ed25519 over the envelope's signed bytes, under a key whose id is
    the header's sender_key_id (a key of another id never counts)."""
    if key_id_for(sender_public_key) != envelope.header.sender_key_id:
        return False
    return verify_ed25519(sender_public_key, envelope.signed_bytes(), envelope.signature)


def verify_submission(
    envelope: Envelope,
    *,
    sender_org: str,
    sender_public_key: bytes,
    recipient_org: str,
    recipient_key_id: str,
    subject_id: str,
    purpose: str,
    consent_id: str | None,
    request_id: str | None = None,
    path: str = "envelope",
) -> None:
    """Check that the envelope says what the request around it says, and is signed.

    The policy engine decides on the request's recipient, subject, purpose and
    consent; the recipient's client checks the envelope's. If they differed the
    service would authorize one thing and deliver another, so every one must
    match. `sender_public_key` is the sender's *current* registered Ed25519 key
    (an envelope signed by a retired key is refused for new sends, E05);
    `recipient_key_id` the recipient's current X25519 key id.
    """
    header = envelope.header
    context = header.context
    expected: list[tuple[str, object, object]] = [
        ("sender_org", header.sender_org, sender_org),
        ("sender_key_id", header.sender_key_id, key_id_for(sender_public_key)),
        ("recipient_org", header.recipient_org, recipient_org),
        ("recipient_key_id", header.recipient_key_id, recipient_key_id),
        ("context.subject_id", context.subject_id, subject_id),
        ("context.purpose", context.purpose, purpose),
        ("context.consent_id", context.consent_id, consent_id),
        ("context.request_id", context.request_id, request_id),
    ]
    errors = [
        ProblemItem(f"{path}.{name}", "does not match the request", {"code": "mismatch"})
        for name, actual, wanted in expected
        if actual != wanted
    ]
    if not verify_signature(envelope, sender_public_key):
        errors.append(
            ProblemItem(
                f"{path}.signature",
                "does not verify under the sender's registered key",
                {"code": "signature"},
            )
        )
    if errors:
        raise EnvelopeRejectedError(errors=errors)
