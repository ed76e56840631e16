"""The outbox and the feed (issue 19; DESIGN.md guarantee 8), on both engines.

- Every state change writes its events in its own transaction: with a fault at
  each statement of a change, either the change and its events are both there or
  neither is.
- Each organization's feed has its own numbers, 1, 2, 3, ... in commit order, and
  carries only events about objects it may see.
- Event data holds identifiers, states, times and codes: never a planted field
  value, never the free text a caseworker typed.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.auth.principals import Role
from service.events.catalog import EventType
from service.events.models import Event
from service.events.outbox import UnsafeEventDataError, check_data
from service.records_requests.overdue import announce_overdue
from service.settings import Settings
from tests.events.support import feed
from tests.records_requests.support import RequestKit, make_request_kit
from tests.referrals.support import CATEGORIES, PLANTED, Kit, make_kit
from tests.support.databases import TestDatabase
from tests.support.factories import new_consent
from tests.support.faults import StatementFaults, statement_faults
from tests.support.world import World

LIMIT = 80


@pytest.fixture
async def kit(client: httpx.AsyncClient, world: World) -> Kit:
    return await make_kit(client, world)


@pytest.fixture
def faults(app: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    with statement_faults(app.state.engine, monkeypatch) as injected:
        yield injected


def about(items: list[dict[str, Any]], object_id: str) -> list[str]:
    return [i["type"] for i in items if i["object_id"] == object_id]


async def test_a_referral_story_reaches_both_parties_in_order_and_no_one_else(kit: Kit) -> None:
    referral = await kit.send()
    rid = referral["id"]
    assert (await kit.deliver(rid)).status_code == 200
    assert (await kit.deliver(rid)).status_code == 200  # a second delivery changes no state
    r = await kit.client.post(f"/v1/referrals/{rid}/accept", headers=kit.staff("shelter"))
    assert r.status_code == 200, r.text
    r = await kit.client.post(
        f"/v1/referrals/{rid}/close",
        json={"outcome": "services_provided"},
        headers=kit.staff("shelter"),
    )
    assert r.status_code == 200, r.text
    story = ["referral.sent", "referral.delivered", "referral.accepted", "referral.closed"]
    for org in ("vsp", "shelter"):
        items = await feed(kit.client, kit.world, org)
        assert about(items, rid) == story
        # The organization's own numbering: 1, 2, 3, ... without gaps.
        assert [i["seq"] for i in items] == list(range(1, len(items) + 1))
        closed = next(i for i in items if i["type"] == "referral.closed")
        assert closed["data"] == {
            "referral_id": rid,
            "status": "closed",
            "sender_org": str(kit.world.orgs["vsp"]),
            "recipient_org": str(kit.world.orgs["shelter"]),
            "outcome": "services_provided",
        }
    for org in ("police", "unrelated", "oversight"):
        assert about(await feed(kit.client, kit.world, org), rid) == []


async def test_the_feed_reads_on_from_a_cursor_and_changes_nothing(
    kit: Kit, db: TestDatabase
) -> None:
    first = await kit.send()
    items = await feed(kit.client, kit.world, "shelter")
    last = items[-1]["seq"]
    before = db.dump()
    again = await kit.client.get(f"/v1/events?after={last}", headers=kit.staff("shelter"))
    assert again.json() == {"items": [], "next_after": last}
    assert db.dump() == before  # reading is idempotent
    second = await kit.send()
    newer = await feed(kit.client, kit.world, "shelter", after=last)
    assert [(i["type"], i["object_id"]) for i in newer] == [("referral.sent", second["id"])]
    assert newer[0]["seq"] == last + 1
    assert first["id"] != second["id"]


async def test_declined_referral_event_carries_the_reason_code(kit: Kit) -> None:
    referral = await kit.send()
    r = await kit.client.post(
        f"/v1/referrals/{referral['id']}/decline",
        json={"reason": "no_capacity"},
        headers=kit.staff("shelter"),
    )
    assert r.status_code == 200, r.text
    items = await feed(kit.client, kit.world, "vsp")
    declined = [i for i in items if i["type"] == "referral.declined"]
    assert [d["data"]["reason"] for d in declined] == ["no_capacity"]


async def test_a_change_and_its_events_commit_together_at_every_statement(
    kit: Kit, db: TestDatabase, faults: StatementFaults
) -> None:
    """A fault at statement n of a referral's send: a 503 and neither the referral
    nor any event; once no fault fires, both."""
    before_events = len(await feed(kit.client, kit.world, "shelter"))
    before = db.dump()
    envelope_values = {"full_name": PLANTED["full_name"]}
    for n in range(1, LIMIT):
        faults.arm(n)
        r = await kit.client.post(
            "/v1/referrals", json=kit.body(kit.seal(envelope_values)), headers=kit.staff("vsp")
        )
        if not faults.fired:
            assert r.status_code == 201, r.text
            faults.arm(None)
            break
        assert r.status_code == 503, (n, r.text)
        assert db.dump() == before, f"a fault at statement {n} left a change"
    else:
        pytest.fail(f"the send still faulted after {LIMIT} statements")
    assert n > 3  # the events' statements were among those faulted
    items = await feed(kit.client, kit.world, "shelter")
    assert len(items) == before_events + 1
    assert items[-1]["type"] == "referral.sent"
    assert items[-1]["object_id"] == r.json()["id"]


async def test_consent_withdrawn_tells_each_holder_only_what_it_holds(
    kit: Kit, db: TestDatabase
) -> None:
    delivered = await kit.send()
    assert (await kit.deliver(delivered["id"])).status_code == 200
    undelivered = await kit.send()  # never received: the shelter holds nothing of it
    # Another grant of the same subject, to the shelter too: not withdrawn.
    _, other = await new_consent(
        kit.client,
        kit.world,
        subject=kit.subject,
        recipients=[str(kit.world.orgs["shelter"])],
        categories=CATEGORIES,
    )
    r = await kit.client.post(
        "/v1/referrals",
        json=kit.body(kit.seal(consent_id=str(other["id"])), consent_id=str(other["id"])),
        headers=kit.staff("vsp"),
    )
    assert r.status_code == 201, r.text
    elsewhere = r.json()
    assert (await kit.deliver(elsewhere["id"])).status_code == 200  # held under the other grant
    r = await kit.client.post(
        f"/v1/consents/{kit.consent['id']}/revoke",
        json={"reason": "survivor asked to stop sharing planted-reason-text"},
        headers=kit.staff("vsp"),
    )
    assert r.status_code == 200, r.text

    def withdrawn(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [i for i in items if i["type"] == "consent.withdrawn"]

    shelter = withdrawn(await feed(kit.client, kit.world, "shelter"))
    assert len(shelter) == 1
    data = shelter[0]["data"]
    assert data["referral_ids"] == [delivered["id"]]
    assert undelivered["id"] not in data["referral_ids"]
    assert elsewhere["id"] not in data["referral_ids"]
    assert data["request_ids"] == []
    assert data["action"] == "destroy_copies"
    assert data["consent_id"] == str(kit.consent["id"])
    owner = withdrawn(await feed(kit.client, kit.world, "vsp"))
    assert [o["data"]["referral_ids"] for o in owner] == [[delivered["id"]]]
    for org in ("police", "unrelated"):
        assert withdrawn(await feed(kit.client, kit.world, org)) == []


async def test_no_event_holds_a_field_value_or_free_text(kit: Kit, app: Any) -> None:
    referral = await kit.send()  # every planted value, sealed
    assert (await kit.deliver(referral["id"])).status_code == 200
    r = await kit.client.post(
        f"/v1/consents/{kit.consent['id']}/revoke",
        json={"reason": "Planted revoke reason: the survivor moved to Ωmega street"},
        headers=kit.staff("vsp"),
    )
    assert r.status_code == 200, r.text
    async with app.state.sessionmaker() as session:
        rows = (await session.scalars(select(Event))).all()
    assert rows
    stored = json.dumps([r.data for r in rows], ensure_ascii=False)
    for value in PLANTED.values():
        assert value not in stored
        assert value.split()[0] not in stored
    assert "Planted revoke reason" not in stored
    assert "Ωmega" not in stored
    for org in ("vsp", "shelter"):
        text = json.dumps(await feed(kit.client, kit.world, org), ensure_ascii=False)
        assert "Ωmega" not in text
        assert PLANTED["phone"] not in text


@pytest.mark.parametrize(
    "data",
    [
        {"note": "the survivor lives at 12 Elm Street"},
        {"name": "Zoë"},
        {"id": "not-a-uuid but words"},
        {"ids": ["a b"]},
        {"Bad-Key": "x"},
        {"nested": {"a": 1}},
        {"value": 1.5},
    ],
)
def test_event_data_refuses_anything_but_identifiers_and_codes(data: dict[str, Any]) -> None:
    with pytest.raises(UnsafeEventDataError):
        check_data(data)


def test_event_data_takes_identifiers_times_codes_numbers() -> None:
    data = {
        "referral_id": str(uuid.uuid4()),
        "at": "2026-12-07T05:00:00.123456+00:00",
        "status": "delivered",
        "count": 3,
        "done": False,
        "none": None,
        "ids": [str(uuid.uuid4())],
    }
    assert check_data(data) == data


@pytest.fixture
async def request_kit(client: httpx.AsyncClient, world: World) -> RequestKit:
    return await make_request_kit(client, world)


async def test_a_court_ordered_release_announces_its_duty_due_then_overdue_once(
    request_kit: RequestKit, app: Any
) -> None:
    kit = request_kit
    made = await kit.made(
        legal_basis="court_order",
        legal_reference="2026-CR-42",
        document_sha256="a" * 64,
        categories=["location"],
    )
    subject = await kit.subject()
    envelope = kit.seal(made, subject, {"location": "planted location value"})
    assert (await kit.respond(made["id"], {"decision": "release", "envelope": envelope})).is_success
    assert (await kit.deliver(made["id"])).status_code == 200
    vsp = await feed(kit.client, kit.world, "vsp")
    police = await feed(kit.client, kit.world, "police")
    assert about(vsp, made["id"]) == ["records_request.created", "records_request.responded"]
    assert about(police, made["id"]) == about(vsp, made["id"])
    due = [i for i in vsp if i["type"] == EventType.obligation_due.value]
    assert len(due) == 1
    assert due[0]["data"]["request_id"] == made["id"]
    assert [i for i in police if i["type"].startswith("obligation.")] == []  # the holder's duty
    factory = app.state.sessionmaker
    assert await announce_overdue(factory, clock=kit.world.clock) == 0  # not yet due
    kit.world.clock.advance(Settings().obligation_notify_days * 86400)
    assert await announce_overdue(factory, clock=kit.world.clock) == 1
    assert await announce_overdue(factory, clock=kit.world.clock) == 0  # announced once
    overdue = [
        i for i in await feed(kit.client, kit.world, "vsp") if i["type"] == "obligation.overdue"
    ]
    assert [o["object_id"] for o in overdue] == [due[0]["object_id"]]


async def test_an_emergency_release_announces_its_review_due_then_overdue_once(
    request_kit: RequestKit, app: Any
) -> None:
    kit = request_kit
    made = await kit.made(
        purpose="emergency_contact", legal_basis="emergency", categories=["location"]
    )
    subject = await kit.subject()
    envelope = kit.seal(made, subject, {"location": "planted location value"})
    r = await kit.respond(
        made["id"], {"decision": "release", "envelope": envelope}, Role.supervisor, "sam"
    )
    assert r.status_code == 200, r.text
    due = [i for i in await feed(kit.client, kit.world, "vsp") if i["type"] == "review.due"]
    assert len(due) == 1
    assert due[0]["data"]["request_id"] == made["id"]
    police = await feed(kit.client, kit.world, "police")
    assert [i for i in police if i["type"].startswith("review.")] == []  # the holder's duty
    factory = app.state.sessionmaker
    assert await announce_overdue(factory, clock=kit.world.clock) == 0
    kit.world.clock.advance(Settings().review_due_hours * 3600)
    assert await announce_overdue(factory, clock=kit.world.clock) == 1
    assert await announce_overdue(factory, clock=kit.world.clock) == 0
    overdue = [i for i in await feed(kit.client, kit.world, "vsp") if i["type"] == "review.overdue"]
    assert [o["object_id"] for o in overdue] == [due[0]["object_id"]]
