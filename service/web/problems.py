"""The problem responses a router declares beyond those its shape implies.

The OpenAPI document lists, for each operation, exactly the statuses it can answer
(service/web/openapi.py): those its dependencies, parameters and body imply, those
of its own rules (service/web/operation_ids.py `DOMAIN_ERRORS`), and any declared
here with `responses=problem_responses(...)`. Each is rendered there with the shared
`Problem` schema and an example.
"""

from __future__ import annotations

from typing import Any

from service.errors import PROBLEM_JSON


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Declare statuses an operation's own rules can answer (the description and body
    schema are filled in by service/web/openapi.py)."""
    return {code: {"content": {PROBLEM_JSON: {}}, "description": "Problem"} for code in codes}


ALL_PROBLEMS: dict[int | str, dict[str, Any]] = {}
"""Kept for the routers that name it: declares nothing beyond what the document
computes (listing every status on every operation said things that cannot happen)."""
