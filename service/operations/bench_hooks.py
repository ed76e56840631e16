"""A baseline endpoint for bench/deliver.py: the same stack (middleware, token
verification, the principal's organization read, one transaction) doing the least
useful work, one INSERT. Registered only when `test_hooks` is on, which the
production configuration refuses (API.md: test-only hooks behind a setting).

The table is created by the benchmark itself, not by a migration: it is not part
of the product's schema."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from sqlalchemy import text

from service.auth.dependencies import CurrentPrincipal
from service.web.deps import DbSession

router = APIRouter(tags=["test hooks"], include_in_schema=False)

CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS bench_baseline (id VARCHAR(36) PRIMARY KEY, org VARCHAR(36))"
)


@router.post("/v1/_bench/baseline", status_code=status.HTTP_204_NO_CONTENT)
async def baseline(principal: CurrentPrincipal, session: DbSession) -> None:
    await session.execute(
        text("INSERT INTO bench_baseline (id, org) VALUES (:id, :org)"),
        {"id": str(uuid.uuid4()), "org": str(principal.org_id)},
    )
