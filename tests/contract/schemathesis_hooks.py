"""Schemathesis hooks for tests/contract/run_schemathesis.py (loaded through
SCHEMATHESIS_HOOKS): one bearer token per role, taken in turn, so that every
operation is called by the role that may use it (admin, auditor, investigator,
prosecutor, caseworker) and by the roles that may not.

Tokens come from ACCORD_CONTRACT_TOKENS (a JSON list); nothing else is read.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import schemathesis
from hypothesis.internal import lambda_sources

# A fault of the tools, not of the API: deep in schemathesis's coverage phase,
# Hypothesis parses a source file to describe a lambda (only for its own messages),
# and CPython 3.11 sometimes fails that parse near the recursion limit with
# "SystemError: AST constructor recursion depth mismatch", which schemathesis then
# reports as a Runtime Error of the run. The description is cosmetic: fall back to
# Hypothesis's own "unknown" description instead.
_describe = lambda_sources._lambda_description


def _lambda_description(f: Any, *args: Any, **kwargs: Any) -> str:
    try:
        description: str = _describe(f, *args, **kwargs)
    except (SystemError, RecursionError):
        return "lambda: <unknown>"
    return description


lambda_sources._lambda_description = _lambda_description
_TOKENS = json.loads(os.environ.get("ACCORD_CONTRACT_TOKENS", "[]"))
_TURN = itertools.cycle(_TOKENS or [""])


@schemathesis.auth(refresh_interval=None)
class RoleTokens:
    def get(self, case: Any, ctx: Any) -> str:
        return str(next(_TURN))

    def set(self, case: Any, data: str, ctx: Any) -> None:
        if data:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
