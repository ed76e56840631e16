"""Errors of the policy engine."""

from __future__ import annotations

from collections.abc import Sequence

from service.errors import ProblemItem, RuleViolationError


class PolicySetError(Exception):
    """The policy set on disk is invalid: stops the service. Names the file and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class OrgRulesRejectedError(RuleViolationError):
    """An organization's own rules were refused (422); nothing is stored.

    Each item says why: a parse error, a schema mismatch, or a statement that is
    not a `forbid` (organizations can only tighten the shared rules)."""

    def __init__(self, problems: Sequence[ProblemItem]) -> None:
        super().__init__(
            "Organization rules must be Cedar forbid statements that validate against the schema",
            errors=problems,
        )
