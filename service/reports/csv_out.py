"""A report as CSV: one line per cell, every text cell neutralized against
formula injection (OWASP "CSV Injection": a leading =, +, -, @, tab or carriage
return gets a single quote in front, and every field is quoted)."""

from __future__ import annotations

import csv
import io

from service.reports.schemas import Cell, Report

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
HEADER = ("collaboration", "period", "table", "row", "column", "count", "suppressed")


def neutralize(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _count(cell: Cell) -> str:
    return "" if cell.count is None else str(cell.count)


def render(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(HEADER)
    name, period = report.collaboration_name, report.period.label

    def row(table: str, r: str, c: str, cell: Cell) -> None:
        fields = (name, period, table, r, c, _count(cell), "yes" if cell.suppressed else "no")
        writer.writerow([neutralize(f) for f in fields])

    for table in report.tables:
        for r, cells in zip(table.rows, table.cells, strict=True):
            for c, cell in zip(table.columns, cells, strict=True):
                row(table.name, r, c, cell)
        for r, cell in zip(table.rows, table.row_totals or [], strict=False):
            row(table.name, r, "total", cell)
        for c, cell in zip(table.columns, table.column_totals or [], strict=False):
            row(table.name, "total", c, cell)
        if table.total is not None:
            row(table.name, "total", "total", table.total)
    for d in report.durations:
        row("durations", d.name, "referrals", d.referrals)
        for label, hours in (("median_hours", d.median_hours), ("p90_hours", d.p90_hours)):
            shown = hours is not None
            fields = (name, period, "durations", d.name, label, str(hours) if shown else "")
            writer.writerow([neutralize(f) for f in (*fields, "no" if shown else "yes")])
    return out.getvalue()
