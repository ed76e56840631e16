"""Erasure of a subject (issue 23, docs/erasure.md): everything the service holds
that could reveal the survivor is destroyed at once, what happened stays on record.

`POST /v1/subjects/{id}/erase`, by a supervisor of the owning organization, with a
reason code, in one transaction:

- the subject is marked erased: nothing new is created for it (consents, referrals,
  records-request answers, access links answer 409, `require_not_erased`);
- its access links end (their token, unused code and session stop working);
- every grant about it is revoked as a withdrawal would (the consents service: its
  events and audit entries are the usual ones), and every ciphertext and sealed key
  about it, sent or received, referrals and records-request answers, released or
  not, is destroyed. Those live in domains above this one (docs/architecture.md),
  so, as for a revocation (service/consents/ending.py), the composition hands every
  session the function that does it (service/erasure.py, installed by
  service/storage.py); a session made without it refuses to erase (fail closed);
- every organization that received fields about the subject gets `subject.erased`
  (identifiers only) telling it to destroy its copies;
- one `subject.erased` audit entry.

Metadata, manifests and audit entries stay (they hold no survivor data), so the
survivor's accounting still lists every earlier disclosure. Idempotent: a second
call answers the same and changes and audits nothing. Another organization's subject
is a 404, as for a random id.
"""

from __future__ import annotations

import json
import uuid
from typing import Final, Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit import service as audit_service
from service.audit.at_commit import stage
from service.audit.log import AuditEvent, disclosure_recipient
from service.audit.ordering import lock_policy
from service.auth.principals import Principal
from service.clock import Clock
from service.errors import ConflictError
from service.events.catalog import EventType
from service.events.outbox import emit
from service.subjects.models import AccessLink, Subject
from service.subjects.schemas import ErasureReason
from service.subjects.service import get_owned

ERASE_HOLDINGS: Final = "accord.subjects.erase_holdings"


class EraseHoldings(Protocol):
    """Revoke every grant about the subject and destroy every ciphertext and sealed
    key about it; returns the number of fields destroyed."""

    async def __call__(
        self, session: AsyncSession, subject_id: uuid.UUID, *, principal: Principal, clock: Clock
    ) -> int: ...


class NoEraserError(RuntimeError):
    """A programming error: the session was not made by service/storage.py."""


class SubjectErasedError(ConflictError):
    """A 409 `conflict` whose detail says the subject was erased."""


def require_not_erased(subject: Subject) -> Subject:
    """Creation paths call this: nothing new for an erased subject (409)."""
    if subject.erased_at is not None:
        raise SubjectErasedError("the subject was erased; nothing new can be created for it")
    return subject


def erase_holdings(session: AsyncSession) -> EraseHoldings:
    found: EraseHoldings | None = session.info.get(ERASE_HOLDINGS)
    if found is None:
        raise NoEraserError("this session cannot destroy a subject's fields; erasure refused")
    return found


async def _recipients(
    session: AsyncSession, subject: Subject
) -> dict[uuid.UUID, tuple[set[str], set[str]]]:
    """Each organization that received fields about the subject, with the referral
    and records-request ids it holds (from the audit log's disclosure entries)."""
    held: dict[uuid.UUID, tuple[set[str], set[str]]] = {}
    for entry in await audit_service.subject_disclosures(session, str(subject.id)):
        recipient = disclosure_recipient(entry)
        if recipient is None or recipient == subject.owner_org_id:
            continue
        details = entry_details(entry.body)
        referrals, requests = held.setdefault(recipient, (set(), set()))
        if isinstance(details.get("referral_id"), str):
            referrals.add(str(details["referral_id"]))
        if isinstance(details.get("request_id"), str):
            requests.add(str(details["request_id"]))
    return held


def entry_details(body: str) -> dict[str, object]:
    details = json.loads(body).get("details", {})
    return details if isinstance(details, dict) else {}


async def erase(
    session: AsyncSession,
    *,
    principal: Principal,
    subject_id: uuid.UUID,
    reason: ErasureReason,
    clock: Clock,
) -> Subject:
    """Erase the subject (see the module docstring). Idempotent."""
    await get_owned(session, principal=principal, subject_id=subject_id)
    eraser = erase_holdings(session)
    # The subject row first (service/audit/ordering.py: before every other lock), so
    # a consent or access link being created for it (FOR SHARE) either commits before
    # the erasure, which then revokes or ends it, or waits and finds the mark; of two
    # concurrent erasures the second finds the first one's mark and changes nothing.
    # Then the audit head: no delivery runs beside the erasure.
    subject = (
        await session.scalars(
            select(Subject)
            .where(Subject.id == subject_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    await lock_policy(session)
    if subject.erased_at is not None:
        return subject
    now = clock.now()
    subject.erased_at = now
    subject.erased_by = principal.label
    subject.erase_reason = reason.value
    await session.flush()
    ended = await session.execute(
        update(AccessLink)
        .where(AccessLink.subject_id == subject.id, AccessLink.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=principal.label)
    )
    fields = await eraser(session, subject.id, principal=principal, clock=clock)
    held = await _recipients(session, subject)
    for org_id, (referrals, requests) in sorted(held.items()):
        await emit(
            session,
            kind=EventType.subject_erased,
            to=[org_id],
            object_type="subject",
            object_id=subject.id,
            data={
                "subject_id": str(subject.id),
                "owner_org": str(subject.owner_org_id),
                "erased_at": now.isoformat(),
                "referral_ids": sorted(referrals),
                "request_ids": sorted(requests),
                "action": "destroy_copies",
            },
            at=now,
        )
    await stage(
        session,
        AuditEvent(
            "subject.erased",
            principal,
            subject_ref=str(subject.id),
            details={
                "reason": reason.value,
                "fields": fields,
                "access_links_ended": int(getattr(ended, "rowcount", 0) or 0),
                "notified": sorted(str(o) for o in held),
            },
        ),
        clock=clock,
    )
    return subject
