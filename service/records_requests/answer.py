"""The checks of a records request's answer before anything is decided or stored:
the envelope, whose subject it names, the consent, the asked categories, the
binding and the signature. A subject or consent the holder cannot see reads
exactly like a random id (SECURITY-TESTS O-same404)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.principals import Principal
from service.consents.models import ConsentVersion
from service.envelopes import submission
from service.envelopes.format import Envelope
from service.errors import NotFoundError, ProblemItem, RuleViolationError
from service.records_requests.models import LegalBasis, RecordsRequest
from service.records_requests.schemas import RespondRequest
from service.subjects.erasure import require_not_erased
from service.subjects.service import get_owned
from service.vocabulary import Vocabulary


async def check_answer(
    session: AsyncSession,
    principal: Principal,
    request: RecordsRequest,
    data: RespondRequest,
    vocabulary: Vocabulary,
) -> tuple[Envelope, uuid.UUID]:
    """The answer's envelope: sealed by the holder to the requester about one of the
    holder's subjects, under this request, in the asked categories. Every problem at
    once; nothing is stored on any."""
    problems: list[ProblemItem] = []
    basis = LegalBasis(request.legal_basis)
    if data.envelope is None:
        raise RuleViolationError(errors=[ProblemItem("/envelope", "required to release")])
    # On other bases a consent is optional: it is what turns a preliminary
    # `needs_consent` into a release (a court order plus a consent naming
    # substance_use, for instance); the policies still decide every field.
    if basis is LegalBasis.consent and data.consent_id is None:
        problems.append(ProblemItem("/consent_id", "required when the basis is consent"))
    parse_problems, envelope = submission.parse(data.envelope, vocabulary)
    problems += parse_problems
    if envelope is None:
        raise RuleViolationError(errors=problems)
    subject_id = uuid.UUID(envelope.header.context.subject_id)
    owned = True
    try:
        require_not_erased(await get_owned(session, principal=principal, subject_id=subject_id))
    except NotFoundError:
        owned = False
        problems.append(
            ProblemItem("/envelope/header/context/subject_id", "not a subject of yours")
        )
    if data.consent_id is not None:
        # Another organization's consent reads exactly like a random id, whoever's
        # subject the envelope names: a refusal must not tell the holder that
        # consent C belongs to subject S elsewhere (SECURITY-TESTS O-same404).
        consent = await session.get(ConsentVersion, data.consent_id) if owned else None
        if consent is None or consent.subject_id != subject_id:
            problems.append(ProblemItem("/consent_id", "no such consent for this subject"))
    asked = set(request.categories)
    problems += [
        ProblemItem(
            f"/envelope/fields/{f.name}",
            f"category {f.category} was not asked for",
            {"field": f.name, "category": f.category},
        )
        for f in envelope.fields
        if f.category not in asked
    ]
    if problems:
        raise RuleViolationError(errors=problems)
    problems += await submission.check_bound_and_signed(
        session,
        envelope,
        sender_org_id=principal.org_id,
        recipient_org_id=request.requester_org_id,
        recipient_path="/envelope/recipient_org",
        subject_id=subject_id,
        purpose=request.purpose,
        consent_id=data.consent_id,
        request_id=request.id,
    )
    if problems:
        raise RuleViolationError(errors=problems)
    return envelope, subject_id
