"""Operations endpoints: liveness, readiness, metrics. No survivor data anywhere."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from service.audit.readiness import audit_faults
from service.db import migrate
from service.errors import ServiceUnavailableError
from service.web import dispatcher_metrics
from service.web.problems import problem_responses

router = APIRouter(tags=["operations"])
log = logging.getLogger("accord.operations")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (no dependencies checked)."""
    return {"status": "ok"}


@router.get("/readyz", responses=problem_responses(503))
async def readyz(request: Request) -> dict[str, str]:
    """The database is reachable, migrations are at head, the audit log's protections
    stand (service/audit/readiness.py), the policies are loaded and the keys that
    verify tokens are at hand (a JWKS URL fetched at least once)."""
    state = request.app.state
    if getattr(state, "policy_engine", None) is None:
        raise ServiceUnavailableError("policies not loaded")
    try:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        current = await migrate.current_revision(state.engine)
    except Exception as exc:
        log.warning("not ready", extra={"error_type": type(exc).__name__})
        raise ServiceUnavailableError("database unreachable") from exc
    if current != migrate.head_revision():
        raise ServiceUnavailableError("database schema is not at the head migration")
    faults = await audit_faults(state.sessionmaker)
    if faults:
        raise ServiceUnavailableError("audit log unprotected: " + "; ".join(faults))
    if not await state.token_verifier.keys_available():
        raise ServiceUnavailableError("the token issuer's keys are unavailable")
    return {"status": "ready"}


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format. Labels are route templates and outcomes only. Under
    `accord serve` on PostgreSQL the webhook families are its dispatcher process's."""
    body = await dispatcher_metrics.exposition(
        request.app.state.metrics, request.app.state.settings.webhook_dispatch_metrics_url
    )
    return Response(body, media_type=CONTENT_TYPE_LATEST)
