"""An activity counts for a collaboration when every organization in it was a
member at the time it began: an organization that joins mid-year brings its
later referrals and disclosures, never its earlier ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from service.collaborations.models import Membership
from service.reports.gather import gather
from service.reports.schemas import Granularity, Period
from tests.reports.conftest import Fed

JOINED = datetime(2026, 7, 1, tzinfo=UTC)


async def _sent_and_disclosed(fed: Fed, period: Period) -> tuple[int, int]:
    async with fed.world.app.state.sessionmaker() as session:
        facts = await gather(session, fed.collab_id, period, period.split(Granularity.quarter))
    sent = sum(n for _, _, _, n in facts.sent)
    disclosed = sum(n for _, _, n in facts.disclosures)
    return sent, disclosed


async def test_a_member_that_joins_brings_only_its_later_activity(fed: Fed) -> None:
    year = Period.parse("2026")
    before = await _sent_and_disclosed(fed, year)
    assert before == (len(fed.truth.referrals), len(fed.truth.disclosures))
    async with fed.world.app.state.sessionmaker() as session:
        session.add(
            Membership(id=uuid.uuid4(), collaboration_id=fed.collab_id,
                       org_id=fed.world.orgs["unrelated"], added_at=JOINED, added_by="test")
        )  # fmt: skip
        await session.commit()
    later_referrals = sum(1 for at in fed.truth.outside_referrals if at >= JOINED)
    later_disclosures = sum(1 for at in fed.truth.outside_disclosures if at >= JOINED)
    assert 0 < later_referrals < len(fed.truth.outside_referrals) or later_disclosures
    after = await _sent_and_disclosed(fed, year)
    assert after == (before[0] + later_referrals, before[1] + later_disclosures)
    # A quarter wholly after joining takes the fast path (no time test) and agrees.
    q4 = Period.parse("2026-Q4")
    in_q4 = sum(1 for at in fed.truth.outside_referrals if at >= q4.start)
    own_q4 = sum(1 for r in fed.truth.referrals if r[0] >= q4.start)
    assert (await _sent_and_disclosed(fed, q4))[0] == own_q4 + in_q4
