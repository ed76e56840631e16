"""GET /v1/events: the caller's organization's events, in order (API.md, second wave)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from service.auth.dependencies import CurrentPrincipal
from service.errors import rule_violation
from service.events import feed
from service.events.schemas import EventPage
from service.web.deps import DbSession
from service.web.params import LIMIT_DESCRIPTION
from service.web.problems import ALL_PROBLEMS

router = APIRouter(tags=["events"])


@router.get("/v1/events", responses=ALL_PROBLEMS)
async def list_events(
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    after: Annotated[
        int, Query(ge=0, le=2**62, description="The last event number you have; 0 to start")
    ] = 0,
    limit: Annotated[int | None, Query(ge=1, le=1000, description=LIMIT_DESCRIPTION)] = None,
) -> EventPage:
    """Your organization's events after `after`, oldest first. The same events its
    webhooks receive; reading changes nothing."""
    settings = request.app.state.settings
    if limit is not None and limit > settings.page_size_max:
        raise rule_violation(("/limit", f"at most {settings.page_size_max}"))
    rows = await feed.page(
        session,
        org_id=principal.org_id,
        after=after,
        limit=limit or settings.page_size_default,
    )
    return EventPage(
        items=[feed.event_read(e) for e in rows], next_after=rows[-1].seq if rows else after
    )
