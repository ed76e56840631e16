"""What both HTTP clients share: bearer authentication, the tenacity retry
arguments, the default timeout, following pagination cursors."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, TypeVar

import httpx
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt

from accord_client.api_models import (
    Page,
    RequestSpec,
    RetryPolicy,
    backoff_seconds,
    is_retryable,
)

Id = str | uuid.UUID
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_jitter = secrets.SystemRandom()
T = TypeVar("T")


class BearerAuth(httpx.Auth):
    """Adds `Authorization: Bearer <token>`; the token never appears in a repr."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(<redacted>)"


def wait_for(policy: RetryPolicy) -> Any:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return backoff_seconds(policy, state.attempt_number, exc, _jitter.random())

    return wait


def retry_args(policy: RetryPolicy, spec: RequestSpec) -> dict[str, Any]:
    return {
        "stop": stop_after_attempt(policy.attempts),
        "wait": wait_for(policy),
        "retry": retry_if_exception(lambda exc: is_retryable(spec, exc)),
        "reraise": True,
    }


def org_page_query(
    sector: str | None, service: str | None, language: str | None, accepting: bool | None
) -> dict[str, Any]:
    return {"sector": sector, "service": service, "language": language, "accepting": accepting}


def follow_cursors(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Every item of every page, following `next_cursor` until the last page."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def afollow_cursors(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    """The async twin of `follow_cursors`."""
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in page.items:
            yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
