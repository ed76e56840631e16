"""Domain errors rendered once as RFC 9457 problem details.

Error bodies never carry request values: a validation problem names the JSON
path and the rule broken, never the input (it may be survivor free text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

# A relative reference (RFC 9457 section 3.1.1): resolved against the request's URI
# it is the type's entry on the page of problem types that the service serves
# (service/web/docs_pages.py; docs/problems.md), on every deployment and offline.
# Clients compare the string.
PROBLEM_BASE = "/problems#"
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class ProblemItem:
    """One thing wrong with a request: where (a JSON path or field name) and what rule."""

    path: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "message": self.message, **self.extra}


class AccordError(Exception):
    status: ClassVar[int] = 500
    type_slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[ProblemItem] = (),
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}
        self.extra = extra or {}

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.type_slug,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


class BadRequestError(AccordError):
    status = 400
    type_slug = "bad-request"
    title = "Malformed request"


class UnauthorizedError(AccordError):
    status = 401
    type_slug = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class ForbiddenError(AccordError):
    status = 403
    type_slug = "forbidden"
    title = "Not permitted"


class NotFoundError(AccordError):
    """Also used for objects that exist but are not visible: never reveal existence."""

    status = 404
    type_slug = "not-found"
    title = "Not found"

    def __init__(self) -> None:
        # One fixed body for every 404 so a hidden object and a missing one look alike.
        super().__init__(None)


class MethodNotAllowedError(AccordError):
    status = 405
    type_slug = "method-not-allowed"
    title = "Method not allowed"


class ConflictError(AccordError):
    status = 409
    type_slug = "conflict"
    title = "State conflict"


class PayloadTooLargeError(AccordError):
    status = 413
    type_slug = "payload-too-large"
    title = "Request body too large"


class HeadersTooLargeError(AccordError):
    status = 431
    type_slug = "headers-too-large"
    title = "Request header fields too large"


class UnsupportedMediaTypeError(AccordError):
    status = 415
    type_slug = "unsupported-media-type"
    title = "Unsupported media type"


class RuleViolationError(AccordError):
    """Valid JSON that breaks one or more rules; nothing is stored."""

    status = 422
    type_slug = "rule-violation"
    title = "The request breaks one or more rules"


class RateLimitedError(AccordError):
    status = 429
    type_slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(None, headers={"Retry-After": str(retry_after)})


class ServiceUnavailableError(AccordError):
    """A transient fault: the database is unreachable, a lock timed out, the audit
    write failed. A release that cannot be audited is never made."""

    status = 503
    type_slug = "unavailable"
    title = "Temporarily unavailable"

    def __init__(self, detail: str | None = None, retry_after: int = 2) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


def rule_violation(*items: tuple[str, str]) -> RuleViolationError:
    return RuleViolationError(errors=[ProblemItem(path, message) for path, message in items])
