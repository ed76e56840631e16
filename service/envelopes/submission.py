"""A submitted envelope checked against the directory: parsed strictly, then bound
to what the request around it says (sender, recipient, subject, purpose, consent or
request) and verified with the sender's current registered signing key. Shared by
referral sends and records-request answers."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.envelopes import verify
from service.envelopes.format import Envelope
from service.errors import ProblemItem
from service.organizations.service import current_keys
from service.vocabulary import Vocabulary


def parse(raw: dict[str, Any], vocabulary: Vocabulary) -> tuple[list[ProblemItem], Envelope | None]:
    """The envelope and its problems; a field named after a category of the
    taxonomy must carry that category, or the whole send is refused (no envelope)."""
    try:
        envelope = verify.parse_envelope(raw, path="envelope")
    except verify.EnvelopeRejectedError as exc:
        return list(exc.errors), None
    labels = vocabulary.check_labels(
        "envelope.fields", ((f.name, f.category) for f in envelope.fields)
    )
    return (labels, None) if labels else ([], envelope)


async def check_bound_and_signed(
    session: AsyncSession,
    envelope: Envelope,
    *,
    sender_org_id: uuid.UUID,
    recipient_org_id: uuid.UUID,
    recipient_path: str,
    subject_id: uuid.UUID,
    purpose: str,
    consent_id: uuid.UUID | None,
    request_id: uuid.UUID | None = None,
) -> list[ProblemItem]:
    problems: list[ProblemItem] = []
    keys = await current_keys(session, [sender_org_id, recipient_org_id])
    signing = keys.get(sender_org_id, {}).get("signing")
    encryption = keys.get(recipient_org_id, {}).get("encryption")
    if signing is None:
        problems.append(ProblemItem("/envelope/sender_key_id", "your organization has no keys"))
    if encryption is None:
        problems.append(ProblemItem(recipient_path, "the recipient has no registered keys"))
    if signing is None or encryption is None:
        return problems
    try:
        verify.verify_submission(
            envelope,
            sender_org=str(sender_org_id),
            sender_public_key=signing.public_key,
            recipient_org=str(recipient_org_id),
            recipient_key_id=encryption.key_id,
            subject_id=str(subject_id),
            purpose=purpose,
            consent_id=None if consent_id is None else str(consent_id),
            request_id=None if request_id is None else str(request_id),
        )
    except verify.EnvelopeRejectedError as exc:
        problems += exc.errors
    return problems
