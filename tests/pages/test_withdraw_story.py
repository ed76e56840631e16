"""Issue 20, the story without a browser: a caseworker creates a link; the survivor
opens it; sees the consent with organization names and plain words (in Spanish, the
language the consent was recorded in); sees the shelter's delivery in the
accounting; withdraws through the two forms; the shelter's next deliveries withhold
every field; the pages show the withdrawal and its signed receipt. Both engines."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from accord_client.receipts import verify_receipt
from sqlalchemy import select

from service.audit.models import AuditEntry
from tests.pages.support import CSRF, Browser, issue_link
from tests.referrals.support import PLANTED, Kit, make_kit
from tests.support.world import World

FIELDS = sorted(PLANTED)


async def _delivered(kit: Kit, referral_id: str) -> dict[str, Any]:
    r = await kit.deliver(referral_id)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_the_survivor_withdraws_on_the_page_and_the_next_delivery_withholds_everything(
    app: Any, client: httpx.AsyncClient, world: World, browser: Browser
) -> None:
    kit = await make_kit(client, world)
    first = await kit.send()
    second = await kit.send()  # sent under the same consent, not delivered yet
    assert sorted(f["name"] for f in (await _delivered(kit, first["id"]))["released"]) == FIELDS

    link = await issue_link(client, world, kit.subject)
    assert (await browser.open(link)).status_code == 303
    consents = await browser.get("/s/consents")
    assert '<html lang="es"' in consents.text  # the consent was recorded in es-MX
    for words in (
        "shelter org",
        "(un refugio)",
        "Para enviarle a otros servicios que pueden ayudarle",
        "Quién es usted: su nombre, fecha de nacimiento y documentos de identidad",
        "Estado: Vigente",
        "Por escrito, en un formulario firmado",
    ):
        assert words in consents.text, words
    accounting = await browser.get("/s/disclosures")
    assert "shelter org" in accounting.text
    assert "Usted dio su permiso" in accounting.text

    token = CSRF.search(consents.text)
    assert token is not None
    consent_id = str(kit.consent["id"])
    asked = await browser.post(f"/s/consents/{consent_id}/withdraw", {"csrf": token[1]})
    assert asked.status_code == 200
    for promise in (
        "Desde ahora, no se entregará más información con este permiso.",
        "La información que ya se entregó no se puede recuperar.",
        "se le avisará que usted retiró su permiso",
        "Nunca tiene que dar permiso para recibir servicios.",
    ):
        assert promise in asked.text, promise
    confirm = CSRF.search(asked.text)
    assert confirm is not None
    done = await browser.post(f"/s/consents/{consent_id}/withdraw/confirm", {"csrf": confirm[1]})
    assert done.status_code == 303
    assert done.headers["location"] == f"/s/consents/{consent_id}/withdrawn"
    result = await browser.get(done.headers["location"])
    assert result.status_code == 200
    assert "Permiso retirado" in result.text
    assert consent_id in result.text
    receipt_key = app.state.keyring.receipt
    assert f'href="/s/consents/{consent_id}/receipt"' in result.text

    # The shelter's next deliveries: nothing is released, every field is withheld.
    for referral in (first, second):
        again = await _delivered(kit, referral["id"])
        assert again["released"] == []
        assert sorted(w["name"] for w in again["withheld"]) == FIELDS

    # The pages show the withdrawal; the form is gone; the receipt says so, signed.
    after = (await browser.get("/s/consents")).text
    assert "Estado: Retirado" in after
    assert "/withdraw" not in after
    receipt = await browser.get(f"/s/consents/{consent_id}/receipt")
    signed = json.loads(receipt.text)
    verified = verify_receipt(signed, public_key=receipt_key.public_key)
    assert verified["accord"]["revoked_at"] is not None
    assert signed["signature"]["public_key"] == base64.b64encode(receipt_key.public_key).decode()
    async with app.state.sessionmaker() as session:
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all()
    revoked = [json.loads(e.body) for e in entries if e.action == "consent.revoked"]
    assert len(revoked) == 1
    assert revoked[0]["actor"]["principal"] == f"survivor-link:{link['id'].replace('-', '')}"
    # A second confirmation (a reload, a double tap) changes nothing and says the same.
    again = await browser.post(f"/s/consents/{consent_id}/withdraw/confirm", {"csrf": confirm[1]})
    assert again.status_code == 303
