"""The survivor's pages (docs/survivor-pages.md): /s/{code} opens a session once;
/s/consents, /s/disclosures and /s/help show what was agreed and who learned what;
a consent is withdrawn with two forms (ask, then confirm) and the result page
shows the withdrawal receipt.

Every page view and action is audited as a use of the access link, like the API's
survivor endpoints. A refused request (no session, a foreign or unknown id, a form
without its token or from elsewhere) raises, so its transaction rolls back and it
changes nothing; the error page is rendered afterwards (service/pages/site.py).
"""

from __future__ import annotations

import json
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.auth.principals import SurvivorPrincipal
from service.consents import service as consent_service
from service.consents.receipts import build_receipt, sign_receipt
from service.consents.service import ConsentState
from service.errors import NotFoundError, RateLimitedError
from service.organizations.models import Organization
from service.pages import views
from service.pages.oversight import router as oversight_router
from service.pages.site import (
    SESSION_COOKIE,
    STATIC,
    PageNotFoundError,
    Site,
    TooManyTriesError,
    secure,
    site_of,
)
from service.pages.visitor import CurrentVisitor, FormVisitor, Visitor, object_id
from service.policy.taxonomy import Taxonomy
from service.subjects import access_links
from service.subjects import service as subject_service
from service.web.deps import AppClock, DbSession
from service.web.ratelimit import Limit, client_address, limits_of

router = APIRouter(tags=["survivor pages"], default_response_class=HTMLResponse)
# The oversight pages (/o/, docs/oversight.md) come with the survivor's pages.
router.include_router(oversight_router)

WITHDRAWN_BY_SURVIVOR = "Withdrawn by the survivor on their own page"
_ASSETS = {"pages.css": "text/css; charset=utf-8", "exit.js": "text/javascript; charset=utf-8"}


def _asset(name: str) -> Response:
    return secure(Response((STATIC / name).read_bytes(), media_type=_ASSETS[name]))


@router.get("/s/static/pages.css", include_in_schema=False)
async def style_sheet() -> Response:
    return _asset("pages.css")


@router.get("/s/static/exit.js", include_in_schema=False)
async def exit_script() -> Response:
    return _asset("exit.js")


def _taxonomy(request: Request) -> Taxonomy:
    taxonomy: Taxonomy = request.app.state.policy_engine.taxonomy
    return taxonomy


async def _states(session: DbSession, visitor: Visitor) -> list[ConsentState]:
    survivor = visitor.survivor
    return await consent_service.list_for_subject(
        session, who=survivor, subject_id=survivor.subject_id
    )


async def _state(
    session: DbSession, survivor: SurvivorPrincipal, consent_id: str, lang: str
) -> ConsentState:
    try:
        return await consent_service.get_state(
            session, principal=survivor, consent_id=object_id(consent_id, lang)
        )
    except NotFoundError as exc:
        raise PageNotFoundError(lang) from exc


async def _owner(session: DbSession, visitor: Visitor) -> Organization:
    orgs = await views.organizations(session, [visitor.link.owner_org_id])
    return orgs[visitor.link.owner_org_id]


@router.get("/s/consents")
async def consents_page(
    request: Request, visitor: CurrentVisitor, session: DbSession, clock: AppClock
) -> HTMLResponse:
    """What the survivor agreed to: every grant, in plain words, with its state."""
    site, now = site_of(request), clock.now()
    states = await _states(session, visitor)
    lang = site.language(request, grant=views.newest_language(states))
    orgs = await views.organizations(
        session,
        views.recipients_of(states) | {visitor.link.owner_org_id},
        viewer=visitor.link.owner_org_id,
    )
    consents = [
        views.consent_view(
            s,
            orgs=orgs,
            terms=site.terms,
            taxonomy=_taxonomy(request),
            lang=lang,
            _=site.gettext(lang),
            now=now,
        )
        for s in states
    ]
    await subject_service.record_link_use(
        session, who=visitor.survivor, what="page.consents", clock=clock
    )
    return site.render(
        request,
        "consents.html",
        lang=lang,
        here="/s/consents",
        nav=True,
        current="consents",
        consents=consents,
        owner=orgs[visitor.link.owner_org_id].name,
        csrf=visitor.csrf_token,
    )


@router.get("/s/disclosures")
async def disclosures_page(
    request: Request, visitor: CurrentVisitor, session: DbSession, clock: AppClock
) -> HTMLResponse:
    """Every disclosure about the survivor, exactly as the API's accounting shows it
    (a law enforcement suspension hides a disclosure until it ends)."""
    site, survivor = site_of(request), visitor.survivor
    lang = site.language(request, grant=views.newest_language(await _states(session, visitor)))
    _subject, rows = await subject_service.disclosures(
        session, who=survivor, subject_id=survivor.subject_id, at=clock.now()
    )
    items = views.disclosure_views(rows, terms=site.terms, lang=lang, _=site.gettext(lang))
    await subject_service.record_link_use(
        session, who=survivor, what="page.disclosures", clock=clock
    )
    return site.render(
        request,
        "disclosures.html",
        lang=lang,
        here="/s/disclosures",
        nav=True,
        current="disclosures",
        disclosures=items,
    )


@router.get("/s/help")
async def help_page(
    request: Request, visitor: CurrentVisitor, session: DbSession, clock: AppClock
) -> HTMLResponse:
    """Who to contact (the serving organization's directory entry) and what the
    service cannot see."""
    site = site_of(request)
    lang = site.language(request, grant=views.newest_language(await _states(session, visitor)))
    owner = views.help_view(await _owner(session, visitor), site.gettext(lang), lang)
    await subject_service.record_link_use(
        session, who=visitor.survivor, what="page.help", clock=clock
    )
    return site.render(
        request,
        "help.html",
        lang=lang,
        here="/s/help",
        nav=True,
        current="help",
        owner=owner,
        link_expires_at=visitor.link.expires_at,
    )


@router.get("/s/consents/{consent_id}/receipt", response_class=Response)
async def receipt_download(
    consent_id: str, request: Request, visitor: CurrentVisitor, session: DbSession, clock: AppClock
) -> Response:
    """The grant's signed consent receipt (the API's), as a file to keep."""
    site = site_of(request)
    lang = site.language(request, grant=views.newest_language(await _states(session, visitor)))
    state = await _state(session, visitor.survivor, consent_id, lang)
    signed = _signed_receipt(request, state, await _owner(session, visitor))
    await subject_service.record_link_use(
        session, who=visitor.survivor, what="page.receipt", clock=clock
    )
    response = Response(
        json.dumps(signed, indent=2, ensure_ascii=False, sort_keys=True),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="consent-receipt.json"'},
    )
    return secure(response)


def _signed_receipt(
    request: Request, state: ConsentState, owner: Organization
) -> dict[str, object]:
    receipt = build_receipt(
        state, owner=owner, policy_version=request.app.state.policy_engine.version
    )
    signed: dict[str, object] = sign_receipt(receipt, request.app.state.keyring.receipt)
    return signed


@router.post("/s/consents/{consent_id}/withdraw")
async def withdraw_ask(
    consent_id: str, request: Request, visitor: FormVisitor, session: DbSession, clock: AppClock
) -> Response:
    """The confirmation page: what will and will not happen. Changes nothing."""
    site, now = site_of(request), clock.now()
    lang = site.language(request, grant=views.newest_language(await _states(session, visitor)))
    state = await _state(session, visitor.survivor, consent_id, lang)
    if state.revocation is not None:
        return _see_other(f"/s/consents/{state.version.id}/withdrawn")
    orgs = await views.organizations(
        session,
        views.recipients_of([state]) | {visitor.link.owner_org_id},
        viewer=visitor.link.owner_org_id,
    )
    consent = views.consent_view(
        state,
        orgs=orgs,
        terms=site.terms,
        taxonomy=_taxonomy(request),
        lang=lang,
        _=site.gettext(lang),
        now=now,
    )
    if not consent.withdrawable:
        return _see_other("/s/consents")
    await subject_service.record_link_use(
        session, who=visitor.survivor, what="page.withdraw", clock=clock
    )
    return site.render(
        request,
        "withdraw.html",
        lang=lang,
        here="/s/consents",
        nav=True,
        current="consents",
        consent=consent,
        owner=orgs[visitor.link.owner_org_id].name,
        csrf=visitor.csrf_token,
    )


@router.post("/s/consents/{consent_id}/withdraw/confirm")
async def withdraw_confirm(
    consent_id: str, request: Request, visitor: FormVisitor, session: DbSession, clock: AppClock
) -> Response:
    """Withdraw the grant now (the API's revocation: at once, for good, recipients
    told), then show the result on its own page (a reload does not post again)."""
    site = site_of(request)
    lang = site.language(request, grant=views.newest_language(await _states(session, visitor)))
    state = await _state(session, visitor.survivor, consent_id, lang)
    await consent_service.revoke(
        session,
        principal=visitor.survivor,
        consent_id=state.version.id,
        reason=WITHDRAWN_BY_SURVIVOR,
        clock=clock,
    )
    await subject_service.record_link_use(
        session, who=visitor.survivor, what="consent.revoke", clock=clock
    )
    return _see_other(f"/s/consents/{state.version.id}/withdrawn")


@router.get("/s/consents/{consent_id}/withdrawn")
async def withdrawn_page(
    consent_id: str, request: Request, visitor: CurrentVisitor, session: DbSession, clock: AppClock
) -> Response:
    """The result: when the grant was withdrawn, and its signed receipt."""
    site = site_of(request)
    lang = site.language(request, grant=views.newest_language(await _states(session, visitor)))
    state = await _state(session, visitor.survivor, consent_id, lang)
    if state.revocation is None:
        return _see_other("/s/consents")
    owner = await _owner(session, visitor)
    signature = _signed_receipt(request, state, owner)["signature"]
    await subject_service.record_link_use(
        session, who=visitor.survivor, what="page.withdrawn", clock=clock
    )
    return site.render(
        request,
        "withdrawn.html",
        lang=lang,
        here=f"/s/consents/{state.version.id}/withdrawn",
        nav=True,
        current="consents",
        consent_id=str(state.version.id),
        revoked_at=state.revocation.revoked_at,
        owner=owner.name,
        key_id=signature["key_id"] if isinstance(signature, dict) else "",
    )


def _see_other(path: str) -> Response:
    return secure(RedirectResponse(path, status_code=303))


def _session_seconds(expires_at: datetime, now: datetime) -> int:
    return max(1, int((expires_at - now).total_seconds()))


# Last: a code is any other single path segment.
@router.get("/s/{code}")
async def open_link(code: str, request: Request, session: DbSession, clock: AppClock) -> Response:
    """Exchange the single-use code for a session and leave the code's URL at once
    (303), so it stays out of the address bar, the history and any Referer. Unknown,
    used, expired and revoked codes all get one neutral page."""
    site = site_of(request)
    opened = await access_links.exchange_code(session, code=code, clock=clock)
    if opened is None:
        return await _refused(request, site)
    response = _see_other("/s/consents")
    site.set_cookie(
        response,
        SESSION_COOKIE,
        opened.secret,
        max_age=_session_seconds(opened.link.expires_at, clock.now()),
    )
    return response


async def _refused(request: Request, site: Site) -> Response:
    lang = site.language(request)
    try:
        # Counted as a failed authentication of this address: guessing is bounded.
        await limits_of(request).hit(Limit.failed_auth, client_address(request))
    except RateLimitedError as exc:
        # Raised, so that nothing this request wrote (an audited refusal) is kept.
        raise TooManyTriesError(lang, exc.headers.get("Retry-After", "60")) from exc
    return site.render(request, "closed.html", lang=lang, status=404, nav=False)
