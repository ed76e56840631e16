"""The request guard: a pure ASGI middleware in front of every route.

It assigns the request id, limits headers (count, size, UTF-8; SECURITY-TESTS G15:
431 or 400, never a 500), enforces the body size limit (declared and streamed),
accepts only JSON bodies (and HTML forms only under /s/ and /o/, the HTML pages),
rejects malformed JSON and duplicate keys (API.md: "a JSON body with a duplicate
key is rejected") before any handler runs, refuses
duplicate Authorization headers, marks every response `Cache-Control: no-store`,
and records metrics and an access log line by route template.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import (
    PROBLEM_JSON,
    AccordError,
    BadRequestError,
    HeadersTooLargeError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from service.web.json_depth import check_json_depth
from service.web.observability import Metrics, request_id_var

log = logging.getLogger("accord.http")

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The survivor's pages and the oversight pages (service/pages/) post plain HTML
# forms, and only those.
FORM_PATH_PREFIX = ("/s/", "/o/")
FORM_MEDIA = b"application/x-www-form-urlencoded"
# Header limits: far above what any client of this API sends (a bearer token is
# under 2 KB), far below what would cost the service memory or time.
MAX_HEADERS = 64
MAX_HEADER_BYTES = 8 * 1024
MAX_HEADERS_TOTAL_BYTES = 32 * 1024


def check_headers(headers: list[tuple[bytes, bytes]]) -> None:
    if len(headers) > MAX_HEADERS:
        raise HeadersTooLargeError(f"At most {MAX_HEADERS} header fields")
    total = 0
    for name, value in headers:
        size = len(name) + len(value)
        total += size
        if size > MAX_HEADER_BYTES or total > MAX_HEADERS_TOTAL_BYTES:
            raise HeadersTooLargeError(
                f"At most {MAX_HEADER_BYTES} bytes per header field and "
                f"{MAX_HEADERS_TOTAL_BYTES} in all"
            )
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequestError("A header value is not valid UTF-8") from exc


class DuplicateKeyError(ValueError):
    pass


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def check_json(body: bytes) -> None:
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity, nesting bounded
    (measured before the recursive parser runs: service/web/json_depth.py)."""
    check_json_depth(body)
    try:
        json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except DuplicateKeyError as exc:
        raise BadRequestError("The JSON body has a duplicate key") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError("The body is not valid JSON") from exc


def app_routes(app: ASGIApp) -> list[tuple[BaseRoute, str, frozenset[str]]]:
    """Every route of the app as (route, path template, methods), with included
    routers flattened (FastAPI includes routers lazily)."""
    router = getattr(app, "router", None)
    out: list[tuple[BaseRoute, str, frozenset[str]]] = []
    for context in iter_route_contexts(getattr(router, "routes", [])):
        methods = getattr(context.original_route, "methods", None) or set()
        out.append((context.original_route, context.path or "", frozenset(methods)))
    return out


def route_template(routes: list[tuple[BaseRoute, str, frozenset[str]]], scope: Scope) -> str:
    """The matched route's template (never the raw path: ids stay out of metrics)."""
    partial = None
    for route, path, _methods in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return path
        if match is Match.PARTIAL and partial is None:
            partial = path
    return partial or "unmatched"


class RequestGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: Metrics, root: Any) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.root = root
        self._routes: list[tuple[BaseRoute, str, frozenset[str]]] | None = None
        self._templates: dict[int, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        token = request_id_var.set(request_id)
        # Also in the request state: the handler of unexpected errors runs outside
        # this middleware, after the context variable has been reset.
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status_holder = {"status": 500}
        if self._routes is None:
            self._routes = app_routes(self.root)
            self._templates = {id(r): path for r, path, _methods in self._routes}
        method = scope["method"]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"cache-control", b"no-store"))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            try:
                replay = await self._guard_body(scope, receive)
            except AccordError as exc:
                await self._send_problem(exc, send_wrapper)
                return
            await self.app(scope, replay, send_wrapper)
        finally:
            duration = time.perf_counter() - started
            status = status_holder["status"]
            # The route the router chose (no second match); unrouted: match here.
            matched = scope.get("route")
            route = self._templates.get(id(matched)) if matched is not None else None
            if route is None:
                route = route_template(self._routes, scope)
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(duration)
            log.info(
                "request",
                extra={
                    "event": "http.request",
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration * 1000, 2),
                },
            )
            request_id_var.reset(token)

    async def _guard_body(self, scope: Scope, receive: Receive) -> Receive:
        headers = scope.get("headers", [])
        check_headers(headers)
        auth_headers = [v for k, v in headers if k == b"authorization"]
        if len(auth_headers) > 1:
            raise BadRequestError("Send exactly one Authorization header")
        if scope["method"] not in BODY_METHODS:
            return receive
        declared = next((v for k, v in headers if k == b"content-length"), None)
        if declared is not None:
            try:
                if int(declared) > self.max_body_bytes:
                    raise PayloadTooLargeError(f"The limit is {self.max_body_bytes} bytes")
            except ValueError as exc:
                raise BadRequestError("Invalid Content-Length") from exc
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLargeError(f"The limit is {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            content_type = next((v for k, v in headers if k == b"content-type"), b"")
            media = content_type.split(b";")[0].strip().lower()
            if scope["path"].startswith(FORM_PATH_PREFIX):
                if media != FORM_MEDIA:
                    raise UnsupportedMediaTypeError("Send an HTML form")
            elif media != b"application/json" and not media.endswith(b"+json"):
                raise UnsupportedMediaTypeError("Send application/json")
            else:
                check_json(body)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    async def _send_problem(self, exc: AccordError, send: Send) -> None:
        body = json.dumps(exc.problem()).encode()
        headers = [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
