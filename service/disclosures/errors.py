"""The door's refusals, as RFC 9457 problems: policy would not release a field
(422, nothing stored), and an envelope seen before (422: an envelope's identity is
the hash of its canonical bytes, and it is never accepted twice)."""

from __future__ import annotations

from service.errors import (
    ProblemItem,
    RuleViolationError,
)
from service.policy.decisions import Decision


class PolicyRefusedError(RuleViolationError):
    """Policy would not release one or more fields; nothing is stored."""

    type_slug = "policy-refused"
    title = "Policy would not release one or more fields"


class EnvelopeReplayError(RuleViolationError):
    """The same envelope (same canonical bytes) is never accepted twice (422)."""

    type_slug = "envelope-replayed"
    title = "This envelope has already been accepted"


def refusal(decision: Decision) -> PolicyRefusedError:
    return PolicyRefusedError(
        errors=[
            ProblemItem(
                f"/envelope/fields/{f.name}",
                "policy would not release this field",
                {
                    "field": f.name,
                    "category": f.category,
                    "reasons": list(f.reasons),
                    "policies": list(f.policy_ids),
                },
            )
            for f in decision.denied
        ]
    )
