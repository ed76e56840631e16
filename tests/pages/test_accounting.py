"""Issue 20: "Who received information" shows every disclosure the API's accounting
shows, in plain words, and honours a law enforcement agency's suspension exactly
as the API does: hidden while it runs, shown again once it ends. Both engines."""

from __future__ import annotations

from datetime import timedelta

import httpx

from service.auth.principals import Role
from tests.pages.support import Browser, issue_link
from tests.records_requests.support import DOC, VALUES, make_request_kit
from tests.support.world import World

POLICE = "police org"


async def _accounted(client: httpx.AsyncClient, world: World, subject: str) -> int:
    r = await client.get(
        f"/v1/subjects/{subject}/disclosures", headers=world.headers("vsp", Role.caseworker)
    )
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


async def test_a_suspended_disclosure_is_hidden_then_shown_again(
    client: httpx.AsyncClient, world: World, browser: Browser
) -> None:
    kit = await make_request_kit(client, world)
    made = await kit.made(
        legal_basis="court_order",
        legal_reference="2026-CR-42",
        document_sha256=DOC,
        categories=["location"],
    )
    subject = await kit.subject()
    envelope = kit.seal(made, subject, {"location": VALUES["location"]})
    assert (
        await kit.respond(made["id"], {"decision": "release", "envelope": envelope})
    ).status_code == 200
    assert (await kit.deliver(made["id"])).status_code == 200
    link = await issue_link(client, world, subject, lifetime_seconds=86400)
    assert (await browser.open(link)).status_code == 303

    shown = (await browser.get("/s/disclosures?lang=en")).text
    assert POLICE in shown
    assert "Where you are: where you live now or the address of your shelter" in shown
    assert "A judge ordered it" in shown
    assert "For a police investigation of a crime" in shown
    assert await _accounted(client, world, subject) == 1

    until = world.clock.now() + timedelta(hours=12)
    r = await client.post(
        f"/v1/records-requests/{made['id']}/suspension",
        json={"document_sha256": DOC, "until": until.isoformat()},
        headers=kit.staff("police", Role.investigator),
    )
    assert r.status_code == 201, r.text
    hidden = (await browser.get("/s/disclosures")).text
    assert POLICE not in hidden
    assert "No information about you has been released." in hidden
    assert await _accounted(client, world, subject) == 0

    world.clock.advance(timedelta(hours=12).total_seconds())
    again = (await browser.get("/s/disclosures")).text
    assert POLICE in again
    assert await _accounted(client, world, subject) == 1


async def test_released_and_held_back_kinds_are_named_in_plain_words(
    client: httpx.AsyncClient, world: World, browser: Browser
) -> None:
    from tests.referrals.support import make_kit

    kit = await make_kit(client, world)
    referral = await kit.send()
    await kit.forbid_contact()  # held back at delivery
    assert (await kit.deliver(referral["id"])).status_code == 200
    assert (await browser.open(await issue_link(client, world, kit.subject))).status_code == 303
    page = (await browser.get("/s/disclosures?lang=es")).text
    released, _, held_back = page.partition("Retenido (no se entregó)")
    assert "shelter org" in released
    assert "Quién es usted: su nombre, fecha de nacimiento y documentos de identidad" in released
    assert "Cómo comunicarse con usted" in held_back
    assert "Cómo comunicarse con usted" not in released
    assert "Usted dio su permiso" in page
    for code in ("identity", "contact", "services_referral", "consent"):
        assert f">{code}<" not in page  # codes are never shown as they are
