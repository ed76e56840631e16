"""P05 (a row this project adds, docs/threat-model.md "Confidential organizations";
issue 22, item 17): an organization that marks itself confidential is named only to
members of its collaborations, to oversight and to itself. Anyone else does not find
it in the directory (nor with its filters), gets the 404 of a random id for its
entry and keys, and where a view names it (the accounting of disclosures) sees a
placeholder name, its sector and an opaque id that is stable for one viewer and
differs between viewers. Both engines."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from service.auth.principals import Role
from service.organizations import visibility
from tests.referrals.support import make_kit
from tests.support.world import World


def _names(page: httpx.Response) -> dict[str, str]:
    assert page.status_code == 200, page.text
    return {item["id"]: item["name"] for item in page.json()["items"]}


def _problem(r: httpx.Response) -> dict[str, Any]:
    return {k: v for k, v in r.json().items() if k != "request_id"}


async def _directory(client: httpx.AsyncClient, headers: dict[str, str], query: str = "") -> Any:
    return _names(await client.get(f"/v1/organizations?limit=200{query}", headers=headers))


async def test_P05_a_confidential_organization_is_named_only_to_its_partners(
    client: httpx.AsyncClient, world: World
) -> None:
    shelter = str(world.orgs["shelter"])
    admin = world.headers("shelter", Role.org_admin)
    # Only its own admin may mark it; others are refused and nothing changes.
    for who, status in (
        (world.headers("shelter", Role.caseworker), 403),
        (world.headers("vsp", Role.org_admin), 404),
        (world.headers("platform", Role.platform_admin), 404),
    ):
        r = await client.put(
            f"/v1/organizations/{shelter}/confidentiality", json={"confidential": True}, headers=who
        )
        assert r.status_code == status, r.text
    assert shelter in await _directory(client, world.headers("unrelated", Role.caseworker))
    r = await client.put(
        f"/v1/organizations/{shelter}/confidentiality", json={"confidential": 1}, headers=admin
    )
    assert r.status_code == 422
    r = await client.put(
        f"/v1/organizations/{shelter}/confidentiality", json={"confidential": True}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["confidential"] is True
    await client.put(
        f"/v1/organizations/{shelter}/availability",
        json={
            "accepting_referrals": True,
            "hours": "24/7",
            "languages": ["en"],
            "services": ["emergency_shelter"],
            "populations": ["women"],
        },
        headers=admin,
    )
    # Partners (collaboration members), oversight and itself: by name.
    for viewer in ("vsp", "police", "oversight", "shelter"):
        headers = world.headers(viewer, Role.caseworker if viewer != "oversight" else Role.auditor)
        assert (await _directory(client, headers))[shelter] == "shelter org"
        r = await client.get(f"/v1/organizations/{shelter}", headers=headers)
        assert r.status_code == 200
        assert r.json()["name"] == "shelter org"
    # Anyone else: not in the directory, not with a filter, a random id's 404.
    outsider = world.headers("unrelated", Role.caseworker)
    listed = await _directory(client, outsider)
    assert shelter not in listed
    assert "shelter org" not in listed.values()
    assert str(world.orgs["vsp"]) in listed
    for query in ("&sector=shelter", "&service=emergency_shelter", "&accepting=true"):
        assert shelter not in await _directory(client, outsider, query)
    random_id = uuid.uuid4()
    for path in ("", "/keys"):
        hidden = await client.get(f"/v1/organizations/{shelter}{path}", headers=outsider)
        unknown = await client.get(f"/v1/organizations/{random_id}{path}", headers=outsider)
        assert hidden.status_code == unknown.status_code == 404
        assert _problem(hidden) == _problem(unknown)
    # Unmarked again: everyone sees it.
    r = await client.put(
        f"/v1/organizations/{shelter}/confidentiality", json={"confidential": False}, headers=admin
    )
    assert r.status_code == 200
    assert shelter in await _directory(client, outsider)


async def test_P05_the_accounting_names_a_former_partner_by_an_opaque_id(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    kit = await make_kit(client, world)
    referral = await kit.send()
    assert (await kit.deliver(referral["id"])).status_code == 200
    shelter = world.orgs["shelter"]
    r = await client.put(
        f"/v1/organizations/{shelter}/confidentiality",
        json={"confidential": True},
        headers=world.headers("shelter", Role.org_admin),
    )
    assert r.status_code == 200
    staff = world.headers("vsp", Role.caseworker)
    path = f"/v1/subjects/{kit.subject}/disclosures"
    shown = (await client.get(path, headers=staff)).json()["items"]
    assert [i["recipient_name"] for i in shown] == ["shelter org"]  # still partners
    # The sender leaves the collaboration: the recipient is now hidden from it.
    r = await client.delete(
        f"/v1/collaborations/{world.collaboration_id}/members/{world.orgs['vsp']}",
        headers=world.headers("platform", Role.platform_admin),
    )
    assert r.status_code == 204, r.text
    first = (await client.get(path, headers=staff)).json()["items"]
    again = (await client.get(path, headers=staff)).json()["items"]
    assert [i["recipient_name"] for i in first] == [visibility.CONFIDENTIAL_NAME]
    opaque = first[0]["recipient_org_id"]
    assert opaque not in (None, str(shelter))
    assert again[0]["recipient_org_id"] == opaque
    assert "shelter org" not in str(first)
    # Another viewer would see another pseudonym; none is the real id.
    key = visibility.pseudonym_key(app.state.keyring.cursor_secret)
    ids = {
        visibility.opaque_id(key, visibility.Viewer(world.orgs[v]), shelter)
        for v in ("vsp", "unrelated", "research")
    }
    assert len(ids) == 3
    assert shelter not in ids
    assert str(visibility.opaque_id(key, visibility.Viewer(world.orgs["vsp"]), shelter)) == opaque
