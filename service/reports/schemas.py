"""The shape of a collaboration report (docs/reports.md).

A report is tables of cells; each cell is either a count or suppressed (its count
is then `null`, never the true value). Times are median and 90th percentile in
hours, withheld when fewer referrals than the threshold stand behind them.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

_PERIOD = re.compile(r"^(?P<year>20[0-9]{2})(?:-(?:Q(?P<q>[1-4])|(?P<m>0[1-9]|1[0-2])))?$")


class Granularity(StrEnum):
    month = "month"
    quarter = "quarter"
    year = "year"


_ORDER = {Granularity.month: 0, Granularity.quarter: 1, Granularity.year: 2}


def finer_or_same(a: Granularity, b: Granularity) -> bool:
    """True when `a` is as fine as `b` or finer (month <= quarter <= year)."""
    return _ORDER[a] <= _ORDER[b]


def _month_start(year: int, month: int) -> datetime:
    year, month = (year + 1, 1) if month == 13 else (year, month)
    return datetime(year, month, 1, tzinfo=UTC)


class Period(BaseModel):
    """A fixed calendar period in UTC: `2026`, `2026-Q3` or `2026-07`. Arbitrary
    ranges do not exist: every period is a year, a quarter or a month."""

    model_config = ConfigDict(frozen=True)

    label: str
    granularity: Granularity
    start: datetime
    end: datetime  # exclusive

    @classmethod
    def parse(cls, text: str) -> Period:
        """Raises ValueError for anything that is not one of the three forms."""
        match = _PERIOD.fullmatch(text)
        if match is None:
            raise ValueError("period must be YYYY, YYYY-Qn or YYYY-MM")
        year = int(match["year"])
        if match["q"]:
            q = int(match["q"])
            return cls.of(Granularity.quarter, year, q)
        if match["m"]:
            return cls.of(Granularity.month, year, int(match["m"]))
        return cls.of(Granularity.year, year, 1)

    @classmethod
    def of(cls, granularity: Granularity, year: int, index: int) -> Period:
        """Month index 1-12, quarter index 1-4, year index 1."""
        if granularity is Granularity.month:
            return cls(
                label=f"{year}-{index:02d}",
                granularity=granularity,
                start=_month_start(year, index),
                end=_month_start(year, index + 1),
            )
        if granularity is Granularity.quarter:
            first = 3 * (index - 1) + 1
            return cls(
                label=f"{year}-Q{index}",
                granularity=granularity,
                start=_month_start(year, first),
                end=_month_start(year, first + 3),
            )
        return cls(
            label=str(year),
            granularity=granularity,
            start=datetime(year, 1, 1, tzinfo=UTC),
            end=datetime(year + 1, 1, 1, tzinfo=UTC),
        )

    def split(self, into: Granularity) -> list[Period]:
        """The periods of granularity `into` that make up this one, in order."""
        year = self.start.year
        first_month = self.start.month
        months = {Granularity.month: 1, Granularity.quarter: 3, Granularity.year: 12}
        span = months[self.granularity] // months[into]
        first = (first_month - 1) // months[into] + 1
        return [Period.of(into, year, first + i) for i in range(span)]


class Cell(BaseModel):
    """A count, or suppressed (count null). A suppressed cell says nothing of its value."""

    model_config = ConfigDict(frozen=True)

    count: int | None
    suppressed: bool


class Table(BaseModel):
    """Counts by one or two categories. One-way tables have the single column
    `count` and no row or column totals; `total` is the sum of every cell."""

    name: str
    title: str
    rows: list[str]
    columns: list[str]
    cells: list[list[Cell]]
    row_totals: list[Cell] | None = None
    column_totals: list[Cell] | None = None
    total: Cell | None = None


class Durations(BaseModel):
    """Time from a referral's sending to a later step, over the referrals that
    reached that step within the period (`referrals`, as in the `referral_steps`
    table). Withheld (null) when fewer than the threshold did."""

    name: Literal["sent_to_delivered", "sent_to_accepted"]
    title: str
    referrals: Cell
    median_hours: float | None
    p90_hours: float | None


class Report(BaseModel):
    collaboration_id: uuid.UUID
    collaboration_name: str
    period: Period
    # Cells whose count is under this are suppressed (and zero too: docs/reports.md).
    threshold: int
    # The finest period published for this deployment; coarser ones are sums of it.
    granularity: Granularity
    suppression: str
    tables: list[Table]
    durations: list[Durations]
    generated_at: datetime

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)
