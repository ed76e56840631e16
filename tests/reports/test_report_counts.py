"""A generated federation with known counts: every published cell is the true
count or suppressed, no count under the threshold is ever published, and an
attacker holding every report the API gives (every period it allows, JSON and
CSV) cannot pin a suppressed cell by arithmetic."""

from __future__ import annotations

import csv
import io
import statistics
from typing import Any

import httpx
import pytest

from service.auth.principals import Role
from service.reports.schemas import Period
from tests.reports import attacker
from tests.reports.conftest import Fed

QUARTERS = [f"2026-Q{q}" for q in range(1, 5)]
MONTHS = [f"2026-{m:02d}" for m in range(1, 13)]


async def _report(client: httpx.AsyncClient, fed: Fed, period: str) -> dict[str, Any]:
    response = await client.get(fed.url(period), headers=fed.world.headers("vsp", Role.caseworker))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _true_hours(fed: Fed, p: Period, name: str) -> list[float]:
    step = {"sent_to_delivered": "delivered", "sent_to_accepted": "accepted"}[name]
    out = []
    for created, _, _, events, _ in fed.truth.referrals:
        at = next((at for at, e in events if e == step), None)
        if at is not None and p.start <= at < p.end:
            out.append((at - created).total_seconds() / 3600)
    return out


def true_cells(fed: Fed, period: str, report: dict[str, Any]) -> dict[attacker.Var, int]:
    """The truth of every cell the report shows, totals summed from the generator's counts."""
    p = Period.parse(period)
    raw = fed.truth.cells(p.start, p.end)
    out: dict[attacker.Var, int] = {}
    for var in attacker.flatten(period, report):
        _, table, row, col = var
        rows = next((t["rows"] for t in report["tables"] if t["name"] == table), [row])
        cols = next((t["columns"] for t in report["tables"] if t["name"] == table), [col])
        rs = rows if row == "*" else [row]
        cs = cols if col == "*" or (row == "*" and col == "count") else [col]
        out[var] = sum(raw.get((table, r, c), 0) for r in rs for c in cs)
    return out


async def test_published_cells_are_true_or_suppressed(client: httpx.AsyncClient, fed: Fed) -> None:
    published = suppressed = medians = 0
    for period in [*QUARTERS, "2026"]:
        report = await _report(client, fed, period)
        threshold = report["threshold"]
        assert threshold == 11
        truth = true_cells(fed, period, report)
        shown = attacker.flatten(period, report)
        for var, count in shown.items():
            if count is None:
                suppressed += 1
                continue
            published += 1
            assert count == truth[var], var
            assert count >= threshold, var
        # Every true count the generator made has a cell in the report.
        p = Period.parse(period)
        for (table, row, col), n in fed.truth.cells(p.start, p.end).items():
            if row != "*" and n:
                assert (period, table, row, col) in shown, (table, row, col)
        for d in report["durations"]:
            hours = _true_hours(fed, p, d["name"])
            if len(hours) < threshold:
                assert d["median_hours"] is d["p90_hours"] is None
                continue
            # Python's own median and inclusive deciles, against the report's.
            assert d["median_hours"] == pytest.approx(round(statistics.median(hours), 1), abs=0.11)
            p90 = statistics.quantiles(hours, n=10, method="inclusive")[-1]
            assert d["p90_hours"] == pytest.approx(round(p90, 1), abs=0.11)
            medians += 1
    assert medians > 2
    assert published > 20, (published, suppressed)
    assert suppressed > 20, (published, suppressed)


async def test_an_attacker_with_every_report_cannot_pin_a_suppressed_cell(
    client: httpx.AsyncClient, fed: Fed
) -> None:
    headers = fed.world.headers("research", Role.auditor)
    reports: dict[str, dict[str, Any]] = {}
    for period in ["2025", "2026", "2027", *QUARTERS, *MONTHS, "2025-Q4", "2027-Q1"]:
        response = await client.get(fed.url(period), headers=headers)
        if response.status_code == 200:
            reports[period] = response.json()
            # The CSV of the same period says exactly what the JSON says.
            csv_answer = await client.get(fed.url(period, format="csv"), headers=headers)
            rows = list(csv.DictReader(io.StringIO(csv_answer.text)))
            counts = [r["count"] for r in rows if r["column"] not in ("median_hours", "p90_hours")]
            assert sorted(counts) == sorted(
                "" if v is None else str(v)
                for v in attacker.flatten(period, reports[period]).values()
            )
        else:
            assert response.status_code == 422, (period, response.status_code)
    # Months are finer than the deployment publishes; 2027 has not ended.
    assert set(reports) == {"2025", "2025-Q4", "2026", *QUARTERS}
    years = {"2026": QUARTERS, "2025": ["2025-Q4"]}
    truth: dict[attacker.Var, int] = {}
    shown: dict[attacker.Var, int | None] = {}
    for period, report in reports.items():
        truth |= true_cells(fed, period, report)
        shown |= attacker.flatten(period, report)
    unknown = sorted(v for v, n in shown.items() if n is None)
    assert len(unknown) > 50
    ranges = attacker.bounds(attacker.equations(reports, years), shown)
    for var, (low, high) in ranges.items():
        assert low <= truth[var] + 1e-6, var
        assert high >= truth[var] - 1e-6, var
    pinned = {v: r for v, r in ranges.items() if r[1] - r[0] < 1 - 1e-6}
    assert not pinned, list(pinned.items())[:10]


def test_the_attacker_pins_cells_of_a_weak_suppression() -> None:
    """The attacker check can fail: one small cell hidden alone in a row is pinned."""
    report = {
        "tables": [
            {
                "name": "requests_by_answer",
                "rows": ["open", "released", "refused"],
                "columns": ["count"],
                "cells": [[{"count": 30}], [{"count": None}], [{"count": 40}]],
                "row_totals": None,
                "column_totals": None,
                "total": {"count": 73},
            }
        ],
        "durations": [],
    }
    var = ("2026", "requests_by_answer", "released", "count")
    shown = attacker.flatten("2026", report)
    eqs = [e for e in attacker.equations({"2026": report}, {}) if var in e]
    assert attacker.bounds(eqs, shown)[var] == (3.0, 3.0)
