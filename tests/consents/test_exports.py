"""Signed consent receipts (verified offline, any change fails, E17 key separation)
and the FHIR R4 Consent export (validated with fhir.resources, not by eye)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from accord_client.receipts import ReceiptError, verify_receipt
from fhir.resources.R4B.consent import Consent

from service.auth.principals import Role
from tests.support.databases import TestDatabase
from tests.support.factories import new_consent
from tests.support.world import World


async def _consent(client: httpx.AsyncClient, world: World) -> dict[str, Any]:
    _, consent = await new_consent(
        client,
        world,
        purposes=["services_referral", "case_coordination"],
        fields=["phone"],
        method="electronic",
        language="en",
    )
    return consent


def _mutations(receipt: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for change in (
        lambda r: r["receipt"].update(piiPrincipalId="someone-else"),
        lambda r: r["receipt"]["services"][0]["purposes"][0]["piiCategory"].append("health"),
        lambda r: r["receipt"]["accord"].update(expires_at="2099-01-01T00:00:00+00:00"),
        lambda r: r["signature"].update(value=r["signature"]["value"][:-4] + "AAA="),
    ):
        mutated = copy.deepcopy(receipt)
        change(mutated)
        out.append(mutated)
    return out


async def test_receipt_verifies_offline_and_any_change_fails(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    consent = await _consent(client, world)
    r = await client.get(
        f"/v1/consents/{consent['id']}/receipt", headers=world.headers("vsp", Role.supervisor)
    )
    assert r.status_code == 200
    signed = r.json()
    key = app.state.keyring.receipt.public_key
    receipt = verify_receipt(signed, public_key=key)
    assert receipt["consentReceiptID"] == consent["id"]
    assert receipt["accord"]["policy_set_version"] == app.state.policy_engine.version
    for mutated in _mutations(signed):
        with pytest.raises(ReceiptError):
            verify_receipt(mutated, public_key=key)
    # E17: the checkpoint key is another key; a receipt never verifies with it.
    assert app.state.keyring.checkpoint.public_key != key
    with pytest.raises(ReceiptError):
        verify_receipt(signed, public_key=app.state.keyring.checkpoint.public_key)


async def test_fhir_export_is_a_valid_r4_consent(client: httpx.AsyncClient, world: World) -> None:
    consent = await _consent(client, world)
    headers = world.headers("vsp", Role.caseworker)
    r = await client.get(f"/v1/consents/{consent['id']}/fhir", headers=headers)
    assert r.status_code == 200
    resource = Consent.model_validate(r.json())
    assert resource.status == "active"
    assert resource.provision is not None
    assert resource.provision.type == "permit"
    assert [c.code for c in resource.provision.class_fhir or []] == ["contact", "needs"]
    assert {p.code for p in resource.provision.purpose or []} == {
        "services_referral",
        "case_coordination",
    }
    await client.post(f"/v1/consents/{consent['id']}/revoke", json={"reason": "x"}, headers=headers)
    revoked = await client.get(f"/v1/consents/{consent['id']}/fhir", headers=headers)
    assert Consent.model_validate(revoked.json()).status == "inactive"


@pytest.mark.parametrize("kind", ["receipt", "fhir"])
async def test_B04_exports_of_another_organization_are_404(
    client: httpx.AsyncClient, world: World, db: TestDatabase, kind: str
) -> None:
    consent = await _consent(client, world)
    before = db.dump()
    r = await client.get(
        f"/v1/consents/{consent['id']}/{kind}", headers=world.headers("shelter", Role.caseworker)
    )
    assert r.status_code == 404
    assert db.dump() == before
