"""Query parameters shared by every list endpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request

from service.web.pagination import Paginator

LIMIT_DESCRIPTION = (
    "Page size. Default 50, maximum 200 (ACCORD_PAGE_SIZE_DEFAULT / ACCORD_PAGE_SIZE_MAX); "
    "values outside 1..maximum are rejected with 422."
)


async def paginator(  # async: a plain def would run in the thread pool
    request: Request,
    limit: Annotated[int | None, Query(ge=1, le=1000, description=LIMIT_DESCRIPTION)] = None,
    cursor: Annotated[
        str | None, Query(max_length=512, description="Opaque cursor from next_cursor")
    ] = None,
) -> Paginator:
    settings = request.app.state.settings
    if limit is not None and limit > settings.page_size_max:
        from service.errors import rule_violation

        raise rule_violation(("/limit", f"at most {settings.page_size_max}"))
    return Paginator(
        request.app.state.cursors, limit=limit or settings.page_size_default, cursor=cursor
    )


Pages = Annotated[Paginator, Depends(paginator)]


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Makes a retried create safe: the same key and body return the first result",
    ),
]
