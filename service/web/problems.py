"""The problem responses each router declares, so the OpenAPI contract shows them."""

from __future__ import annotations

from typing import Any

from service.errors import PROBLEM_JSON

_DESCRIPTIONS = {
    400: "Malformed request (invalid JSON, duplicate key, bad cursor)",
    401: "Missing or invalid token",
    403: "Role lacks the right",
    404: "Not found or not visible to this principal",
    409: "State conflict",
    413: "Body too large",
    415: "Not JSON",
    431: "Too many or too large header fields",
    422: "Valid JSON that breaks a rule; nothing stored",
    429: "Rate limited",
    503: "Transient fault; retry after Retry-After",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    chosen = codes or tuple(_DESCRIPTIONS)
    return {
        code: {"content": {PROBLEM_JSON: {}}, "description": _DESCRIPTIONS[code]} for code in chosen
    }


ALL_PROBLEMS = problem_responses()
