"""Issue 20 (O-same404, B04 for the pages): a session is bound to one subject. Another
survivor's consent, through every page that takes an id, answers exactly like a
random id (the same page, byte for byte) and changes nothing; so do malformed and
50 KB adversarial ids (G08).
Forms that refuse: no CSRF token, a wrong one, another origin, another site, a
JSON body, no session: 403 (or 415), nothing changed. Both engines."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.pages.support import SAME_ORIGIN_FORM, Browser, issue_link, new_browser
from tests.security.people import without_audit
from tests.support.databases import TestDatabase
from tests.support.factories import new_consent
from tests.support.world import World


async def _two_survivors(
    client: httpx.AsyncClient, world: World, browser: Browser
) -> tuple[str, str]:
    """The browser holds survivor A's session; (A's consent, B's consent)."""
    subject_a, consent_a = await new_consent(client, world)
    _subject_b, consent_b = await new_consent(client, world)
    assert (await browser.open(await issue_link(client, world, subject_a))).status_code == 303
    return consent_a["id"], consent_b["id"]


async def _live(client: httpx.AsyncClient, world: World, consent_id: str) -> bool:
    from service.auth.principals import Role

    r = await client.get(
        f"/v1/consents/{consent_id}", headers=world.headers("vsp", Role.caseworker)
    )
    assert r.status_code == 200
    live: bool = r.json()["live"]
    return live


@pytest.mark.security
async def test_another_survivors_consent_is_answered_like_a_random_id(
    client: httpx.AsyncClient, world: World, db: TestDatabase, browser: Browser
) -> None:
    mine, theirs = await _two_survivors(client, world, browser)
    token = await browser.csrf()
    before = db.dump()
    for kind in ("receipt", "withdrawn", "withdraw", "withdraw/confirm"):
        answers = {}
        for name, target in {
            "theirs": theirs,
            "random": str(uuid.uuid4()),
            "malformed": "not-a-uuid",
        }.items():
            path = f"/s/consents/{target}/{kind}"
            if kind.startswith("withdraw") and kind != "withdrawn":
                r = await browser.post(path, {"csrf": token})
            else:
                r = await browser.get(path)
            assert r.status_code == 404, (kind, name, r.text[:200])
            answers[name] = r.text
        assert len(set(answers.values())) == 1, kind
    # Nothing changed but the audit of each attempt, for the caseworker (P04).
    after = db.dump()
    assert without_audit(after) == without_audit(before)
    assert after.count("other_record") == before.count("other_record") + 12
    assert await _live(client, world, theirs)
    # The survivor's own still works through the same routes.
    assert (await browser.get(f"/s/consents/{mine}/receipt")).status_code == 200


@pytest.mark.security
@pytest.mark.parametrize(
    ("case", "body", "headers"),
    [
        ("no token", {}, SAME_ORIGIN_FORM),
        ("wrong token", {"csrf": "A" * 43}, SAME_ORIGIN_FORM),
        (
            "another origin",
            None,
            {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        ),
        ("another site, no origin", None, {"Sec-Fetch-Site": "cross-site"}),
        ("a sibling origin", None, {"Origin": "http://evil.accord.test"}),
        ("same site, other origin", None, {"Sec-Fetch-Site": "same-site", "Origin": "null"}),
    ],
)
async def test_a_form_without_its_token_or_from_elsewhere_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
    world: World,
    db: TestDatabase,
    browser: Browser,
    case: str,
    body: dict[str, str] | None,
    headers: dict[str, str],
) -> None:
    mine, _ = await _two_survivors(client, world, browser)
    token = await browser.csrf()
    data = {"csrf": token} if body is None else body
    before = db.dump()
    for step in ("withdraw", "withdraw/confirm"):
        r = await browser.post(f"/s/consents/{mine}/{step}", data, headers=headers)
        assert r.status_code == 403, (case, step)
        assert "This form was not sent" in r.text
    assert db.dump() == before
    assert await _live(client, world, mine)


async def test_another_sessions_token_is_refused(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, browser: Browser
) -> None:
    mine, theirs = await _two_survivors(client, world, browser)
    other = new_browser(app)
    async with other.http:
        subject_b = (await client.get(f"/v1/consents/{theirs}", headers=_staff(world))).json()[
            "subject_id"
        ]
        assert (await other.open(await issue_link(client, world, subject_b))).status_code == 303
        foreign = await other.csrf()
    before = db.dump()
    r = await browser.post(f"/s/consents/{mine}/withdraw/confirm", {"csrf": foreign})
    assert r.status_code == 403
    assert db.dump() == before


def _staff(world: World) -> dict[str, str]:
    from service.auth.principals import Role

    return world.headers("vsp", Role.caseworker)


async def test_forms_need_a_session_and_an_html_form_body(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, browser: Browser
) -> None:
    mine, _ = await _two_survivors(client, world, browser)
    token = await browser.csrf()
    before = db.dump()
    as_json = await browser.http.post(
        f"/s/consents/{mine}/withdraw/confirm", json={"csrf": token}, headers=SAME_ORIGIN_FORM
    )
    assert as_json.status_code == 415
    stranger = new_browser(app)
    async with stranger.http:
        r = await stranger.post(f"/s/consents/{mine}/withdraw/confirm", {"csrf": token})
    assert r.status_code == 403
    assert db.dump() == before
    assert await _live(client, world, mine)


async def test_a_form_from_the_page_itself_is_accepted(
    client: httpx.AsyncClient, world: World, browser: Browser
) -> None:
    """What browsers send with the pages' own forms under `no-referrer`: `Origin: null`
    with `Sec-Fetch-Site: same-origin`; and the service's own origin spelled out."""
    mine, _ = await _two_survivors(client, world, browser)
    token = await browser.csrf()
    own = {"Origin": "http://accord.test", "Sec-Fetch-Site": "same-origin"}
    asked = await browser.post(f"/s/consents/{mine}/withdraw", {"csrf": token}, headers=own)
    assert asked.status_code == 200
    done = await browser.post(f"/s/consents/{mine}/withdraw/confirm", {"csrf": token})
    assert done.status_code == 303
    assert not await _live(client, world, mine)


@pytest.mark.security
async def test_G08_adversarial_ids_and_codes_are_refused_quickly_and_change_nothing(
    client: httpx.AsyncClient, world: World, db: TestDatabase, browser: Browser
) -> None:
    """The pages' own G08 case (they are left out of the API's UUID sweep): 50 KB
    near-UUIDs and near-codes in every path parameter, with a live session and a
    valid form token: the not-found page (the same as for a random id) or the
    neutral link page, within the bound, the input never echoed, nothing stored."""
    import time

    from tests.security.test_G08_redos import BOUND_SECONDS, SHAPES

    await _two_survivors(client, world, browser)
    token = await browser.csrf()
    not_found = (await browser.get(f"/s/consents/{uuid.uuid4()}/receipt")).text
    closed = (await browser.get("/s/" + "f" * 26)).text
    before = db.dump()
    for family in ("uuid", "code"):
        for shape, value in SHAPES[family].items():
            calls = [
                ("GET", f"/s/consents/{value}/receipt", not_found),
                ("GET", f"/s/consents/{value}/withdrawn", not_found),
                ("POST", f"/s/consents/{value}/withdraw", not_found),
                ("POST", f"/s/consents/{value}/withdraw/confirm", not_found),
                ("GET", f"/s/{value}", closed),
            ]
            for method, path, expected in calls:
                started = time.perf_counter()
                if method == "POST":
                    r = await browser.post(path, {"csrf": token})
                else:
                    r = await browser.get(path)
                elapsed = time.perf_counter() - started
                label = f"{method} {path[:40]} [{family}/{shape}]"
                assert r.status_code == 404, label
                assert r.text == expected, label
                assert elapsed < BOUND_SECONDS, f"{label}: {elapsed:.3f} s"
                assert value not in r.text, label
    # Nothing changed but the audit of the attempts on the session's pages (P04);
    # what the attempts sent is not in it.
    after = db.dump()
    assert without_audit(after) == without_audit(before)
    assert not any(value in after for shapes in SHAPES.values() for value in shapes.values())
