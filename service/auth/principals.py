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

_EVERY_SECTOR = frozenset(Sector)
# Sectors whose staff work cases with survivors (victim-witness units inside police
# and prosecutors' offices included); research and oversight never hold a case.
_CASE_SECTORS = _EVERY_SECTOR - {Sector.research, Sector.oversight}

# The one table of where each role means something (docs/threat-model.md "Roles and
# sectors"). A role claimed by a principal of another sector grants nothing: an
# identity provider (or a development token) that says `investigator` for a victim
# service organization's caseworker makes no records requester (issue 22, item 2).
ROLE_SECTORS: dict[Role, frozenset[Sector]] = {
    Role.caseworker: _CASE_SECTORS,
    Role.supervisor: _CASE_SECTORS,
    Role.investigator: frozenset({Sector.law_enforcement}),
    Role.prosecutor: frozenset({Sector.prosecution}),
    Role.auditor: _EVERY_SECTOR,
    Role.org_admin: _EVERY_SECTOR,
    Role.platform_admin: frozenset({Sector.government, Sector.oversight}),
}


def roles_from_claim(claimed: tuple[str, ...] | list[str], sector: Sector) -> frozenset[Role]:
    """Exact, case-sensitive matching; unknown strings grant nothing (SECURITY-TESTS A18);
    a role outside the sectors `ROLE_SECTORS` gives it grants nothing either (its
    refusal is then the 403 of a principal without the role)."""
    roles = (Role(r) for r in claimed if r in ROLE_VALUES)
    return frozenset(role for role in roles if sector in ROLE_SECTORS[role])


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
