"""Every error leaves as RFC 9457 problem details, rendered in one place.

Validation problems name the JSON path and the rule; the offending input is never
echoed (it may be survivor free text). Unexpected exceptions become a 500 with the
request id only: no traceback, SQL, path, token or value (SECURITY-TESTS G12).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.errors import (
    PROBLEM_JSON,
    AccordError,
    BadRequestError,
    MethodNotAllowedError,
    NotFoundError,
    ProblemItem,
    RuleViolationError,
    ServiceUnavailableError,
)
from service.web.middleware import app_routes
from service.web.observability import request_id_var

log = logging.getLogger("accord.errors")


def problem_response(exc: AccordError, request: Request | None = None) -> JSONResponse:
    body = exc.problem()
    request_id = request_id_var.get()
    if request_id is None and request is not None:
        request_id = getattr(request.state, "request_id", None)
    if request_id and exc.status >= 500:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=exc.status, headers=exc.headers, media_type=PROBLEM_JSON)


def _json_path(loc: tuple[Any, ...]) -> str:
    parts = (
        [str(p) for p in loc[1:]]
        if loc and loc[0] in {"body", "query", "path", "header"}
        else [str(p) for p in loc]
    )
    prefix = "" if not loc or loc[0] == "body" else f"{loc[0]}:"
    return prefix + "/" + "/".join(parts)


def _validation_problem(exc: RequestValidationError) -> AccordError:
    items: list[ProblemItem] = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            return BadRequestError("The body is not valid JSON")
        loc = tuple(error.get("loc", ()))
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "extra_forbidden":
            message = "unknown property"
        items.append(ProblemItem(_json_path(loc), message))
    return RuleViolationError(errors=items)


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown"
    last = frames[-1]
    return f"{last.name}:{last.lineno}"


def allowed_methods(request: Request) -> list[str]:
    """Every method the request's path supports (issue 22 item 12: the router answers
    405 from the first route whose path matched, so its Allow named that route's
    methods only, e.g. POST on /v1/referrals although GET exists)."""
    methods: set[str] = set()
    for route, _path, route_methods in app_routes(request.app):
        if route_methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route_methods
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(AccordError)
    async def _accord(_request: Request, exc: AccordError) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(_validation_problem(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return problem_response(NotFoundError())
        if exc.status_code == 405:
            allow = ", ".join(allowed_methods(request))
            return problem_response(MethodNotAllowedError(headers={"Allow": allow}))
        return JSONResponse(
            {"type": "about:blank", "title": "HTTP error", "status": exc.status_code},
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
            media_type=PROBLEM_JSON,
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeoutError)
    async def _transient(_request: Request, exc: Exception) -> JSONResponse:
        # Log the class and the place only: a DBAPI message can quote parameters.
        log.warning(
            "transient database fault",
            extra={"error_type": type(exc).__name__, "where": _where(exc)},
        )
        return problem_response(ServiceUnavailableError("The database is unavailable; retry later"))

    @app.exception_handler(DBAPIError)
    async def _dbapi(_request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return problem_response(
                ServiceUnavailableError("The database is unavailable; retry later")
            )
        log.error("database error", extra={"error_type": type(exc).__name__, "where": _where(exc)})
        return problem_response(AccordError())

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", extra={"error_type": type(exc).__name__, "where": _where(exc)})
        return problem_response(AccordError(), request)
