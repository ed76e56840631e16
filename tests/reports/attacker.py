"""The attacker of the report tests, written apart from service/reports/: every
published report of a collaboration turned into linear equations (each table's row,
column and grand totals, the counts two tables share, and each year's cells as the
sum of its quarters'), and for every suppressed cell the range that arithmetic
leaves it: the least and greatest value it takes in a non-negative solution."""

from __future__ import annotations

from typing import Any

from scipy.optimize import linprog  # type: ignore[import-untyped]

Var = tuple[str, str, str, str]  # (period, table, row, column)

SHARED = (
    (("referral_steps", "sent", "count"), ("referrals_by_sector", "*", "*")),
    (("referral_steps", "declined", "count"), ("declines_by_reason", "*", "count")),
    (("referral_steps", "delivered", "count"), ("durations", "sent_to_delivered", "count")),
    (("referral_steps", "accepted", "count"), ("durations", "sent_to_accepted", "count")),
)


def flatten(period: str, report: dict[str, Any]) -> dict[Var, int | None]:
    """Every cell of a JSON report: None when suppressed."""
    out: dict[Var, int | None] = {}
    for t in report["tables"]:
        n = t["name"]
        for r, row in zip(t["rows"], t["cells"], strict=True):
            for c, cell in zip(t["columns"], row, strict=True):
                out[period, n, r, c] = cell["count"]
        for r, cell in zip(t["rows"], t["row_totals"] or [], strict=False):
            out[period, n, r, "*"] = cell["count"]
        for c, cell in zip(t["columns"], t["column_totals"] or [], strict=False):
            out[period, n, "*", c] = cell["count"]
        if t["total"] is not None:
            col = "*" if t["column_totals"] is not None else "count"
            out[period, n, "*", col] = t["total"]["count"]
    for d in report["durations"]:
        out[period, "durations", d["name"], "count"] = d["referrals"]["count"]
    return out


def equations(
    reports: dict[str, dict[str, Any]], years: dict[str, list[str]]
) -> list[dict[Var, int]]:
    """Each equation as {cell: coefficient} summing to zero."""
    eqs: list[dict[Var, int]] = []
    for p, report in reports.items():
        for t in report["tables"]:
            n = t["name"]
            if t["total"] is None:
                continue
            if t["column_totals"] is not None:
                for r in t["rows"]:
                    eqs.append({(p, n, r, "*"): 1} | {(p, n, r, c): -1 for c in t["columns"]})
                for c in t["columns"]:
                    eqs.append({(p, n, "*", c): 1} | {(p, n, r, c): -1 for r in t["rows"]})
                eqs.append({(p, n, "*", "*"): 1} | {(p, n, r, "*"): -1 for r in t["rows"]})
            else:
                eqs.append({(p, n, "*", "count"): 1} | {(p, n, r, "count"): -1 for r in t["rows"]})
        for a, b in SHARED:
            eqs.append({(p, *a): 1, (p, *b): -1})
    for year, parts in years.items():
        if year not in reports:
            continue
        for var in flatten(year, reports[year]):
            eqs.append({var: 1} | {(q, *var[1:]): -1 for q in parts if q in reports})
    return eqs


def bounds(
    eqs: list[dict[Var, int]], shown: dict[Var, int | None]
) -> dict[Var, tuple[float, float]]:
    """For every suppressed cell, the least and the greatest value it can take in a
    non-negative solution of every equation given every published count: two
    linear programs per cell (HiGHS). The greatest is inf when unbounded."""
    unknown = sorted(v for v, n in shown.items() if n is None)
    index = {v: i for i, v in enumerate(unknown)}
    rows, rhs = [], []
    for eq in eqs:
        row = [0.0] * len(unknown)
        const = 0.0
        for v, k in eq.items():
            n = shown.get(v)
            if v in index:
                row[index[v]] += k
            elif n is not None:
                const -= k * n
        if any(row):
            rows.append(row)
            rhs.append(const)
    out: dict[Var, tuple[float, float]] = {}
    for v, i in index.items():
        c = [0.0] * len(unknown)
        found = []
        for sign in (1.0, -1.0):
            c[i] = sign
            res = linprog(c, A_eq=rows or None, b_eq=rhs or None, bounds=(0, None), method="highs")
            if res.status == 3:  # unbounded
                found.append(float("inf") if sign < 0 else float("-inf"))
            else:
                assert res.status == 0, res.message
                found.append(sign * res.fun)
        out[v] = (found[0], found[1])
    return out
