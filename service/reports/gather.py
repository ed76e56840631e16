"""The counts behind a report, read from metadata and audit entries only.

Everything is a count of events that happened within a period (a referral sent,
delivered, accepted; a request made, answered; a disclosure; a consent recorded;
a duty opened, done, past its date), read from timestamps that never change
afterwards: a period that has ended always gives the same counts, and a quarter's
count is the sum of its months' counts. An activity belongs to a collaboration
when every organization in it was a member at the time it began (a referral's
sender and recipient when it was sent; a request's requester and holder when it
was made; a disclosure's two sides when it was made; a consent's owner when it was
recorded). Referrals and disclosures, the large tables, are counted by the
database per sub-period (`buckets`); the rest is read row by row.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Float, and_, case, cast, false, func, literal_column, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.models import AuditEntry
from service.collaborations.models import Membership
from service.consents.models import ConsentRevocation, ConsentVersion
from service.organizations.models import Organization
from service.records_requests.models import Obligation, RecordsRequest, Review
from service.referrals.models import Referral, ReferralEvent
from service.reports.schemas import Period

# Timeline events that happen once in a referral's life (a delivery may repeat:
# its first is the referral's `delivered_at`).
STEPS = ("accepted", "declined", "closed", "withdrawn", "expired")


@dataclass
class Members:
    """A collaboration's membership periods, and the sector of each member."""

    spans: dict[uuid.UUID, list[tuple[datetime, datetime | None]]]
    sectors: dict[uuid.UUID, str]

    def at(self, org: uuid.UUID | None, when: datetime) -> bool:
        return org is not None and any(
            a <= when and (b is None or when < b) for a, b in self.spans.get(org, ())
        )

    def orgs_list(self) -> list[uuid.UUID]:
        return list(self.spans)

    def condition(
        self, org: Any, when: Any, since: datetime | None, until: datetime, *, as_text: bool = False
    ) -> Any:
        """SQL: `org` was a member at `when`, for a `when` known to lie in [since,
        until) (`since` None: any earlier time); `as_text`: `org` is a UUID's text. A
        member for all of that time needs no time test."""

        def value(member: uuid.UUID) -> object:
            return str(member) if as_text else member

        whole = [
            member
            for member, spans in self.spans.items()
            if since is not None and any(a <= since and (b is None or b >= until) for a, b in spans)
        ]
        terms = [org.in_([value(member) for member in whole])] if whole else []
        terms += [
            and_(org == value(member), when >= start, true() if end is None else when < end)
            for member, spans in self.spans.items()
            if member not in whole
            for start, end in spans
        ]
        return or_(*terms) if terms else false()


async def members_of(session: AsyncSession, collaboration_id: uuid.UUID) -> Members:
    rows = (
        await session.execute(
            select(
                Membership.org_id, Membership.added_at, Membership.removed_at, Organization.sector
            )
            .join(Organization, Organization.id == Membership.org_id)
            .where(Membership.collaboration_id == collaboration_id)
        )
    ).all()
    spans: dict[uuid.UUID, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    sectors: dict[uuid.UUID, str] = {}
    for org, added, removed, sector in rows:
        spans[org].append((added, removed))
        sectors[org] = sector
    return Members(dict(spans), sectors)


class Spread(NamedTuple):
    n: int
    median: float | None
    p90: float | None


@dataclass
class Facts:
    """Everything read for one period, per sub-period (`buckets`, by index) where the
    database counted, else as timestamps; tallied by `service.reports.tables.count`."""

    members: Members
    buckets: list[Period]
    # (bucket, sender sector, recipient sector, referrals sent)
    sent: list[tuple[int, str, str, int]]
    # (bucket, step, decline reason or "", referrals): delivered and STEPS
    steps: list[tuple[int, str, str, int]]
    # Hours from sending to delivery and to acceptance, of those within the period.
    hours: dict[str, Spread]
    # (bucket, legal basis, disclosures)
    disclosures: list[tuple[int, str, int]]
    # Each request's making, basis, preliminary outcome, answer time and answer.
    requests: list[tuple[datetime, str, str, datetime | None, str]]
    consents_recorded: list[datetime]
    consents_withdrawn: list[datetime]
    consents_expired: list[datetime]
    # Each duty's opening, due and done times.
    obligations: list[tuple[datetime, datetime, datetime | None]]
    reviews: list[tuple[datetime, datetime, datetime | None]]


def _request_outcome(preliminary: Iterable[Any]) -> str:
    outcomes = {str(item.get("outcome")) for item in preliminary if isinstance(item, dict)}
    return outcomes.pop() if len(outcomes) == 1 else "mixed"


def _json_text(column: Any, *path: str) -> Any:
    """SQLite: a text member of a JSON column."""
    return func.json_extract(column, "$." + ".".join(path))


def _hours(later: Any, earlier: Any, dialect: str) -> Any:
    """SQL: the hours from `earlier` to `later`, as a float."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", later - earlier), Float) / 3600
    return (func.julianday(later) - func.julianday(earlier)) * 24


def spread(values: list[float]) -> Spread:
    """(how many, median, 90th percentile by linear interpolation between ranks,
    as PostgreSQL's percentile_cont)."""
    if not values:
        return Spread(0, None, None)
    values = sorted(values)

    def at(q: float) -> float:
        position = (len(values) - 1) * q
        low = int(position)
        high = min(low + 1, len(values) - 1)
        return values[low] + (values[high] - values[low]) * (position - low)

    return Spread(len(values), at(0.5), at(0.9))


async def _spread(session: AsyncSession, hours: Any, dialect: str) -> Spread:
    if dialect != "postgresql":
        return spread([h for h in await session.scalars(hours) if h is not None])
    h = hours.subquery().c.h
    n, median, p90 = (
        await session.execute(
            select(
                func.count(h),
                func.percentile_cont(0.5).within_group(h),
                func.percentile_cont(0.9).within_group(h),
            )
        )
    ).one()
    return Spread(n, median, p90)


def _within(column: Any, period: Period) -> Any:
    return (column >= period.start) & (column < period.end)


def _bucket(column: Any, buckets: list[Period]) -> Any:
    return case(*[(column < b.end, i) for i, b in enumerate(buckets)], else_=-1)


async def _referrals(
    session: AsyncSession, m: Members, period: Period, buckets: list[Period]
) -> tuple[list[tuple[int, str, str, int]], list[tuple[int, str, str, int]], dict[str, Spread]]:
    # Sent within the period, and (for a later step) sent at any time before its end.
    sent_within = and_(
        m.condition(Referral.sender_org_id, Referral.created_at, period.start, period.end),
        m.condition(Referral.recipient_org_id, Referral.created_at, period.start, period.end),
    )
    parties = and_(
        m.condition(Referral.sender_org_id, Referral.created_at, None, period.end),
        m.condition(Referral.recipient_org_id, Referral.created_at, None, period.end),
    )
    sent_bucket = _bucket(Referral.created_at, buckets)
    pairs: dict[tuple[int, str, str], int] = defaultdict(int)
    for b, sender, recipient, n in await session.execute(
        select(sent_bucket, Referral.sender_org_id, Referral.recipient_org_id, func.count())
        .where(_within(Referral.created_at, period), sent_within)
        .group_by(sent_bucket, Referral.sender_org_id, Referral.recipient_org_id)
    ):
        pairs[b, m.sectors[sender], m.sectors[recipient]] += n
    steps: list[tuple[int, str, str, int]] = []
    sent = [(b, s, r, n) for (b, s, r), n in pairs.items()]
    steps += [(b, "sent", "", n) for b, _, _, n in sent]
    delivered_bucket = _bucket(Referral.delivered_at, buckets)
    for b, n in await session.execute(
        select(delivered_bucket, func.count())
        .where(_within(Referral.delivered_at, period), parties)
        .group_by(delivered_bucket)
    ):
        steps.append((b, "delivered", "", n))
    event_bucket = _bucket(ReferralEvent.at, buckets)
    reason = func.coalesce(Referral.decline_reason, "")
    for b, event, why, n in await session.execute(
        select(event_bucket, ReferralEvent.event, reason, func.count())
        .join(Referral, Referral.id == ReferralEvent.referral_id)
        .where(_within(ReferralEvent.at, period), ReferralEvent.event.in_(STEPS), parties)
        .group_by(event_bucket, ReferralEvent.event, reason)
    ):
        steps.append((b, event, why if event == "declined" else "", n))
    dialect = session.sync_session.get_bind().dialect.name
    accepted = (
        select(_hours(ReferralEvent.at, Referral.created_at, dialect).label("h"))
        .join(Referral, Referral.id == ReferralEvent.referral_id)
        .where(_within(ReferralEvent.at, period), ReferralEvent.event == "accepted", parties)
    )
    delivered = select(
        _hours(Referral.delivered_at, Referral.created_at, dialect).label("h")
    ).where(_within(Referral.delivered_at, period), parties)
    hours = {
        "sent_to_delivered": await _spread(session, delivered, dialect),
        "sent_to_accepted": await _spread(session, accepted, dialect),
    }
    return sent, steps, hours


async def _disclosures(
    session: AsyncSession, m: Members, period: Period, buckets: list[Period]
) -> list[tuple[int, str, int]]:
    dialect = session.sync_session.get_bind().dialect.name
    recipient: Any
    basis: Any
    disclosure = AuditEntry.action == "disclosure"
    if dialect == "postgresql":  # generated from the body at append (migration 0220)
        recipient = literal_column("audit_entries.disclosure_recipient")
        basis = literal_column("audit_entries.disclosure_basis")
    else:
        recipient = _json_text(AuditEntry.body, "details", "recipient_org")
        basis = _json_text(AuditEntry.body, "details", "legal_basis")
    bucket = _bucket(AuditEntry.at, buckets)
    rows = await session.execute(
        select(bucket, basis, func.count())
        .where(
            disclosure,
            _within(AuditEntry.at, period),
            m.condition(AuditEntry.counterpart_org_id, AuditEntry.at, period.start, period.end),
            m.condition(recipient, AuditEntry.at, period.start, period.end, as_text=True),
        )
        .group_by(bucket, basis)
        # SQLite: the time index, never the action's or the counterpart's (every entry
        # of a busy log may be a member's disclosure; few fall in the period).
        .with_hint(AuditEntry, "INDEXED BY ix_audit_entries_at", "sqlite")
    )
    return [(b, str(kind), n) for b, kind, n in rows]


async def _requests(
    session: AsyncSession, m: Members, period: Period
) -> list[tuple[datetime, str, str, datetime | None, str]]:
    out = []
    for created, requester, holder, basis, prelim, responded, status in await session.execute(
        select(
            RecordsRequest.created_at,
            RecordsRequest.requester_org_id,
            RecordsRequest.holder_org_id,
            RecordsRequest.legal_basis,
            RecordsRequest.preliminary,
            RecordsRequest.responded_at,
            RecordsRequest.status,
        ).where(
            _within(RecordsRequest.created_at, period)
            | _within(RecordsRequest.responded_at, period),
            RecordsRequest.requester_org_id.in_(m.orgs_list()),
            RecordsRequest.holder_org_id.in_(m.orgs_list()),
        )
    ):
        if m.at(requester, created) and m.at(holder, created):
            answer = "refused" if status == "refused" else "released"
            out.append((created, basis, _request_outcome(prelim), responded, answer))
    return out


async def _consents(
    session: AsyncSession, m: Members, period: Period
) -> tuple[list[datetime], list[datetime], list[datetime]]:
    rows = await session.execute(
        select(
            ConsentVersion.grant_id,
            ConsentVersion.version,
            ConsentVersion.owner_org_id,
            ConsentVersion.recorded_at,
            ConsentVersion.expires_at,
            ConsentRevocation.revoked_at,
        )
        .outerjoin(ConsentRevocation, ConsentRevocation.grant_id == ConsentVersion.grant_id)
        .where(
            ConsentVersion.owner_org_id.in_(m.orgs_list()), ConsentVersion.recorded_at < period.end
        )
    )
    recorded: list[datetime] = []
    withdrawn: list[datetime] = []
    expired: list[datetime] = []
    latest: dict[uuid.UUID, tuple[int, datetime]] = {}
    first: dict[uuid.UUID, tuple[uuid.UUID, datetime]] = {}
    revoked: dict[uuid.UUID, datetime | None] = {}
    for grant, version, owner, at, expires, revoked_at in rows:
        revoked[grant] = revoked_at
        if version == 1:
            first[grant] = (owner, at)
        if grant not in latest or version > latest[grant][0]:
            latest[grant] = (version, expires)
    for grant, (owner, at) in first.items():
        if not m.at(owner, at):
            continue
        if period.start <= at:
            recorded.append(at)
        gone = revoked[grant]
        if gone is not None and period.start <= gone < period.end:
            withdrawn.append(gone)
        ends = latest[grant][1]
        if period.start <= ends < period.end and (gone is None or gone > ends):
            expired.append(ends)
    return recorded, withdrawn, expired


async def _duties(
    session: AsyncSession, m: Members, period: Period, model: type[Obligation] | type[Review]
) -> list[tuple[datetime, datetime, datetime | None]]:
    done = Obligation.done_at if model is Obligation else Review.closed_at
    rows = await session.execute(
        select(
            model.created_at,
            model.due_at,
            done,
            model.holder_org_id,
            RecordsRequest.requester_org_id,
        )
        .join(RecordsRequest, RecordsRequest.id == model.request_id)
        .where(
            _within(model.created_at, period)
            | _within(model.due_at, period)
            | _within(done, period),
            model.holder_org_id.in_(m.orgs_list()),
        )
    )
    return [
        (created, due, finished)
        for created, due, finished, holder, requester in rows
        if m.at(holder, created) and m.at(requester, created)
    ]


async def gather(
    session: AsyncSession, collaboration_id: uuid.UUID, period: Period, buckets: list[Period]
) -> Facts:
    m = await members_of(session, collaboration_id)
    sent, steps, hours = await _referrals(session, m, period, buckets)
    recorded, withdrawn, expired = await _consents(session, m, period)
    return Facts(
        members=m,
        buckets=buckets,
        sent=sent,
        steps=steps,
        hours=hours,
        disclosures=await _disclosures(session, m, period, buckets),
        requests=await _requests(session, m, period),
        consents_recorded=recorded,
        consents_withdrawn=withdrawn,
        consents_expired=expired,
        obligations=await _duties(session, m, period, Obligation),
        reviews=await _duties(session, m, period, Review),
    )
