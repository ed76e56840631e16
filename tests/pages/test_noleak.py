"""Issue 20, O-noleak on the pages: no planted field value (the server never has one)
and none of the free text staff wrote about the survivor (a caseworker's reason for
revoking, a law enforcement agency's justification, a holder's note refusing it;
referrals carry codes, not text) appears on any page, in any language, nor in the receipt;
nor does the link's code or token. Both engines."""

from __future__ import annotations

import base64
import html

import httpx

from service.auth.principals import Role
from tests.pages.support import CSRF, Browser, code_of, issue_link
from tests.records_requests.support import DOC, make_request_kit
from tests.referrals.support import PLANTED, make_kit
from tests.support.factories import new_consent
from tests.support.world import World

FREE_TEXT = {
    "revocation": "PLANTED-revocation-reason: she told me her cousin lives at 12 Elm",
    "justification": "PLANTED-justification: witness in case 77, lives near the depot",
    "note": "PLANTED-note: refusing, counsel advised",
}


def _forms(value: str) -> list[str]:
    raw = value.encode("utf-8")
    return [
        value,
        html.escape(value),
        base64.b64encode(raw).decode(),
        raw.hex(),
        value.encode("utf-16-le").decode("latin-1"),
    ]


async def _plant(client: httpx.AsyncClient, world: World) -> str:
    """A survivor whose organizations wrote free text about them everywhere they can."""
    kit = await make_kit(client, world)
    staff = world.headers("vsp", Role.caseworker)
    _, earlier = await new_consent(client, world, kit.subject)
    r = await client.post(
        f"/v1/consents/{earlier['id']}/revoke",
        json={"reason": FREE_TEXT["revocation"]},
        headers=staff,
    )
    assert r.status_code == 200
    delivered = await kit.send()
    assert (await kit.deliver(delivered["id"])).status_code == 200
    requests = await make_request_kit(client, world)
    made = await requests.made(justification=FREE_TEXT["justification"], subject_ref=kit.subject)
    r = await requests.respond(made["id"], {"decision": "refuse", "note": FREE_TEXT["note"]})
    assert r.status_code == 200, r.text
    return kit.subject


async def test_no_value_and_no_staff_free_text_on_any_page_in_any_language(
    client: httpx.AsyncClient, world: World, browser: Browser
) -> None:
    subject = await _plant(client, world)
    link = await issue_link(client, world, subject)
    assert (await browser.open(link)).status_code == 303
    pages: list[str] = []
    for lang in ("en", "es", "vi"):
        for path in ("/s/consents", "/s/disclosures", "/s/help"):
            page = await browser.get(f"{path}?lang={lang}")
            assert page.status_code == 200
            pages.append(page.text)
    consents = await client.get(
        f"/v1/subjects/{subject}/consents", headers=world.headers("vsp", Role.caseworker)
    )
    ids = [c["id"] for c in consents.json()["items"]]
    for consent_id in ids:
        pages.append((await browser.get(f"/s/consents/{consent_id}/receipt")).text)
    live = [c["id"] for c in consents.json()["items"] if c["live"]]
    token = CSRF.search(pages[0])
    assert token is not None
    asked = await browser.post(f"/s/consents/{live[0]}/withdraw", {"csrf": token[1]})
    pages.append(asked.text)
    done = await browser.post(f"/s/consents/{live[0]}/withdraw/confirm", {"csrf": token[1]})
    pages.append((await browser.get(done.headers["location"])).text)
    everything = "\n".join(pages)
    assert "shelter org" in everything  # the pages did show the story
    secrets = [*PLANTED.values(), *FREE_TEXT.values(), code_of(link), link["token"]]
    for secret in secrets:
        for form in _forms(secret):
            assert form not in everything, secret
    # The reason the service records for the survivor's own withdrawal is not shown either.
    assert "PLANTED" not in everything
    assert DOC not in everything
