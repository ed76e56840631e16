"""What the oversight page shows: the duties past their date, and the report's
tables as charts (inline SVG drawn here, no script, no external asset) with the
same numbers as tables beside them.

A suppressed cell is drawn as no bar at all, with the word "suppressed" where its
number would be: a bar of any length would suggest a value. Nothing here reads a
survivor's data: duties are named by their kind, their holder organization and
their dates; the report holds only counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.principals import Principal
from service.collaborations.models import Membership
from service.organizations.models import Organization
from service.pages.oversight_access import sees_every_collaboration
from service.records_requests.models import Obligation, Review
from service.reports.schemas import Cell, Durations, Table

Gettext = Callable[[str], str]


@dataclass(frozen=True)
class Overdue:
    kind: str
    holder: str
    opened_at: datetime
    due_at: datetime
    days_overdue: int


async def overdue_duties(
    session: AsyncSession, collab_id: uuid.UUID, viewer: Principal, now: datetime
) -> list[Overdue]:
    """Open duties past their date of the collaboration's current members (an
    auditor sees their own organization's only: which organization owes a survivor
    a notice is itself a fact about a compelled release), longest overdue first."""
    members = select(Membership.org_id).where(
        Membership.collaboration_id == collab_id, Membership.removed_at.is_(None)
    )
    if not sees_every_collaboration(viewer):
        members = members.where(Membership.org_id == viewer.org_id)
    obligations = (
        await session.execute(
            select(Obligation.created_at, Obligation.due_at, Organization.name)
            .join(Organization, Organization.id == Obligation.holder_org_id)
            .where(
                Obligation.holder_org_id.in_(members),
                Obligation.done_at.is_(None),
                Obligation.due_at <= now,
            )
        )
    ).all()
    reviews = (
        await session.execute(
            select(Review.created_at, Review.due_at, Organization.name)
            .join(Organization, Organization.id == Review.holder_org_id)
            .where(
                Review.holder_org_id.in_(members),
                Review.closed_at.is_(None),
                Review.due_at <= now,
            )
        )
    ).all()
    items = [
        Overdue(kind, name, opened, due, (now - due).days)
        for kind, rows in (("obligation", obligations), ("review", reviews))
        for opened, due, name in rows
    ]
    return sorted(items, key=lambda item: (item.due_at, item.kind, item.holder))


# --- charts -----------------------------------------------------------------------

WIDTH = 320
LABEL_HEIGHT = 18
BAR_HEIGHT = 16
ROW_HEIGHT = LABEL_HEIGHT + BAR_HEIGHT + 10
VALUE_ROOM = 96  # room at the end of the longest bar for its number


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # None: suppressed or withheld
    text: str  # the number as shown, or the word for a suppressed cell
    y: int
    width: int

    @property
    def label_y(self) -> int:
        return self.y + 13

    @property
    def bar_y(self) -> int:
        return self.y + LABEL_HEIGHT

    @property
    def text_x(self) -> int:
        return self.width + 6

    @property
    def text_y(self) -> int:
        return self.bar_y + 13


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    summary: str
    bars: list[Bar]
    height: int
    width: int = WIDTH


@dataclass(frozen=True)
class Row:
    label: str
    cells: list[str]
    suppressed: list[bool]


@dataclass(frozen=True)
class DataTable:
    caption: str
    columns: list[str]
    rows: list[Row]


def _cell_text(cell: Cell, _: Gettext) -> str:
    return _("suppressed") if cell.suppressed or cell.count is None else str(cell.count)


def _bars(points: Sequence[tuple[str, float | None, str]]) -> tuple[list[Bar], int]:
    largest = max((v for _l, v, _t in points if v is not None), default=0.0)
    scale = (WIDTH - VALUE_ROOM) / largest if largest > 0 else 0.0
    bars = [
        Bar(label, value, text, i * ROW_HEIGHT, round(value * scale) if value else 0)
        for i, (label, value, text) in enumerate(points)
    ]
    return bars, max(ROW_HEIGHT, len(bars) * ROW_HEIGHT)


def label_of(code: str, names: Callable[[str], str]) -> str:
    """A row or column code in words: `a->b` is a pair of codes."""
    for arrow in ("->", "→"):
        if arrow in code:
            left, _, right = code.partition(arrow)
            return f"{names(left.strip())} → {names(right.strip())}"
    return names(code)


def table_chart(
    table: Table, *, chart_id: str, title: str, names: Callable[[str], str], _: Gettext
) -> tuple[Chart, DataTable]:
    """One bar per cell (a two-way table: one per pair of row and column), and the
    table with its totals."""
    one_way = len(table.columns) == 1
    points: list[tuple[str, float | None, str]] = []
    for r, row in enumerate(table.rows):
        for c, column in enumerate(table.columns):
            cell = table.cells[r][c]
            label = label_of(row, names) if one_way else f"{names(row)} → {names(column)}"
            value = None if cell.suppressed or cell.count is None else float(cell.count)
            points.append((label, value, _cell_text(cell, _)))
    bars, height = _bars(points)
    hidden = sum(1 for _l, v, _t in points if v is None)
    summary = _("%(bars)d bars, %(hidden)d of them suppressed.") % {
        "bars": len(points),
        "hidden": hidden,
    }
    if table.total is not None:
        summary += " " + _("Total: %(total)s.") % {"total": _cell_text(table.total, _)}
    chart = Chart(chart_id, title, summary, bars, height)
    return chart, _data_table(table, title, names, _, one_way=one_way)


def _data_table(
    table: Table, title: str, names: Callable[[str], str], _: Gettext, *, one_way: bool
) -> DataTable:
    """The cells; a two-way table with its row totals as a last column, and the
    column totals and grand total as a last row; a one-way table with its total."""
    columns = [_("Count")] if one_way else [names(c) for c in table.columns]
    row_totals = None if one_way else table.row_totals
    if row_totals is not None:
        columns.append(_("Total"))
    rows = []
    for r, row in enumerate(table.rows):
        cells = list(table.cells[r])
        if row_totals is not None:
            cells.append(row_totals[r])
        rows.append(
            Row(
                label_of(row, names),
                [_cell_text(c, _) for c in cells],
                [c.suppressed for c in cells],
            )
        )
    last: list[Cell] = [] if one_way else list(table.column_totals or [])
    if last and row_totals is not None and table.total is not None:
        last.append(table.total)
    elif one_way and table.total is not None:
        last = [table.total]
    if len(last) == len(columns):
        rows.append(Row(_("Total"), [_cell_text(c, _) for c in last], [c.suppressed for c in last]))
    return DataTable(title, columns, rows)


def _hours(value: float | None, _: Gettext) -> str:
    return _("withheld") if value is None else _("%(hours)s h") % {"hours": f"{value:.1f}"}


def durations_chart(
    durations: Sequence[Durations], *, titles: Callable[[Durations], str], _: Gettext
) -> tuple[Chart, DataTable]:
    """Median and 90th percentile of each time, in hours."""
    points: list[tuple[str, float | None, str]] = []
    rows = []
    for d in durations:
        name = titles(d)
        points.append(
            (_("%(time)s: median") % {"time": name}, d.median_hours, _hours(d.median_hours, _))
        )
        points.append(
            (_("%(time)s: 90th percentile") % {"time": name}, d.p90_hours, _hours(d.p90_hours, _))
        )
        rows.append(
            Row(
                name,
                [_cell_text(d.referrals, _), _hours(d.median_hours, _), _hours(d.p90_hours, _)],
                [d.referrals.suppressed, d.median_hours is None, d.p90_hours is None],
            )
        )
    bars, height = _bars(points)
    title = _("Time from sending a referral, in hours")
    summary = _("%(bars)d bars; %(hidden)d withheld.") % {
        "bars": len(points),
        "hidden": sum(1 for _l, v, _t in points if v is None),
    }
    table = DataTable(title, [_("Referrals"), _("Median"), _("90th percentile")], rows)
    return Chart("times", title, summary, bars, height), table
