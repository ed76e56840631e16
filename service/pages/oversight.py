"""The oversight pages (docs/oversight.md), under /o/: sign in with a staff token,
the list of collaborations the officer may see, and one page per collaboration with
its report (charts and tables), the duties past their date, the log's latest signed
checkpoint with the result of checking that the log only grew since the previous
one this page showed, and the audit export to download.

Who: staff of the oversight sector (every collaboration) and auditors of a
member organization (their collaborations). Anyone else, and any collaboration the
officer may not see, gets the same "not found" page (404). The same headers as the
survivor's pages (service/pages/site.py); no script at all.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.audit.router import export as audit_export
from service.audit.service import EntryFilters
from service.auth.principals import Role
from service.clock import Clock
from service.collaborations.models import Collaboration
from service.errors import NotFoundError, RuleViolationError
from service.pages import language as lang_choice
from service.pages import oversight_words as ow
from service.pages.oversight_access import (
    PRE_COOKIE,
    PRE_SECONDS,
    SESSION_COOKIE,
    CurrentStaff,
    OversightNotFoundError,
    Staff,
    StaffForm,
    forget_cookie,
    form_fields,
    may_see,
    new_pre_session,
    seen_key,
    set_cookie,
    sign_in,
    sign_in_csrf,
    visible_collaborations,
)
from service.pages.oversight_checkpoint import (
    SEEN_COOKIE,
    SEEN_SECONDS,
    CheckpointStatus,
    checkpoint_status,
    read_seen,
    seen_cookie,
)
from service.pages.oversight_views import durations_chart, overdue_duties, table_chart
from service.pages.site import LANGUAGE_COOKIE, STATIC, secure, site_of
from service.reports.compute import build_report
from service.reports.schemas import Granularity, Period, Report
from service.web.deps import AppClock, DbSession

router = APIRouter(default_response_class=HTMLResponse, include_in_schema=False)

HOME = "/o/collaborations"


def render(
    request: Request, template: str, *, lang: str, here: str, status: int = 200, **context: Any
) -> Response:
    """An oversight page in `lang`, with the pages' headers; remembers a language
    chosen now (cookie path /o)."""
    site = site_of(request)
    info = site.languages[lang]
    body = (
        site.envs[lang]
        .get_template(template)
        .render(
            lang=info.code,
            dir=info.direction,
            languages=list(site.languages.values()),
            here=here,
            **context,
        )
    )
    response = HTMLResponse(body, status_code=status)
    chosen = lang_choice.match(request.query_params.get("lang"), site.languages)
    if chosen is not None:
        set_cookie(request, response, LANGUAGE_COOKIE, chosen, 365 * 86400)
    return secure(response)


def _see_other(path: str) -> Response:
    return secure(RedirectResponse(path, status_code=303))


@router.get("/o/static/oversight.css")
async def oversight_style() -> Response:
    data = (STATIC / "oversight.css").read_bytes()
    return secure(Response(data, media_type="text/css; charset=utf-8"))


@router.get("/o/sign-in")
async def sign_in_page(request: Request) -> Response:
    """The form that takes a staff token once (never in a URL)."""
    lang = site_of(request).language(request)
    pre = new_pre_session()
    response = render(
        request,
        "oversight_sign_in.html",
        lang=lang,
        here="/o/sign-in",
        csrf=sign_in_csrf(request, pre),
        failed=False,
    )
    set_cookie(request, response, PRE_COOKIE, pre, PRE_SECONDS)
    return response


@router.post("/o/sign-in")
async def sign_in_form(request: Request, session: DbSession, clock: AppClock) -> Response:
    """Verify the token as the API would; on success a session cookie and the list
    of collaborations; on failure the form again (401), counted against the address."""
    lang = site_of(request).language(request)
    fields = await form_fields(request)
    signed = await sign_in(request, session, fields, clock.now(), lang)
    if signed is None:
        pre = new_pre_session()
        response = render(
            request,
            "oversight_sign_in.html",
            lang=lang,
            here="/o/sign-in",
            status=401,
            csrf=sign_in_csrf(request, pre),
            failed=True,
        )
        set_cookie(request, response, PRE_COOKIE, pre, PRE_SECONDS)
        return response
    response = _see_other(HOME)
    set_cookie(request, response, SESSION_COOKIE, signed.cookie, signed.max_age)
    forget_cookie(request, response, PRE_COOKIE)
    return response


@router.post("/o/sign-out")
async def sign_out(request: Request, staff: StaffForm) -> Response:
    response = _see_other("/o/sign-in")
    forget_cookie(request, response, SESSION_COOKIE)
    return response


@router.get("/o/collaborations")
async def collaborations_page(
    request: Request, staff: CurrentStaff, session: DbSession
) -> Response:
    lang = site_of(request).language(request)
    rows = await visible_collaborations(session, staff.principal)
    return render(
        request,
        "oversight_list.html",
        lang=lang,
        here=HOME,
        staff=_staff_context(staff),
        collaborations=[{"id": str(c.id), "name": c.name} for c in rows],
    )


def _staff_context(staff: Staff) -> dict[str, Any]:
    return {
        "subject": staff.principal.subject,
        "csrf": staff.csrf_token,
        "expires_at": staff.expires_at,
        "auditor": staff.principal.has_any(Role.auditor),
    }


def default_period(now: datetime) -> Period:
    """The last quarter that has ended."""
    quarter = (now.month - 1) // 3 + 1
    year, quarter = (now.year, quarter - 1) if quarter > 1 else (now.year - 1, 4)
    return Period.of(Granularity.quarter, year, quarter)


def period_choices(now: datetime) -> list[str]:
    """Ended periods to pick from: the last four quarters and the last two years."""
    choices = []
    period = default_period(now)
    for _ in range(4):
        choices.append(period.label)
        index = int(period.label[-1])
        year = period.start.year
        period = Period.of(Granularity.quarter, year - (index == 1), 4 if index == 1 else index - 1)
    choices += [str(now.year - 1), str(now.year - 2)]
    return choices


async def _collaboration(
    session: DbSession, staff: Staff, collab_id: str, lang: str
) -> Collaboration:
    try:
        wanted = uuid.UUID(collab_id)
    except ValueError as exc:
        raise OversightNotFoundError(lang) from exc
    if str(wanted) != collab_id.lower() or not await may_see(session, staff.principal, wanted):
        raise OversightNotFoundError(lang)
    found = await session.get(Collaboration, wanted)
    if found is None:
        raise OversightNotFoundError(lang)
    return found


async def _report(
    request: Request,
    session: DbSession,
    collab: Collaboration,
    period: Period,
    staff: Staff,
    clock: Clock,
) -> Report | None:
    """The report as the API gives it, audited alike (`report.generated`, format
    `html`); None for a period the deployment does not publish (not ended, too fine)."""
    try:
        return await build_report(
            session,
            collab.id,
            period,
            viewer=staff.principal,
            settings=request.app.state.settings,
            clock=clock,
            fmt="html",
        )
    except NotFoundError as exc:
        raise OversightNotFoundError(site_of(request).language(request)) from exc
    except RuleViolationError:
        return None


def _charts(report: Report, lang: str, request: Request) -> list[dict[str, Any]]:
    _ = site_of(request).gettext(lang)
    names = ow.namer(_)
    out = []
    for index, table in enumerate(report.tables):
        title = ow.table_title(table.name, table.title, _)
        chart, data = table_chart(table, chart_id=f"t{index}", title=title, names=names, _=_)
        out.append({"chart": chart, "table": data})
    if report.durations:
        chart, data = durations_chart(
            report.durations, titles=lambda d: ow.duration_title(d.name, d.title, _), _=_
        )
        out.append({"chart": chart, "table": data})
    return out


@router.get("/o/collaborations/{collab_id}")
async def collaboration_page(
    collab_id: str,
    request: Request,
    staff: CurrentStaff,
    session: DbSession,
    clock: AppClock,
    period: str | None = None,
) -> Response:
    site = site_of(request)
    lang = site.language(request)
    collab = await _collaboration(session, staff, collab_id, lang)
    now = clock.now()
    chosen = _period(period, now, lang)
    report = await _report(request, session, collab, chosen, staff, clock)
    duties = await overdue_duties(session, collab.id, staff.principal, now)
    status = await _checkpoint(request, session, staff)
    response = render(
        request,
        "oversight_report.html",
        lang=lang,
        here=f"/o/collaborations/{collab.id}",
        staff=_staff_context(staff),
        collaboration={"id": str(collab.id), "name": collab.name},
        period=chosen.label,
        periods=period_choices(now),
        report=report,
        charts=_charts(report, lang, request) if report is not None else [],
        duties=[{**vars(d), "kind": ow.say_kind(d.kind, site.gettext(lang))} for d in duties],
        checkpoint=status,
        now=now,
    )
    if status.moves_cookie and status.size > 0:
        value = seen_cookie(seen_key(request), staff.principal, status.size, status.root_bytes)
        set_cookie(request, response, SEEN_COOKIE, value, SEEN_SECONDS)
    return response


def _period(text: str | None, now: datetime, lang: str) -> Period:
    if text is None:
        return default_period(now)
    if len(text) > 16:
        raise OversightNotFoundError(lang)
    try:
        return Period.parse(text)
    except ValueError as exc:
        raise OversightNotFoundError(lang) from exc


async def _checkpoint(request: Request, session: DbSession, staff: Staff) -> CheckpointStatus:
    seen = read_seen(seen_key(request), staff.principal, request.cookies.get(SEEN_COOKIE))
    return await checkpoint_status(
        session,
        signer=request.app.state.keyring.checkpoint,
        origin=request.app.state.settings.audit_origin,
        seen=seen,
    )


@router.get("/o/audit-export", response_class=Response)
async def audit_export_download(
    request: Request, staff: CurrentStaff, session: DbSession, clock: AppClock
) -> Response:
    """The audit export as `GET /v1/audit/export` gives it to this auditor (JSON Lines
    with proofs and the signed checkpoint; recorded in the log first; the same
    concurrency caps), as a file to keep. Auditors only."""
    if not staff.principal.has_any(Role.auditor):
        raise OversightNotFoundError(site_of(request).language(request))
    response = await audit_export(request, staff.principal, session, clock, EntryFilters(), "jsonl")
    response.headers["Content-Disposition"] = 'attachment; filename="accord-audit-export.jsonl"'
    return secure(response)
