"""Consent rules: validation, immutable versions, revocation and liveness. What a
release decides on, the ConsentInForce read afresh at that moment, is in
service/consents/in_force.py."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.at_commit import stage
from service.audit.log import AuditEvent
from service.audit.ordering import lock_policy
from service.auth.principals import Principal, SurvivorPrincipal
from service.clock import Clock
from service.consents import followups, givers
from service.consents.ending import shred_unreleased
from service.consents.models import (
    ConsentGiver,
    ConsentRevocation,
    ConsentVersion,
)
from service.consents.schemas import ConsentCreate, GivenBy, Method
from service.errors import ConflictError, NotFoundError, ProblemItem, RuleViolationError
from service.organizations.models import Organization
from service.policy.inputs import WILDCARD
from service.subjects.erasure import require_not_erased
from service.subjects.models import Subject
from service.subjects.service import get_owned, resolve_subject
from service.vocabulary import Vocabulary


@dataclass(frozen=True)
class ConsentState:
    version: ConsentVersion
    revocation: ConsentRevocation | None
    latest: bool
    giver_ref: str | None = None
    # The giver is recorded as the subject's alleged abuser: the grant never counts.
    giver_barred: bool = False

    def live(self, at: datetime) -> bool:
        """Live at `at`: the current version, not revoked, within its validity
        (valid_from inclusive, expires_at exclusive), not given by a person recorded
        as the subject's alleged abuser. Expiry needs no job."""
        if not self.latest or self.giver_barred:
            return False
        if self.revocation is not None and self.revocation.revoked_at <= at:
            return False
        return self.version.valid_from <= at < self.version.expires_at


def _check_lists(data: ConsentCreate, vocabulary: Vocabulary) -> list[ProblemItem]:
    problems: list[ProblemItem] = []
    if not data.recipients:
        problems.append(ProblemItem("/recipients", "at least one recipient is required"))
    if len(set(data.recipients)) != len(data.recipients):
        problems.append(ProblemItem("/recipients", "duplicate recipient"))
    problems += vocabulary.check_purposes("/purposes", data.purposes)
    # "*" (every category) is checked in place, so that an error's index is the
    # index of the offending item in the request.
    problems += vocabulary.check_list(
        "/categories", data.categories, vocabulary.categories | {WILDCARD}, "category"
    )
    if data.fields is not None:
        if not data.fields:
            problems.append(ProblemItem("/fields", "an empty list names no field; omit it"))
        if len(set(data.fields)) != len(data.fields):
            problems.append(ProblemItem("/fields", "duplicate field"))
    return problems


def _check_times(
    data: ConsentCreate, valid_from: datetime, now: datetime, max_days: int
) -> list[ProblemItem]:
    problems: list[ProblemItem] = []
    if data.expires_at <= now:
        problems.append(ProblemItem("/expires_at", "must be in the future"))
    if data.expires_at <= valid_from:
        problems.append(ProblemItem("/expires_at", "must be after valid_from"))
    if data.expires_at - valid_from > timedelta(days=max_days):
        problems.append(ProblemItem("/expires_at", f"a consent may run at most {max_days} days"))
    return problems


def _check_evidence(data: ConsentCreate, subject: Subject) -> list[ProblemItem]:
    problems: list[ProblemItem] = []
    if data.method is Method.verbal:
        if data.evidence_sha256 is None and data.witness_role is None:
            problems.append(
                ProblemItem("/witness_role", "verbal consent without a signed form needs a witness")
            )
    elif data.evidence_sha256 is None:
        problems.append(
            ProblemItem("/evidence_sha256", f"{data.method.value} consent needs the form's hash")
        )
    if data.given_by is GivenBy.parent_or_guardian and not subject.is_minor:
        problems.append(
            ProblemItem("/given_by", "a parent or guardian consents only for a minor subject")
        )
    if data.given_by is not GivenBy.survivor and data.giver_ref is None:
        # Without a reference to the person, the alleged-abuser rule could not be checked.
        problems.append(
            ProblemItem("/giver_ref", f"consent given by a {data.given_by.value} needs giver_ref")
        )
    return problems


async def _check_recipients(
    session: AsyncSession, recipients: list[uuid.UUID]
) -> list[ProblemItem]:
    if not recipients:
        return []
    found = set(
        (
            await session.scalars(
                select(Organization.id).where(
                    Organization.id.in_(recipients), Organization.active.is_(True)
                )
            )
        ).all()
    )
    return [
        ProblemItem(f"/recipients/{i}", "no such active organization")
        for i, org_id in enumerate(recipients)
        if org_id not in found
    ]


async def _versions(session: AsyncSession, grant_id: uuid.UUID) -> list[ConsentVersion]:
    stmt = (
        select(ConsentVersion)
        .where(ConsentVersion.grant_id == grant_id)
        .order_by(ConsentVersion.version.desc())
    )
    return list((await session.scalars(stmt)).all())


async def create(
    session: AsyncSession,
    *,
    principal: Principal,
    subject_id: uuid.UUID,
    data: ConsentCreate,
    vocabulary: Vocabulary,
    clock: Clock,
    max_days: int,
) -> ConsentVersion:
    """Record a grant, or (with `supersedes`) a new version of one. Every broken rule
    is listed in one 422; nothing is stored on any error."""
    subject = require_not_erased(
        await get_owned(session, principal=principal, subject_id=subject_id, share=True)
    )
    now = clock.now()
    valid_from = data.valid_from or now
    problems = _check_lists(data, vocabulary)
    problems += _check_times(data, valid_from, now, max_days)
    problems += _check_evidence(data, subject)
    problems += await _check_recipients(session, data.recipients)
    problems += await givers.check_giver(session, data, subject)
    previous: ConsentVersion | None = None
    if data.supersedes is not None:
        previous = await session.get(ConsentVersion, data.supersedes)
        if previous is None or previous.subject_id != subject.id:
            problems.append(ProblemItem("/supersedes", "no such consent for this subject"))
    if problems:
        raise RuleViolationError(errors=problems)
    grant_id, version = uuid.uuid4(), 1
    if previous is not None:
        # Serialize with decisions and other changes of this grant (see _lock_grant);
        # the audit head first, the lock order of every release (service/disclosures/decide.py).
        await lock_policy(session)
        history = await _lock_grant(session, previous.grant_id, exclusive=True)
        if history[0].id != previous.id:
            raise ConflictError("Only the current version of a grant can be amended")
        if await session.get(ConsentRevocation, previous.grant_id) is not None:
            raise ConflictError("A revoked grant cannot be amended; record a new grant")
        grant_id, version = previous.grant_id, previous.version + 1
    row = ConsentVersion(
        id=uuid.uuid4() if previous is not None else grant_id,
        grant_id=grant_id,
        version=version,
        supersedes=previous.id if previous is not None else None,
        subject_id=subject.id,
        owner_org_id=subject.owner_org_id,
        recipients=[str(r) for r in data.recipients],
        purposes=list(data.purposes),
        categories=list(data.categories),
        fields=list(data.fields) if data.fields is not None else None,
        valid_from=valid_from,
        expires_at=data.expires_at,
        method=data.method.value,
        language=data.language,
        evidence_sha256=data.evidence_sha256,
        witness_role=data.witness_role.value if data.witness_role else None,
        given_by=data.given_by.value,
        recorded_by=principal.label,
        recorded_at=now,
    )
    session.add(row)
    await session.flush()
    if data.giver_ref is not None:
        session.add(ConsentGiver(consent_id=row.id, giver_ref=data.giver_ref))
        await session.flush()
    await stage(
        session,
        AuditEvent(
            "consent.created" if previous is None else "consent.amended",
            principal,
            subject_ref=str(subject.id),
            details={
                "consent_id": str(row.id),
                "grant_id": str(grant_id),
                "version": version,
                "recipients": row.recipients,
                "purposes": row.purposes,
                "categories": row.categories,
                "expires_at": data.expires_at.isoformat(),
            },
        ),
        clock=clock,
    )
    return row


async def get_state(
    session: AsyncSession, *, principal: Principal | SurvivorPrincipal, consent_id: uuid.UUID
) -> ConsentState:
    """A version the principal's organization owns, or (survivor access token) a
    version about the token's own subject. 404 otherwise, as for a random id."""
    version = await session.get(ConsentVersion, consent_id)
    if version is None or version.owner_org_id != principal.org_id:
        raise NotFoundError()
    if isinstance(principal, SurvivorPrincipal) and version.subject_id != principal.subject_id:
        raise NotFoundError()
    return await state_of(session, version)


async def _lock_grant(
    session: AsyncSession, grant_id: uuid.UUID, *, exclusive: bool
) -> list[ConsentVersion]:
    """The grant's versions, newest first, row-locked until the transaction ends.

    The one ordering mechanism between a grant's changes and the decisions made on
    it (API.md "Ordering"): a decision holds a shared lock while it decides and
    commits its disclosure; a revocation or amendment takes an exclusive lock first.
    So a revocation waits for a decision in flight (and its audit entry follows the
    disclosure's), and a decision that starts after a revocation waits for it and
    then reads it. On SQLite every write transaction is BEGIN IMMEDIATE, which
    serializes them all; FOR UPDATE / FOR SHARE is not rendered there."""
    stmt = (
        select(ConsentVersion)
        .where(ConsentVersion.grant_id == grant_id)
        .order_by(ConsentVersion.version.desc())
        .with_for_update(read=not exclusive)
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(stmt)).all())


async def state_of(
    session: AsyncSession,
    version: ConsentVersion,
    history: list[ConsentVersion] | None = None,
) -> ConsentState:
    if history is None:
        history = await _versions(session, version.grant_id)
    revocation = await session.get(ConsentRevocation, version.grant_id)
    giver = (await givers.giver_refs(session, {version.id})).get(version.id)
    barred = giver is not None and giver in await givers.abuser_refs(session, version.subject_id)
    return ConsentState(
        version, revocation, history[0].id == version.id, giver_ref=giver, giver_barred=barred
    )


async def list_for_subject(
    session: AsyncSession, *, who: Principal | SurvivorPrincipal, subject_id: uuid.UUID
) -> list[ConsentState]:
    """Every version of every grant for the subject, newest first."""
    subject = await resolve_subject(session, who=who, subject_id=subject_id)
    versions = list(
        (
            await session.scalars(
                select(ConsentVersion)
                .where(ConsentVersion.subject_id == subject.id)
                .order_by(ConsentVersion.recorded_at.desc(), ConsentVersion.version.desc())
            )
        ).all()
    )
    grants = {v.grant_id for v in versions}
    revocations = {
        r.grant_id: r
        for r in (
            await session.scalars(
                select(ConsentRevocation).where(ConsentRevocation.grant_id.in_(grants))
            )
        ).all()
    }
    latest: dict[uuid.UUID, int] = {}
    for v in versions:
        latest[v.grant_id] = max(latest.get(v.grant_id, 0), v.version)
    refs = await givers.giver_refs(session, {v.id for v in versions})
    abusers = await givers.abuser_refs(session, subject.id)
    return [
        ConsentState(
            v,
            revocations.get(v.grant_id),
            latest[v.grant_id] == v.version,
            giver_ref=refs.get(v.id),
            giver_barred=refs.get(v.id) in abusers,
        )
        for v in versions
    ]


async def revoke(
    session: AsyncSession,
    *,
    principal: Principal | SurvivorPrincipal,
    consent_id: uuid.UUID,
    reason: str,
    clock: Clock,
) -> ConsentState:
    """Withdraw the whole grant, at once and for good. Idempotent: a second revoke
    changes nothing and writes no second audit entry."""
    visible = await get_state(session, principal=principal, consent_id=consent_id)
    # Lock first, then read the revocation again: of two concurrent revokes the second
    # waits, then finds the first one's row and returns it (D06). The audit head
    # first: the lock order of every release (service/disclosures/decide.py).
    await lock_policy(session)
    history = await _lock_grant(session, visible.version.grant_id, exclusive=True)
    state = await state_of(session, visible.version, history)
    if state.revocation is not None:
        return state
    revocation = ConsentRevocation(
        grant_id=state.version.grant_id,
        revoked_at=clock.now(),
        revoked_by=principal.label,
        reason=reason,
    )
    session.add(revocation)
    await session.flush()
    notified = await followups.notify_earlier_recipients(
        session, version=state.version, clock=clock
    )
    # Fields sent under the grant and never released are destroyed now, wherever the
    # delivering domains keep them (service/consents/ending.py).
    await shred_unreleased(session)(session, {v.id for v in history}, clock=clock)
    await stage(
        session,
        AuditEvent(
            "consent.revoked",
            principal if isinstance(principal, Principal) else None,
            actor_label=principal.label,
            subject_ref=str(state.version.subject_id),
            details={
                "consent_id": str(consent_id),
                "grant_id": str(state.version.grant_id),
                "notified": sorted(str(n.recipient_org_id) for n in notified),
            },
        ),
        clock=clock,
    )
    return dataclasses.replace(state, revocation=revocation)
