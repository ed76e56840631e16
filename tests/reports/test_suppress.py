"""The suppression rule on random tables, checked by the independent attacker
(linear programs over every sum, counts non-negative): nothing under the
threshold shown, and no suppressed cell pinned, whatever the counts."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.reports.suppress import Relation, suppress
from tests.reports import attacker

THRESHOLD = 11
counts = st.one_of(st.integers(0, 3), st.integers(4, 12), st.integers(13, 60))


def _table(grid: list[list[int]]) -> tuple[dict[Any, int], list[Relation]]:
    rows, cols = range(len(grid)), range(len(grid[0]))
    values: dict[Any, int] = {}
    for r in rows:
        for c in cols:
            values[r, c] = grid[r][c]
        values[r, "*"] = sum(grid[r])
    for c in cols:
        values["*", c] = sum(grid[r][c] for r in rows)
    values["*", "*"] = sum(values[r, "*"] for r in rows)
    relations = [Relation((r, "*"), tuple((r, c) for c in cols)) for r in rows]
    relations += [Relation(("*", c), tuple((r, c) for r in rows)) for c in cols]
    relations += [
        Relation(("*", "*"), tuple((r, "*") for r in rows)),
        Relation(("*", "*"), tuple(("*", c) for c in cols)),
    ]
    return values, relations


def _as_report(grid: list[list[int]], hidden: set[Any], values: dict[Any, int]) -> dict[str, Any]:
    def cell(key: Any) -> dict[str, Any]:
        return {"count": None if key in hidden else values[key]}

    rows = [str(r) for r in range(len(grid))]
    cols = [str(c) for c in range(len(grid[0]))]
    return {
        "tables": [
            {
                "name": "t",
                "rows": rows,
                "columns": cols,
                "cells": [[cell((r, c)) for c in range(len(cols))] for r in range(len(rows))],
                "row_totals": [cell((r, "*")) for r in range(len(rows))],
                "column_totals": [cell(("*", c)) for c in range(len(cols))],
                "total": cell(("*", "*")),
            }
        ],
        "durations": [],
    }


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 4).flatmap(
        lambda c: st.lists(st.lists(counts, min_size=c, max_size=c), min_size=2, max_size=4)
    )
)
def test_no_small_cell_shown_and_none_pinned(grid: list[list[int]]) -> None:
    values, relations = _table(grid)
    hidden = suppress(values, relations, THRESHOLD)
    assert all(values[k] >= THRESHOLD for k in values if k not in hidden)
    report = _as_report(grid, hidden, values)
    shown = attacker.flatten("p", report)
    eqs = [e for e in attacker.equations({"p": report}, {}) if all(v[1] == "t" for v in e)]
    truth = {("p", "t", str(k[0]), str(k[1])): v for k, v in values.items()}
    for var, (low, high) in attacker.bounds(eqs, shown).items():
        assert low <= truth[var] + 1e-6 <= high + 2e-6
        assert high - low >= 1 - 1e-6, (var, low, high)


def test_the_same_counts_give_the_same_pattern() -> None:
    values, relations = _table([[5, 20, 30], [12, 1, 40]])
    first = suppress(values, relations, THRESHOLD)
    assert first == suppress(dict(reversed(list(values.items()))), relations, THRESHOLD)
    assert (1, 1) in first
    assert (0, 0) in first
