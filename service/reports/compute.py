"""Build a collaboration's report for one calendar period (docs/reports.md).

Counts are suppressed per period of the deployment's granularity (`suppress`); a
coarser period's cells are sums of those, shown only when every one of them is
shown, so a quarter or a year reveals nothing its months or quarters did not.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import AuditEvent, append
from service.auth.principals import Principal
from service.clock import Clock, SystemClock
from service.collaborations.models import Collaboration, Membership
from service.errors import NotFoundError, rule_violation
from service.reports.gather import Facts, gather
from service.reports.schemas import (
    Cell,
    Durations,
    Granularity,
    Period,
    Report,
    Table,
    finer_or_same,
)
from service.reports.suppress import suppress
from service.reports.tables import COUNT, TOTAL, CellKey, TableSpec, count, relations, specs
from service.sectors import Sector
from service.settings import Settings

RULE = "primary-and-complementary/v1"
_HIDDEN = Cell(count=None, suppressed=True)


async def collaboration_for(
    session: AsyncSession, collaboration_id: uuid.UUID, viewer: Principal
) -> Collaboration:
    """The collaboration, if the viewer may see its report: a current member's staff
    (any role, the research sector's included) or the oversight sector's; else 404."""
    collab = await session.get(Collaboration, collaboration_id)
    if collab is None:
        raise NotFoundError()
    if viewer.sector is Sector.oversight:
        return collab
    member = await session.scalar(
        select(Membership.id).where(
            Membership.collaboration_id == collaboration_id,
            Membership.org_id == viewer.org_id,
            Membership.removed_at.is_(None),
        )
    )
    if member is None:
        raise NotFoundError()
    return collab


def check_period(period: Period, granularity: Granularity, now: datetime) -> None:
    """422 for a period that has not ended or is finer than the deployment publishes."""
    if not finer_or_same(granularity, period.granularity):
        raise rule_violation(("period", f"reports are published per {granularity.value} at finest"))
    if period.end > now:
        raise rule_violation(("period", "the period has not ended yet"))


def _cells(facts: Facts, all_specs: list[TableSpec], t: int) -> dict[CellKey, Cell]:
    rels = relations(all_specs)
    parts: list[tuple[dict[CellKey, int], set[CellKey]]] = []
    for index in range(len(facts.buckets)):
        values = count(facts, all_specs, index)
        parts.append((values, suppress(values, rels, t)))
    out: dict[CellKey, Cell] = {}
    for key in parts[0][0]:
        if any(key in hidden for _, hidden in parts):
            out[key] = _HIDDEN
        else:
            out[key] = Cell(count=sum(values[key] for values, _ in parts), suppressed=False)
    return out


_STEP = {"sent_to_delivered": "delivered", "sent_to_accepted": "accepted"}


def _durations(facts: Facts, cells: dict[CellKey, Cell], t: int) -> list[Durations]:
    titles = {
        "sent_to_delivered": "Hours from sending a referral to its delivery",
        "sent_to_accepted": "Hours from sending a referral to its acceptance",
    }
    out = []
    for name, (n, median, p90) in facts.hours.items():
        shown = n >= t and median is not None and p90 is not None
        out.append(
            Durations(
                name=name,
                title=titles[name],
                referrals=cells["referral_steps", _STEP[name], COUNT],
                median_hours=round(median, 1) if shown and median is not None else None,
                p90_hours=round(p90, 1) if shown and p90 is not None else None,
            )
        )
    return out


def _table(spec: TableSpec, cells: dict[CellKey, Cell]) -> Table:
    n = spec.name
    grid = [[cells[n, r, c] for c in spec.columns] for r in spec.rows]
    if not spec.partition:
        return Table(
            name=n, title=spec.title, rows=list(spec.rows), columns=list(spec.columns), cells=grid
        )
    if spec.two_way:
        return Table(
            name=n,
            title=spec.title,
            rows=list(spec.rows),
            columns=list(spec.columns),
            cells=grid,
            row_totals=[cells[n, r, TOTAL] for r in spec.rows],
            column_totals=[cells[n, TOTAL, c] for c in spec.columns],
            total=cells[n, TOTAL, TOTAL],
        )
    return Table(
        name=n,
        title=spec.title,
        rows=list(spec.rows),
        columns=list(spec.columns),
        cells=grid,
        total=cells[n, TOTAL, COUNT],
    )


def report_digest(report: Report) -> str:
    """SHA-256 (hex) of the report's JSON, exactly as the API sends it."""
    return hashlib.sha256(report.model_dump_json().encode()).hexdigest()


async def build_report(
    session: AsyncSession,
    collaboration_id: uuid.UUID,
    period: Period,
    *,
    viewer: Principal,
    settings: Settings | None = None,
    clock: Clock | None = None,
    audit: bool = True,
    fmt: str = "json",
) -> Report:
    """The suppressed report of `collaboration_id` over `period`, as `viewer` may see it.

    Raises NotFoundError (404) when the viewer may not see the collaboration, and a
    rule violation (422) for a period that has not ended yet or is finer than the
    deployment publishes. With `audit` (the default) an entry names the viewer, the
    collaboration, the period, `fmt` and the report's digest, in the caller's
    transaction: every caller (the API, the oversight page) is audited alike."""
    settings = settings or Settings()
    clock = clock or SystemClock()
    now = clock.now()
    collab = await collaboration_for(session, collaboration_id, viewer)
    base = Granularity(settings.report_granularity)
    check_period(period, base, now)
    t = settings.report_threshold
    facts = await gather(session, collaboration_id, period, period.split(base))
    all_specs = specs(list(facts.members.sectors.values()))
    cells = _cells(facts, all_specs, t)
    report = Report(
        collaboration_id=collab.id,
        collaboration_name=collab.name,
        period=period,
        threshold=t,
        granularity=base,
        suppression=RULE,
        tables=[_table(s, cells) for s in all_specs],
        durations=_durations(facts, cells, t),
        generated_at=now,
    )
    if audit:
        await append(
            session,
            AuditEvent(
                action="report.generated",
                actor=viewer,
                details={
                    "collaboration_id": str(collab.id),
                    "period": period.label,
                    "format": fmt,
                    "report_sha256": report_digest(report),
                },
            ),
            clock=clock,
        )
    return report
