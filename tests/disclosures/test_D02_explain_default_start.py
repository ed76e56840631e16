"""Explain answers as a real release at that instant would (SECURITY-TESTS D02, the
`valid_from` boundary; issue 22 item 7).

A hypothetical consent without `valid_from` starts when the decision is made, as
a real consent recorded without a start is live at once. Explain used to read the
clock twice, the decision instant first and the consent's default start after it,
so on a clock that moves the grant began one tick after the decision and never
counted. The clock here moves a microsecond on every reading, as a real one does."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from service.auth.principals import Role
from service.clock import FrozenClock
from tests.referrals.support import PLANTED_CATEGORIES, Kit


class TickingClock(FrozenClock):
    """Moves forward one microsecond each time it is read."""

    def now(self) -> datetime:
        at = super().now()
        self.advance(1e-6)
        return at


@pytest.fixture
def clock() -> FrozenClock:
    return TickingClock(datetime.fromisoformat("2026-11-22T12:00:00+00:00"))


async def explain(kit: Kit, categories: list[str], **consent: Any) -> dict[str, str]:
    shelter = str(kit.world.orgs["shelter"])
    body = {
        "recipient_org_id": shelter,
        "purpose": "services_referral",
        "legal_basis": "consent",
        "categories": categories,
        "consent": {
            "recipients": [shelter],
            "purposes": ["services_referral"],
            "categories": categories,
            "expires_at": (kit.world.clock.now() + timedelta(days=30)).isoformat(),
            **consent,
        },
    }
    r = await kit.client.post(
        "/v1/policies/explain", json=body, headers=kit.staff("vsp", Role.caseworker)
    )
    assert r.status_code == 200, r.text
    return {d["category"]: d["decision"] for d in r.json()["decisions"]}


async def test_D02_explain_without_valid_from_agrees_with_a_real_release(kit: Kit) -> None:
    # The kit's consent was recorded without valid_from, as the hypothetical one is.
    assert kit.consent["valid_from"] == kit.consent["recorded_at"]
    categories = sorted(set(PLANTED_CATEGORIES.values()))
    dry_run = await explain(kit, categories)

    referral = await kit.send()
    delivered = await kit.deliver(referral["id"])
    assert delivered.status_code == 200, delivered.text
    released = {f["category"] for f in delivered.json()["released"]}
    withheld = {f["category"] for f in delivered.json()["withheld"]}
    real = dict.fromkeys(released, "allow") | dict.fromkeys(withheld, "deny")

    assert real == dry_run
    assert set(dry_run.values()) == {"allow"}  # the agreement and consent cover all four


async def test_D02_explain_with_a_future_valid_from_is_not_live(kit: Kit) -> None:
    later = (kit.world.clock.now() + timedelta(hours=1)).isoformat()
    assert set((await explain(kit, ["contact"], valid_from=later)).values()) == {"deny"}
