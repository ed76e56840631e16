"""What follows a consent change elsewhere: notices to earlier recipients when a
grant is withdrawn (an outbox), and grants flagged for review when an agreement
they relied on is narrowed."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import disclosure_recipient
from service.audit.models import AuditEntry
from service.auth.principals import Principal
from service.clock import Clock
from service.consents.models import (
    ConsentNotification,
    ConsentReview,
    ConsentRevocation,
    ConsentVersion,
)
from service.events.catalog import EventType
from service.events.outbox import emit
from service.organizations.models import Organization


async def _versions(session: AsyncSession, grant_id: uuid.UUID) -> list[ConsentVersion]:
    stmt = (
        select(ConsentVersion)
        .where(ConsentVersion.grant_id == grant_id)
        .order_by(ConsentVersion.version.desc())
    )
    return list((await session.scalars(stmt)).all())


async def _live_latest(session: AsyncSession, version: ConsentVersion, now: datetime) -> bool:
    history = await _versions(session, version.grant_id)
    if history[0].id != version.id:
        return False
    revocation = await session.get(ConsentRevocation, version.grant_id)
    if revocation is not None and revocation.revoked_at <= now:
        return False
    return version.valid_from <= now < version.expires_at


async def notify_earlier_recipients(
    session: AsyncSession, *, version: ConsentVersion, clock: Clock
) -> list[ConsentNotification]:
    """Tell every organization that already received data under any version of this
    grant (from the audit log's disclosure entries) that its basis is gone and that
    it must destroy its copies (GDPR Art. 19; VAWA): a `consent.withdrawn` event to
    each, naming only the referrals and requests that organization holds, and one to
    the grant's owner naming all of them (a survivor may have withdrawn it through
    the access link). Also kept as rows of `consent_notifications`."""
    ids = {str(v.id) for v in await _versions(session, version.grant_id)}
    entries = (
        await session.scalars(
            select(AuditEntry).where(
                AuditEntry.subject_ref == str(version.subject_id),
                AuditEntry.action == "disclosure",
            )
        )
    ).all()
    held: dict[uuid.UUID, tuple[set[str], set[str]]] = {}
    for e in entries:
        details = json.loads(e.body).get("details", {})
        recipient = disclosure_recipient(e)
        if recipient is None or details.get("consent_id") not in ids:
            continue
        referrals, requests = held.setdefault(recipient, (set(), set()))
        if isinstance(details.get("referral_id"), str):
            referrals.add(details["referral_id"])
        if isinstance(details.get("request_id"), str):
            requests.add(details["request_id"])
    now = clock.now()
    rows = [
        ConsentNotification(
            id=uuid.uuid4(),
            grant_id=version.grant_id,
            recipient_org_id=org_id,
            event="consent.revoked",
            created_at=now,
            delivered_at=None,
        )
        for org_id in sorted(held)
    ]
    session.add_all(rows)
    await session.flush()
    every = (
        set().union(*(r for r, _ in held.values())),
        set().union(*(q for _, q in held.values())),
    )
    for org_id, (referrals, requests) in sorted({**held, version.owner_org_id: every}.items()):
        await emit(
            session,
            kind=EventType.consent_withdrawn,
            to=[org_id],
            object_type="consent",
            object_id=version.grant_id,
            data={
                "consent_id": str(version.id),
                "grant_id": str(version.grant_id),
                "owner_org": str(version.owner_org_id),
                "withdrawn_at": now.isoformat(),
                "referral_ids": sorted(referrals),
                "request_ids": sorted(requests),
                "action": "destroy_copies",
            },
            at=now,
        )
    return rows


FlowKey = tuple[str, str, str]


def _flow_keys(flows: list[dict[str, object]]) -> set[FlowKey]:
    keys: set[FlowKey] = set()
    for flow in flows:
        purposes = flow.get("purposes")
        if isinstance(purposes, list):
            keys.update(
                (str(flow["from_sector"]), str(flow["to_sector"]), str(p)) for p in purposes
            )
    return keys


async def flag_for_review(
    session: AsyncSession,
    *,
    collaboration_id: uuid.UUID,
    member_ids: set[uuid.UUID],
    old_flows: list[dict[str, object]],
    new_flows: list[dict[str, object]],
    agreement_version: int,
    clock: Clock,
) -> list[ConsentReview]:
    """After an agreement change, flag every live grant among the members that relied
    on a (sender sector, recipient sector, purpose) the new agreement dropped."""
    removed = _flow_keys(old_flows) - _flow_keys(new_flows)
    if not removed or not member_ids:
        return []
    sectors = {
        org.id: org.sector
        for org in (
            await session.scalars(select(Organization).where(Organization.id.in_(member_ids)))
        ).all()
    }
    now = clock.now()
    candidates = (
        await session.scalars(
            select(ConsentVersion).where(
                ConsentVersion.owner_org_id.in_(member_ids), ConsentVersion.expires_at > now
            )
        )
    ).all()
    flagged: list[ConsentReview] = []
    for version in candidates:
        if not await _live_latest(session, version, now):
            continue
        owner_sector = sectors[version.owner_org_id]
        relied = {
            (owner_sector, sectors[uuid.UUID(r)], p)
            for r in version.recipients
            if uuid.UUID(r) in sectors
            for p in version.purposes
        }
        if relied & removed:
            review = ConsentReview(
                id=uuid.uuid4(),
                grant_id=version.grant_id,
                owner_org_id=version.owner_org_id,
                collaboration_id=collaboration_id,
                agreement_version=agreement_version,
                flagged_at=now,
            )
            session.add(review)
            flagged.append(review)
            await emit(
                session,
                kind=EventType.consent_review_needed,
                to=[version.owner_org_id],
                object_type="consent",
                object_id=version.grant_id,
                data={
                    "consent_id": str(version.id),
                    "grant_id": str(version.grant_id),
                    "collaboration_id": str(collaboration_id),
                    "agreement_version": agreement_version,
                },
                at=now,
            )
    await session.flush()
    return flagged


async def needing_review(session: AsyncSession, *, principal: Principal) -> list[ConsentVersion]:
    """The current versions of the organization's grants flagged by an agreement change."""
    grant_ids = set(
        (
            await session.scalars(
                select(ConsentReview.grant_id).where(ConsentReview.owner_org_id == principal.org_id)
            )
        ).all()
    )
    return [(await _versions(session, grant_id))[0] for grant_id in sorted(grant_ids)]
