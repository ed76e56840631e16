"""Errors of the Accord API clients, parsed from RFC 9457 problem details.

Messages and reprs carry the service's problem details (paths and rule messages,
which the service guarantees never echo input), never a request body: a body may
hold survivor data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

# --- errors ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProblemItem:
    """One broken rule: where (a JSON path such as `/expires_at`) and which rule."""

    path: str
    message: str


@dataclass(frozen=True, slots=True)
class ProblemDetails:
    """An RFC 9457 problem as the service rendered it."""

    status: int
    type: str = "about:blank"
    title: str = ""
    detail: str | None = None
    errors: tuple[ProblemItem, ...] = ()
    extensions: Mapping[str, Any] = field(default_factory=dict, repr=False)


class AccordAPIError(httpx.HTTPStatusError):
    """A non-2xx answer. `problem` is the parsed problem; `request` and `response` are
    httpx's (the request body is never part of the message)."""

    def __init__(
        self, problem: ProblemDetails, *, request: httpx.Request, response: httpx.Response
    ):
        lines = [f"{problem.status} {problem.title or response.reason_phrase}"]
        if problem.detail:
            lines[0] += f": {problem.detail}"
        lines += [f"  {item.path}: {item.message}" for item in problem.errors]
        super().__init__("\n".join(lines), request=request, response=response)
        self.problem = problem
        self.status = problem.status
        self.retry_after = retry_after_seconds(response.headers.get("Retry-After"))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, type={self.problem.type!r})"


class AuthenticationError(AccordAPIError):
    """401: missing, malformed, expired or wrongly signed token."""


class PermissionDeniedError(AccordAPIError):
    """403: a valid principal without the right."""


class NotFoundError(AccordAPIError):
    """404: not found, or not visible to this principal."""


class ConflictError(AccordAPIError):
    """409: the resource is in a state that does not allow this."""


class UnprocessableError(AccordAPIError):
    """422: valid JSON that breaks rules, each listed in `problem.errors`; nothing stored."""


class RateLimitedError(AccordAPIError):
    """429: rate limited; `retry_after` says when to try again."""


class ServiceUnavailableError(AccordAPIError):
    """503: a transient fault; nothing was done. Safe to retry after `retry_after`."""


_ERROR_CLASSES: dict[int, type[AccordAPIError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
}


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _problem(response: httpx.Response) -> ProblemDetails:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return ProblemDetails(status=response.status_code, title=response.reason_phrase)
    items = []
    for raw in body.get("errors") or []:
        if isinstance(raw, dict):
            items.append(
                ProblemItem(path=str(raw.get("path", "")), message=str(raw.get("message", "")))
            )
    known = {"type", "title", "status", "detail", "errors"}
    detail = body.get("detail")
    return ProblemDetails(
        status=response.status_code,
        type=str(body.get("type", "about:blank")),
        title=str(body.get("title", response.reason_phrase)),
        detail=str(detail) if detail is not None else None,
        errors=tuple(items),
        extensions={k: v for k, v in body.items() if k not in known},
    )


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the AccordAPIError subclass for a non-2xx response (body already read)."""
    if response.is_success:
        return
    cls = _ERROR_CLASSES.get(response.status_code, AccordAPIError)
    raise cls(_problem(response), request=response.request, response=response)
