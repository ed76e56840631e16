"""The tables of a report: their rows and columns, the counts of one period, and
the sums that tie their cells (the relations suppression must respect)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from service.records_requests.models import LegalBasis
from service.referrals.models import DeclineReason
from service.reports.gather import Facts
from service.reports.suppress import Relation

TOTAL = "*"
COUNT = "count"
CellKey = tuple[str, str, str]

_OUTCOMES = ("allowed", "needs_consent", "never", "mixed")
_ANSWERS = ("released", "refused")
_STEPS = ("sent", "delivered", "accepted", "declined", "closed", "withdrawn", "expired")
_DUTY_ROWS = ("opened", "done_on_time", "done_late", "became_overdue")


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    rows: tuple[str, ...]
    columns: tuple[str, ...] = (COUNT,)
    # Rows are parts of a whole (a total is shown); False: separate counts.
    partition: bool = True

    @property
    def two_way(self) -> bool:
        return self.columns != (COUNT,)


def specs(sectors: list[str]) -> list[TableSpec]:
    sector_rows = tuple(sorted(set(sectors)))
    basis = tuple(b.value for b in LegalBasis)
    return [
        TableSpec(
            "referrals_by_sector",
            "Referrals sent, by the sender's sector (rows) and the recipient's (columns)",
            sector_rows,
            sector_rows,
        ),
        TableSpec(
            "referral_steps",
            "Referrals of the collaboration that reached each step within the period",
            _STEPS,
            partition=False,
        ),
        TableSpec(
            "declines_by_reason",
            "Referrals declined within the period, by reason",
            tuple(r.value for r in DeclineReason),
        ),
        TableSpec(
            "requests_by_basis",
            "Records requests made, by legal basis (rows) and preliminary answer (columns)",
            basis,
            _OUTCOMES,
        ),
        TableSpec(
            "requests_by_answer",
            "Records requests answered within the period, by answer",
            _ANSWERS,
        ),
        TableSpec("disclosures_by_basis", "Disclosures made, by legal basis", basis),
        TableSpec(
            "consents",
            "Consents recorded, withdrawn and expired",
            ("recorded", "withdrawn", "expired"),
            partition=False,
        ),
        TableSpec(
            "obligations",
            "Duties to tell the survivor: opened, done on time, done late, and past their date",
            _DUTY_ROWS,
            partition=False,
        ),
        TableSpec(
            "reviews",
            "Reviews of emergency releases: opened, done on time, done late, and past their date",
            _DUTY_ROWS,
            partition=False,
        ),
    ]


def relations(all_specs: list[TableSpec]) -> list[Relation]:
    """Row, column and grand totals of each table, and the counts two tables share."""
    out: list[Relation] = []
    for s in all_specs:
        if not s.partition:
            continue
        n = s.name
        if s.two_way:
            for r in s.rows:
                out.append(Relation((n, r, TOTAL), tuple((n, r, c) for c in s.columns)))
            for c in s.columns:
                out.append(Relation((n, TOTAL, c), tuple((n, r, c) for r in s.rows)))
            out.append(Relation((n, TOTAL, TOTAL), tuple((n, r, TOTAL) for r in s.rows)))
            out.append(Relation((n, TOTAL, TOTAL), tuple((n, TOTAL, c) for c in s.columns)))
        else:
            out.append(Relation((n, TOTAL, COUNT), tuple((n, r, COUNT) for r in s.rows)))
    out += [
        Relation(("referral_steps", "sent", COUNT), (("referrals_by_sector", TOTAL, TOTAL),)),
        Relation(("referral_steps", "declined", COUNT), (("declines_by_reason", TOTAL, COUNT),)),
    ]
    return out


def count(facts: Facts, all_specs: list[TableSpec], bucket: int) -> dict[CellKey, int]:
    """Every cell (totals included) of sub-period `facts.buckets[bucket]`."""
    tally: Counter[CellKey] = Counter()
    start, end = facts.buckets[bucket].start, facts.buckets[bucket].end

    def within(at: datetime | None) -> bool:
        return at is not None and start <= at < end

    for b, sender, recipient, k in facts.sent:
        if b == bucket:
            tally["referrals_by_sector", sender, recipient] += k
    for b, step, reason, k in facts.steps:
        if b == bucket:
            tally["referral_steps", step, COUNT] += k
            if step == "declined":
                tally["declines_by_reason", reason or DeclineReason.other.value, COUNT] += k
    for b, basis, k in facts.disclosures:
        if b == bucket:
            tally["disclosures_by_basis", basis, COUNT] += k
    for created, basis, outcome, responded, answer in facts.requests:
        if within(created):
            tally["requests_by_basis", basis, outcome] += 1
        if within(responded):
            tally["requests_by_answer", answer, COUNT] += 1
    for row, dates in (
        ("recorded", facts.consents_recorded),
        ("withdrawn", facts.consents_withdrawn),
        ("expired", facts.consents_expired),
    ):
        tally["consents", row, COUNT] += sum(1 for at in dates if within(at))
    for name, duties in (("obligations", facts.obligations), ("reviews", facts.reviews)):
        for created, due, done in duties:
            tally[name, "opened", COUNT] += within(created)
            if within(done):
                tally[name, "done_on_time" if done and done <= due else "done_late", COUNT] += 1
            if within(due) and (done is None or done > due):
                tally[name, "became_overdue", COUNT] += 1

    cells: dict[CellKey, int] = {}
    for s in all_specs:
        n = s.name
        for r in s.rows:
            for c in s.columns:
                cells[n, r, c] = tally[n, r, c]
        if not s.partition:
            continue
        if s.two_way:
            for r in s.rows:
                cells[n, r, TOTAL] = sum(tally[n, r, c] for c in s.columns)
            for c in s.columns:
                cells[n, TOTAL, c] = sum(tally[n, r, c] for r in s.rows)
            cells[n, TOTAL, TOTAL] = sum(cells[n, r, TOTAL] for r in s.rows)
        else:
            cells[n, TOTAL, COUNT] = sum(tally[n, r, COUNT] for r in s.rows)
    return cells
