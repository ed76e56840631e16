"""Small-cell suppression over a set of cells tied by sums (docs/reports.md).

A cell is a key and a count. A `Relation` says that one cell (a total) is the sum
of others (its parts): a row total, a column total, the grand total, or the same
count shown in two tables. `suppress` returns the cells to hide:

1. primary: every count under the threshold, zero included;
2. complementary, until nothing changes: in every relation where a cell is hidden,
   at least two are, and when the total is shown the hidden parts add up to at
   least the threshold;
3. an audit that solves the published equations exactly (rational elimination)
   and narrows every hidden cell's range with the non-negativity of counts; a
   hidden cell the audit pins to one value gets another neighbour hidden, and the
   audit runs again.

Deterministic: the same counts always give the same pattern.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar

Key = Hashable
K = TypeVar("K", bound=Hashable)

# Bound propagation passes: each pass is linear in the relations; the ranges of a
# report's few hundred cells settle in a handful.
_PASSES = 64


@dataclass(frozen=True)
class Relation:
    total: Key
    parts: tuple[Key, ...]

    @property
    def members(self) -> tuple[Key, ...]:
        return (self.total, *self.parts)


def _pick(relation: Relation, hidden: set[Key], values: Mapping[Key, int]) -> Key | None:
    """The neighbour to hide next: the smallest shown part (ties by position),
    else the total when it is shown."""
    shown = [p for p in relation.parts if p not in hidden]
    if shown:
        return min(shown, key=lambda p: (values[p], relation.parts.index(p)))
    return None if relation.total in hidden else relation.total


def _complete(
    values: Mapping[Key, int], relations: list[Relation], hidden: set[Key], t: int
) -> None:
    changed = True
    while changed:
        changed = False
        for relation in relations:
            gone = [m for m in relation.members if m in hidden]
            if not gone:
                continue
            alone = len(gone) == 1
            hidden_parts = [p for p in relation.parts if p in hidden]
            small = relation.total not in hidden and sum(values[p] for p in hidden_parts) < t
            if alone or small:
                pick = _pick(relation, hidden, values)
                if pick is not None:
                    hidden.add(pick)
                    changed = True


def pinned_by_equations(
    values: Mapping[Key, int], relations: Iterable[Relation], hidden: set[Key]
) -> set[Key]:
    """Hidden cells whose value the published equations fix: those whose unit
    vector lies in the row space of the equations over the hidden cells (a row of
    the reduced row echelon form that is exactly that unit vector)."""
    order = sorted(hidden, key=repr)
    column = {k: i for i, k in enumerate(order)}
    rows: list[dict[int, Fraction]] = []
    for relation in relations:
        row: dict[int, Fraction] = {}
        for member, sign in ((relation.total, 1), *((p, -1) for p in relation.parts)):
            if member in column:
                i = column[member]
                row[i] = row.get(i, Fraction(0)) + sign
        row = {i: v for i, v in row.items() if v != 0}
        if row:
            rows.append(row)
    pivots: list[tuple[int, dict[int, Fraction]]] = []
    for row in rows:
        for col, prow in pivots:
            factor = row.get(col)
            if factor:
                for i, v in prow.items():
                    row[i] = row.get(i, Fraction(0)) - factor * v
                row = {i: v for i, v in row.items() if v != 0}
        if not row:
            continue
        col = min(row)
        lead = row[col]
        row = {i: v / lead for i, v in row.items()}
        for k, (other_col, prow) in enumerate(pivots):
            factor = prow.get(col)
            if factor:
                for i, v in row.items():
                    prow[i] = prow.get(i, Fraction(0)) - factor * v
                pivots[k] = (other_col, {i: v for i, v in prow.items() if v != 0})
        pivots.append((col, row))
    return {order[col] for col, row in pivots if len(row) == 1}


def pinned_by_bounds(
    values: Mapping[Key, int], relations: list[Relation], hidden: set[Key]
) -> set[Key]:
    """Hidden cells whose range, narrowed from [0, inf) by every relation in turn
    (a total lies between the sums of its parts' bounds, a part between the total's
    bounds less the others'), closes on one value."""
    inf = float("inf")
    lo: dict[Key, float] = {}
    hi: dict[Key, float] = {}
    for relation in relations:
        for m in relation.members:
            shown = m not in hidden
            lo[m] = values[m] if shown else 0
            hi[m] = values[m] if shown else inf
    for _ in range(_PASSES):
        moved = False
        for r in relations:
            sum_lo = sum(lo[p] for p in r.parts)
            unbounded = sum(1 for p in r.parts if hi[p] == inf)
            finite_hi = sum(hi[p] for p in r.parts if hi[p] < inf)
            sum_hi = inf if unbounded else finite_hi
            if sum_lo > lo[r.total]:
                lo[r.total], moved = sum_lo, True
            if sum_hi < hi[r.total]:
                hi[r.total], moved = sum_hi, True
            for p in r.parts:
                own_inf = hi[p] == inf
                others_hi = inf if unbounded - own_inf else finite_hi - (0 if own_inf else hi[p])
                new_lo = lo[r.total] - others_hi
                new_hi = hi[r.total] - (sum_lo - lo[p])
                if new_lo > lo[p]:
                    lo[p], moved = new_lo, True
                if new_hi < hi[p]:
                    hi[p], moved = new_hi, True
        if not moved:
            break
    return {k for k in hidden if k in lo and lo[k] == hi[k]}


def suppress(values: Mapping[K, int], relations: list[Relation], threshold: int) -> set[K]:
    """The cells to hide (see the module's docstring)."""
    counts: Mapping[Any, int] = values
    hidden: set[Any] = {k for k, v in counts.items() if v < threshold}
    while True:
        _complete(counts, relations, hidden, threshold)
        exposed = pinned_by_equations(counts, relations, hidden) | pinned_by_bounds(
            counts, relations, hidden
        )
        grew = False
        for key in sorted(exposed, key=repr):
            for relation in relations:
                if key in relation.members:
                    pick = _pick(relation, hidden, counts)
                    if pick is not None:
                        hidden.add(pick)
                        grew = True
                        break
        if exposed and not grew:
            # Every neighbour of the pinned cells is hidden already: hide the smallest
            # shown cell of any relation that holds a hidden one.
            near = {m for r in relations if hidden & set(r.members) for m in r.members}
            shown = sorted(near - hidden, key=lambda k: (counts[k], repr(k)))
            if shown:
                hidden.add(shown[0])
                grew = True
        if not grew:
            return hidden
