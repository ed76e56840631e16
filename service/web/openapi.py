"""The OpenAPI document: what a client can build on (docs/api-reference.md).

FastAPI's own document is completed here, once per app:
- a bearer security scheme, required by exactly the operations that read a token;
- stable operation ids (service/web/operation_ids.py);
- for each operation, exactly the error statuses it can answer, each with the shared
  `Problem` schema (RFC 9457, the `errors` item shape included) and an example: the
  statuses its shape implies (below) plus those its own rules raise (`DOMAIN_ERRORS`,
  and any `responses=` a router declares);
- an example for every JSON request body and main response
  (service/web/openapi_examples.py);
- the bounds the service enforces where they come from settings, not from the
  schema (the page size: `limit`).

What an operation's shape implies (each is the request guard's or a dependency's
doing, service/web/middleware.py and service/auth/dependencies.py):
- every operation: 400 (a header that is not UTF-8, two Authorization headers) and
  431 (too many or too large header fields);
- a method that carries a body: 400 (not JSON, a duplicate key, too deep), 413, 415;
- parameters or a body: 422;
- a token: 401, 429 (failed authentications over the limit answer 429), 503;
- a role: 403; a per-principal rate limit: 429; the paginator: 400 (a bad cursor);
- the database: 503.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from service.errors import PROBLEM_JSON
from service.web.middleware import BODY_METHODS, app_routes
from service.web.openapi_examples import example_of, problem_example
from service.web.operation_ids import DOMAIN_ERRORS, operation_id
from service.web.problem_types import BY_SLUG

BEARER = "bearerAuth"
PROBLEM_REF = "#/components/schemas/Problem"

_AUTH = "service.auth.dependencies"
# Dependencies (module.qualname) and the statuses they can answer with.
DEPENDENCY_ERRORS: dict[str, tuple[int, ...]] = {
    f"{_AUTH}.current_principal": (401, 429, 503),
    f"{_AUTH}.current_survivor": (401, 429, 503),
    f"{_AUTH}.case_staff_or_survivor": (401, 403, 429, 503),
    f"{_AUTH}.require_role.<locals>.dependency": (403,),
    f"{_AUTH}.rate_limited.<locals>.dependency": (429,),
    "service.web.params.paginator": (400, 422),
    "service.web.deps._session": (503,),
    "service.pages.visitor.current_visitor": (401,),
}
# Dependencies that read a bearer token: the operation needs `bearerAuth`.
TOKEN_DEPENDENCIES = frozenset(
    {
        f"{_AUTH}.current_principal",
        f"{_AUTH}.current_survivor",
        f"{_AUTH}.case_staff_or_survivor",
    }
)

DESCRIPTIONS = {
    400: "Malformed request: a header that is not UTF-8, two Authorization headers, a body "
    "that is not JSON (or has a duplicate key, or nests too deeply), a bad cursor",
    401: "Missing, malformed, expired or wrongly signed token",
    403: "The principal's role does not permit this",
    404: "Not found, or not visible to this principal (the two look the same)",
    409: "State conflict",
    413: "Body larger than the limit",
    415: "Body not application/json",
    422: "Valid JSON or parameters that break a rule; `errors` lists each; nothing stored",
    429: "Rate limited; retry after Retry-After seconds",
    431: "Too many or too large header fields",
    503: "Transient fault; retry after Retry-After seconds",
}
SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "rule-violation",
    429: "rate-limited",
    431: "headers-too-large",
    503: "unavailable",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}},
}

PROBLEM_ITEM_SCHEMA: dict[str, Any] = {
    "title": "ProblemItem",
    "type": "object",
    "description": "One thing wrong with the request: where, and which rule. Never the value "
    "sent (it may be survivor free text).",
    "required": ["path", "message"],
    "properties": {
        "path": {
            "type": "string",
            "description": "A JSON pointer into the body, or `query:/name`, `path:/name`, "
            "`header:/Name` for a parameter",
        },
        "message": {"type": "string", "description": "The rule broken"},
        "code": {"type": "string", "description": "Envelope problems: a stable code"},
        "field": {"type": "string", "description": "Policy refusals: the envelope field"},
        "category": {"type": "string", "description": "Policy refusals: its category"},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "policies": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": True,
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details (`application/problem+json`). `type` is a "
    "relative URI: resolved against the service's URL it is the problem type's page "
    "(`/problems`, docs/problems.md).",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri-reference", "example": "/problems#not-found"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ProblemItem"}},
        "request_id": {"type": "string", "description": "5xx only: quote it to the operator"},
    },
    "additionalProperties": True,
}


def _dependency_names(dependant: Dependant) -> Iterator[str]:
    for sub in dependant.dependencies:
        call = sub.call
        if call is not None:
            yield f"{getattr(call, '__module__', '')}.{getattr(call, '__qualname__', '')}"
        yield from _dependency_names(sub)


def _has_parameters(dependant: Dependant) -> bool:
    if dependant.path_params or dependant.query_params or dependant.header_params:
        return True
    if dependant.body_params or dependant.cookie_params:
        return True
    return any(_has_parameters(sub) for sub in dependant.dependencies)


def implied_errors(route: APIRoute, method: str) -> set[int]:
    """The statuses an operation can answer because of its shape (module docstring)."""
    codes = {400, 431}
    if method in BODY_METHODS:
        codes |= {400, 413, 415, 422}
    if _has_parameters(route.dependant):
        codes.add(422)
    for name in _dependency_names(route.dependant):
        codes |= set(DEPENDENCY_ERRORS.get(name, ()))
    return codes


def needs_token(route: APIRoute) -> bool:
    return any(name in TOKEN_DEPENDENCIES for name in _dependency_names(route.dependant))


def declared_errors(route: APIRoute, op_id: str) -> set[int]:
    declared = {int(code) for code in route.responses if str(code).isdigit() and int(code) >= 400}
    return declared | set(DOMAIN_ERRORS.get(op_id, ()))


def _problem_response(code: int, *, html: bool) -> dict[str, Any]:
    slug = SLUGS.get(code, "bad-request")
    response: dict[str, Any] = {"description": DESCRIPTIONS.get(code, BY_SLUG[slug].title)}
    if html:
        response["content"] = {"text/html": {"schema": {"type": "string"}}}
    else:
        response["content"] = {
            PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}, "example": problem_example(code, slug)}
        }
    if code in _HEADERS:
        response["headers"] = copy.deepcopy(_HEADERS[code])
    return response


def _set_bounds(operation: dict[str, Any], app: FastAPI) -> None:
    settings = app.state.settings
    for parameter in operation.get("parameters", []):
        if parameter.get("name") != "limit" or parameter.get("in") != "query":
            continue
        schema = parameter.setdefault("schema", {})
        target = next((s for s in schema.get("anyOf", []) if s.get("type") == "integer"), schema)
        static = target.get("maximum")
        target["minimum"] = 1
        target["maximum"] = min(settings.page_size_max, static or settings.page_size_max)
        schema["default"] = settings.page_size_default
        parameter["description"] = (
            f"Page size: default {settings.page_size_default}, at most {target['maximum']} "
            "(ACCORD_PAGE_SIZE_DEFAULT, ACCORD_PAGE_SIZE_MAX); outside 1..maximum: 422."
        )


def _complete(operation: dict[str, Any], route: APIRoute, method: str, app: FastAPI) -> None:
    op_id = operation_id(route.endpoint.__module__, route.endpoint.__name__)
    operation["operationId"] = op_id
    html = route.path.startswith("/s/")
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for listed in [c for c in responses if c.isdigit() and int(c) >= 400]:
        del responses[listed]
    for code in sorted(implied_errors(route, method) | declared_errors(route, op_id)):
        responses[str(code)] = _problem_response(code, html=html)
    if 413 in implied_errors(route, method):
        limit = app.state.settings.max_body_bytes
        responses["413"]["description"] = f"Body larger than {limit} bytes (ACCORD_MAX_BODY_BYTES)"
    if needs_token(route):
        operation["security"] = [{BEARER: []}]
    _document_replay(operation)
    _set_bounds(operation, app)


def _document_replay(operation: dict[str, Any]) -> None:
    """A create that takes an `Idempotency-Key` answers a retry with the first result
    and 200 instead of 201 (service/idempotency/): the document says so."""
    responses = operation.get("responses", {})
    keyed = any(
        p.get("in") == "header" and p.get("name", "").lower() == "idempotency-key"
        for p in operation.get("parameters", [])
    )
    if keyed and "201" in responses and "200" not in responses:
        responses["200"] = {
            **responses["201"],
            "description": "A retry with the same Idempotency-Key and body: the first result",
        }


def _add_examples(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    for operations in schema["paths"].values():
        for operation in operations.values():
            body = operation.get("requestBody", {}).get("content", {})
            ok = [
                r.get("content", {})
                for code, r in operation.get("responses", {}).items()
                if code.startswith("2")
            ]
            for content in [body, *ok]:
                media = content.get("application/json")
                if media and "schema" in media and "example" not in media:
                    media["example"] = example_of(media["schema"], components)


def build(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["ProblemItem"] = PROBLEM_ITEM_SCHEMA
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A staff token (`accord token issue`, `accord demo`, or your "
            "identity provider), or on the few operations that say so a survivor's access "
            "token. Never in a query string.",
        }
    }
    for route, path, methods in app_routes(app):
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in methods - {"HEAD"}:
            operation = schema["paths"].get(path, {}).get(method.lower())
            if operation is not None:
                _complete(operation, route, method, app)
    _add_examples(schema)
    return schema


def install(app: FastAPI) -> None:
    """Replace `app.openapi` with the completed document (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    setter: Callable[[], dict[str, Any]] = openapi
    app.openapi = setter  # type: ignore[method-assign]
