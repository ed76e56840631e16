"""GET /v1/collaborations/{collab_id}/reports: a collaboration's suppressed
aggregate report for one calendar period, as JSON or CSV (docs/reports.md)."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from service.auth.dependencies import CurrentPrincipal
from service.errors import rule_violation
from service.reports import csv_out
from service.reports.compute import build_report
from service.reports.schemas import Period, Report
from service.web.deps import AppClock, DbSession
from service.web.problems import ALL_PROBLEMS

router = APIRouter(prefix="/v1/collaborations", tags=["reports"])

CSV = "text/csv"


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip().lower() == CSV for part in accept.split(","))


def _digest_header(body: bytes) -> dict[str, str]:
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return {"Repr-Digest": f"sha-256=:{digest}:"}


@router.get(
    "/{collab_id}/reports",
    response_model=Report,
    responses={**ALL_PROBLEMS, 200: {"content": {"application/json": {}, CSV: {}}}},
)
async def collaboration_report(
    collab_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
    period: Annotated[str, Query(max_length=16, description="YYYY, YYYY-Qn or YYYY-MM (UTC)")],
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
) -> Response:
    """Counts a member may show funders: every count under the threshold suppressed,
    and enough others that none can be worked out (docs/reports.md). Members of the
    collaboration and the oversight sector; others 404. Recorded in the audit log."""
    try:
        parsed = Period.parse(period)
    except ValueError:
        raise rule_violation(("period", "must be YYYY, YYYY-Qn or YYYY-MM")) from None
    as_csv = _wants_csv(request, format)
    report = await build_report(
        session,
        collab_id,
        parsed,
        viewer=principal,
        settings=request.app.state.settings,
        clock=clock,
        fmt="csv" if as_csv else "json",
    )
    if as_csv:
        body = csv_out.render(report).encode()
        name = f"report-{report.period.label}.csv"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(body, media_type=CSV, headers=headers | _digest_header(body))
    body = report.model_dump_json().encode()
    return Response(body, media_type="application/json", headers=_digest_header(body))
