"""A generated federation with known counts, for the report tests.

Rows are written directly (metadata only: no field, no ciphertext, no free text
but placeholders), with timestamps spread over 2026 so that periods differ, and a
ground truth kept in plain Python: `truth(start, end)` counts every cell from the
generator's own records, independently of service/reports/.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from service.audit.log import AuditEvent, append
from service.auth.principals import Principal, Role
from service.clock import FrozenClock
from service.collaborations.models import Collaboration, Membership
from service.consents.models import ConsentRevocation, ConsentVersion
from service.records_requests.models import Obligation, RecordsRequest, Review
from service.referrals.models import Referral, ReferralEvent
from service.sectors import Sector
from service.subjects.models import Subject
from tests.support.world import World

YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2027, 1, 1, tzinfo=UTC)
MEMBERS = ("vsp", "shelter", "police", "prosecutor", "research")
# Heavy and light flows: vsp -> shelter is common, the rest rare, so that cells of
# every size occur (and some sector pairs never).
FLOWS = (("vsp", "shelter", 60), ("shelter", "vsp", 14), ("police", "vsp", 9), ("vsp", "police", 4))
BASES = ("consent", "court_order", "subpoena", "mandated_report", "emergency")
OUTCOMES = ("allowed", "needs_consent", "never")


def _at(rng: random.Random) -> datetime:
    return YEAR_START + timedelta(
        seconds=rng.randrange(int((YEAR_END - YEAR_START).total_seconds()))
    )


@dataclass
class Truth:
    sectors: dict[str, str]
    # (created, sender, recipient, [(at, event)], decline reason)
    referrals: list[tuple[datetime, str, str, list[tuple[datetime, str]], str | None]] = field(
        default_factory=list
    )
    # (created, basis, outcome, responded at, answer)
    requests: list[tuple[datetime, str, str, datetime | None, str]] = field(default_factory=list)
    disclosures: list[tuple[datetime, str]] = field(default_factory=list)
    consents: dict[str, list[datetime]] = field(default_factory=dict)
    duties: dict[str, list[tuple[datetime, datetime, datetime | None]]] = field(
        default_factory=dict
    )
    referral_ids: list[uuid.UUID] = field(default_factory=list)
    request_ids: list[uuid.UUID] = field(default_factory=list)
    # What involved the non-member "unrelated": referrals sent to it, disclosures to it.
    outside_referrals: list[datetime] = field(default_factory=list)
    outside_disclosures: list[datetime] = field(default_factory=list)

    def cells(self, start: datetime, end: datetime) -> dict[tuple[str, str, str], int]:
        """The true count of every non-total cell of [start, end): events within it."""
        c: Counter[tuple[str, str, str]] = Counter()
        for created, sender, recipient, events, reason in self.referrals:
            if start <= created < end:
                c["referrals_by_sector", self.sectors[sender], self.sectors[recipient]] += 1
            delivered = False
            for at, event in events:
                if event == "delivered":
                    if delivered:
                        continue
                    delivered = True
                if not start <= at < end:
                    continue
                c["referral_steps", event, "count"] += 1
                if event == "declined":
                    c["declines_by_reason", reason or "other", "count"] += 1
                if event in ("delivered", "accepted"):
                    c["durations", f"sent_to_{event}", "count"] += 1
        for created, basis, outcome, responded, answer in self.requests:
            if start <= created < end:
                c["requests_by_basis", basis, outcome] += 1
            if responded is not None and start <= responded < end:
                c["requests_by_answer", answer, "count"] += 1
        for at, basis in self.disclosures:
            if start <= at < end:
                c["disclosures_by_basis", basis, "count"] += 1
        for row, dates in self.consents.items():
            c["consents", row, "count"] += sum(1 for at in dates if start <= at < end)
        for name, duties in self.duties.items():
            for created, due, done in duties:
                c[name, "opened", "count"] += start <= created < end
                if done is not None and start <= done < end:
                    c[name, "done_on_time" if done <= due else "done_late", "count"] += 1
                if start <= due < end and (done is None or done > due):
                    c[name, "became_overdue", "count"] += 1
        return dict(c)


async def build(
    world: World, *, seed: int = 7, name: str = "Report task force"
) -> tuple[uuid.UUID, Truth]:
    rng = random.Random(seed)
    orgs = world.orgs
    sectors = {k: World.SECTORS[k].value for k in MEMBERS}
    truth = Truth(sectors=sectors, consents={"recorded": [], "withdrawn": [], "expired": []},
                  duties={"obligations": [], "reviews": []})  # fmt: skip
    since = datetime(2025, 1, 1, tzinfo=UTC)
    collab_id = uuid.uuid4()
    async with world.app.state.sessionmaker() as session:
        session.add(Collaboration(id=collab_id, name=name, created_at=since, created_by="test"))
        await session.flush()
        for key in MEMBERS:
            session.add(
                Membership(id=uuid.uuid4(), collaboration_id=collab_id, org_id=orgs[key],
                           added_at=since, added_by="test")
            )  # fmt: skip
        subject_id = uuid.uuid4()
        session.add(
            Subject(id=subject_id, owner_org_id=orgs["vsp"], created_at=since, created_by="t")
        )
        await session.flush()
        consent_ids = []
        for i in range(40):
            recorded = _at(rng)
            expires = recorded + timedelta(days=rng.choice([20, 60, 400]))
            grant = uuid.uuid4()
            owner = "vsp" if i % 4 else "unrelated"
            session.add(ConsentVersion(
                id=grant, grant_id=grant, version=1, subject_id=subject_id,
                owner_org_id=orgs[owner], recipients=[], purposes=["services_referral"],
                categories=["contact"], valid_from=recorded, expires_at=expires,
                method="written", language="en", given_by="survivor", recorded_by="t",
                recorded_at=recorded,
            ))  # fmt: skip
            consent_ids.append(grant)
            revoked = None
            if rng.random() < 0.3:
                revoked = recorded + timedelta(days=rng.randrange(1, 90))
                session.add(ConsentRevocation(grant_id=grant, revoked_at=revoked, revoked_by="t",
                                              reason="placeholder"))  # fmt: skip
            if owner == "vsp":
                truth.consents["recorded"].append(recorded)
                if revoked is not None:
                    truth.consents["withdrawn"].append(revoked)
                if revoked is None or revoked > expires:
                    truth.consents["expired"].append(expires)
        await session.flush()
        flows = [(s, r) for s, r, n in FLOWS for _ in range(n)] + [("vsp", "unrelated")] * 5
        for sender, recipient in flows:
            created = _at(rng)
            rid = uuid.uuid4()
            events = [(created, "sent")]
            reason = None
            roll = rng.random()
            if roll < 0.8:
                delivered = created + timedelta(hours=rng.randrange(1, 24 * 20))
                events.append((delivered, "delivered"))
                later = delivered + timedelta(hours=rng.randrange(1, 24 * 30))
                if roll < 0.5:
                    events.append((later, "accepted"))
                    if roll < 0.2:
                        events.append((later + timedelta(days=rng.randrange(1, 60)), "closed"))
                elif roll < 0.7:
                    reason = rng.choice(["no_capacity", "not_eligible", "other"])
                    events.append((later, "declined"))
            elif roll < 0.9:
                events.append((created + timedelta(days=rng.randrange(1, 40)), "withdrawn"))
            session.add(Referral(
                id=rid, sender_org_id=orgs[sender], recipient_org_id=orgs[recipient],
                subject_id=subject_id, consent_id=consent_ids[0], purpose="services_referral",
                services_requested=[], urgency="routine", status=events[-1][1],
                envelope_id=hashlib.sha256(rid.bytes).hexdigest(), envelope_header={},
                signature=b"s", sender_roles=["caseworker"], created_by="t", created_at=created,
                updated_at=events[-1][0], delivered_at=events[1][0] if len(events) > 1 and
                events[1][1] == "delivered" else None, request_sha256="0" * 64,
                decline_reason=reason,
            ))  # fmt: skip
            await session.flush()
            for at, event in events:
                session.add(ReferralEvent(referral_id=rid, at=at, event=event, actor="t",
                                          actor_org_id=orgs[sender]))  # fmt: skip
            if recipient == "unrelated":
                truth.outside_referrals.append(created)
            else:
                truth.referrals.append((created, sender, recipient, events, reason))
                truth.referral_ids.append(rid)
        for i in range(70):
            created = _at(rng)
            basis = BASES[min(int(rng.expovariate(1.0)), 4)]
            outcome = rng.choice(OUTCOMES) if i % 5 else "allowed"
            responded = (
                created + timedelta(days=rng.randrange(1, 30)) if rng.random() < 0.85 else None
            )
            status = (
                "open" if responded is None else rng.choice(["released", "released", "refused"])
            )
            qid = uuid.uuid4()
            session.add(RecordsRequest(
                id=qid, requester_org_id=orgs["police"], holder_org_id=orgs["vsp"],
                requested_by="t", subject_ref="REF", categories=["contact"],
                purpose="investigation", legal_basis=basis, justification="placeholder",
                preliminary=[{"category": "contact", "outcome": outcome, "policies": []}],
                policy_version="v", status=status, created_at=created, updated_at=created,
                responded_at=responded,
            ))  # fmt: skip
            await session.flush()
            truth.request_ids.append(qid)
            answer = "refused" if status == "refused" else "released"
            truth.requests.append((created, basis, outcome, responded, answer))
            if status == "released":
                due = created + timedelta(days=5)
                done = (
                    created + timedelta(days=rng.randrange(1, 12)) if rng.random() < 0.7 else None
                )
                session.add(Obligation(id=uuid.uuid4(), holder_org_id=orgs["vsp"], request_id=qid,
                                       kind="notify_survivor", created_at=created, due_at=due,
                                       done_at=done))  # fmt: skip
                truth.duties["obligations"].append((created, due, done))
                if basis == "emergency" or i % 3 == 0:
                    rdue = created + timedelta(hours=72)
                    closed = (
                        created + timedelta(hours=rng.randrange(1, 200))
                        if rng.random() < 0.6
                        else None
                    )
                    session.add(Review(id=uuid.uuid4(), holder_org_id=orgs["vsp"], request_id=qid,
                                       released_by="t", created_at=created, due_at=rdue,
                                       closed_at=closed))  # fmt: skip
                    truth.duties["reviews"].append((created, rdue, closed))
        await session.commit()
    # Disclosures: real audit entries, appended in time order.
    times = sorted(_at(rng) for _ in range(90))
    actor = Principal(subject="t", org_id=orgs["vsp"], sector=Sector.victim_services,
                      roles=frozenset({Role.caseworker}))  # fmt: skip
    async with world.app.state.sessionmaker() as session:
        for k, at in enumerate(times):
            basis = "consent" if k % 3 else rng.choice(BASES)
            to = "shelter" if k % 7 else "unrelated"
            details: dict[str, Any] = {"recipient_org": str(orgs[to]), "legal_basis": basis}
            await append(session, AuditEvent("disclosure", actor, subject_ref=str(subject_id),
                                             counterpart_org_id=orgs["vsp"], details=details),
                         clock=FrozenClock(at))  # fmt: skip
            if to == "unrelated":
                truth.outside_disclosures.append(at)
            else:
                truth.disclosures.append((at, basis))
        await session.commit()
    return collab_id, truth
