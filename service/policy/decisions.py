"""What a policy decision returns: per field, allow or deny, the policies that
determined it with their plain-language reasons, and the policy-set version.

Both the deciding policy ids and the version go into the audit entry
(DESIGN.md section 5). A `ReleasePermit` is the only thing the release code
accepts, and only `Decision.permit()` makes one (STYLE.md convention 5).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final


class Effect(StrEnum):
    allow = "allow"
    deny = "deny"


# Policy ids the engine itself uses when no policy file decided.
DEFAULT_DENY: Final = "default-deny"
UNKNOWN_CATEGORY: Final = "unknown-category"
UNKNOWN_PURPOSE: Final = "unknown-purpose"
UNKNOWN_LEGAL_BASIS: Final = "unknown-legal-basis"
ENGINE_SOURCE: Final = "engine"


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """A policy that determined a decision: its `@id`, its `@reason`, and where it
    comes from (a file in `policies/`, `org/<uuid>/v<version>`, or `engine`)."""

    id: str
    reason: str
    source: str


@dataclass(frozen=True, slots=True)
class FieldDecision:
    name: str
    category: str
    effect: Effect
    policies: tuple[PolicyRef, ...]
    # Duties that come with an allowed release: "notify_survivor",
    # "flag_for_review", "redisclosure_notice", "attach_consent".
    obligations: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.allow

    @property
    def policy_ids(self) -> tuple[str, ...]:
        return tuple(ref.id for ref in self.policies)

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(ref.reason for ref in self.policies)


@dataclass(frozen=True, slots=True)
class OrgRulesVersion:
    org_id: uuid.UUID
    version: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Decision:
    policy_version: str
    org_rules: tuple[OrgRulesVersion, ...]
    fields: tuple[FieldDecision, ...]
    # The one instant every input was read at (set by service/disclosures/decide.py).
    decided_at: datetime | None = None

    @property
    def allowed(self) -> tuple[FieldDecision, ...]:
        return tuple(f for f in self.fields if f.allowed)

    @property
    def denied(self) -> tuple[FieldDecision, ...]:
        return tuple(f for f in self.fields if not f.allowed)

    @property
    def all_allowed(self) -> bool:
        return all(f.allowed for f in self.fields)

    def permit(self) -> ReleasePermit:
        """The fields this decision allows, as the one type the release code accepts."""
        return ReleasePermit(
            _issued_by=_ISSUER,
            policy_version=self.policy_version,
            org_rules=self.org_rules,
            fields=self.allowed,
        )


class _Issuer:
    """A private token: a ReleasePermit made anywhere but `Decision.permit` fails."""


_ISSUER: Final = _Issuer()


@dataclass(frozen=True, slots=True)
class ReleasePermit:
    _issued_by: _Issuer
    policy_version: str
    org_rules: tuple[OrgRulesVersion, ...]
    fields: tuple[FieldDecision, ...]

    def __post_init__(self) -> None:
        if self._issued_by is not _ISSUER:
            raise TypeError("a ReleasePermit is made only by Decision.permit()")
        if any(not f.allowed for f in self.fields):
            raise TypeError("a ReleasePermit holds allowed fields only")

    @property
    def field_names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields)
