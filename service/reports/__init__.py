"""Aggregate reports for a collaboration, with small-cell suppression (docs/reports.md)."""
