"""Who is acting: the authenticated principal, with its sector read from the database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from service.sectors import Sector


class Role(StrEnum):
    caseworker = "caseworker"
    supervisor = "supervisor"
    investigator = "investigator"
    prosecutor = "prosecutor"
    auditor = "auditor"
    org_admin = "org_admin"
    platform_admin = "platform_admin"


ROLE_VALUES = frozenset(r.value for r in Role)


def roles_from_claim(claimed: tuple[str, ...] | list[str]) -> frozenset[Role]:
    """Exact, case-sensitive matching; unknown strings grant nothing (SECURITY-TESTS A18)."""
    return frozenset(Role(r) for r in claimed if r in ROLE_VALUES)


@dataclass(frozen=True)
class Principal:
    subject: str
    org_id: uuid.UUID
    sector: Sector
    roles: frozenset[Role]

    def has_any(self, *roles: Role) -> bool:
        return any(role in self.roles for role in roles)

    @property
    def label(self) -> str:
        """What audit entries and logs name: the token subject, never a person's name."""
        return self.subject


@dataclass(frozen=True)
class SurvivorPrincipal:
    """A survivor's read-only access token, bound to one subject of one organization."""

    subject_id: uuid.UUID
    org_id: uuid.UUID
    token_id: str

    @property
    def label(self) -> str:
        """Audit entries name the access link, never the person."""
        return f"survivor-link:{self.token_id}"
