"""Query parameters shared by every list endpoint."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from pydantic import AwareDatetime, BeforeValidator

from service.web.pagination import Paginator

# The maximum is a setting, so it is enforced below and written into the OpenAPI
# document from the same setting (service/web/openapi.py), never as a constant here.
LIMIT_DESCRIPTION = (
    "Page size: default ACCORD_PAGE_SIZE_DEFAULT, at most ACCORD_PAGE_SIZE_MAX; "
    "values outside 1..maximum are rejected with 422."
)


async def paginator(  # async: a plain def would run in the thread pool
    request: Request,
    limit: Annotated[int | None, Query(ge=1, description=LIMIT_DESCRIPTION)] = None,
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


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: object) -> object:
    """A time in a query string as the OpenAPI document says (format date-time, RFC
    3339 with its offset); without this, pydantic would also take `0` (the epoch) or
    a time without its offset."""
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError("expected an RFC 3339 date-time with its offset: 2026-12-01T00:00:00Z")
    return value


Rfc3339Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
