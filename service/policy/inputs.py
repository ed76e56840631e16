"""The facts a policy decision is made on (DESIGN.md section 5).

Everything here is metadata: organization ids and sectors, purposes, categories,
field names, times. Never a field value, never free text: a justification is
passed as "given or not", the text itself stays with the caller.

Empty scope lists match nothing (fail closed): a consent or agreement flow with
no recipients, purposes or categories allows nothing; it never means "any".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from service.sectors import Sector

# In a consent's categories, "*" covers every category that categories.toml does
# not mark `explicit`. It never covers an explicit category (DESIGN.md section 5).
WILDCARD = "*"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (no float rounding at the boundaries)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("policy inputs need timezone-aware times")
    return (moment - _EPOCH) // _MICROSECOND


@dataclass(frozen=True, slots=True)
class OrgRef:
    """An organization as the policy sees it: its id and the sector from its record."""

    id: uuid.UUID
    sector: Sector


@dataclass(frozen=True, slots=True)
class Actor:
    """The person on whose authority the fields leave (sender's or holder's staff)."""

    org_id: uuid.UUID
    roles: frozenset[str]


@dataclass(frozen=True, slots=True)
class ConsentInForce:
    """One version of a consent grant, as recorded by the subject's owner.

    `fields=None` means the consent does not restrict by field name; an empty
    set names no field and so allows nothing. `guardian` is the second consent
    by a parent or guardian that a minor's consent needs.
    """

    owner_org: uuid.UUID
    recipients: frozenset[uuid.UUID]
    purposes: frozenset[str]
    categories: frozenset[str]
    valid_from: datetime
    expires_at: datetime
    fields: frozenset[str] | None = None
    revoked_at: datetime | None = None
    given_by_minor: bool = False
    given_by_named_abuser: bool = False
    guardian: ConsentInForce | None = None

    @property
    def restricts_fields(self) -> bool:
        if self.fields is not None:
            return True
        return self.guardian is not None and self.guardian.restricts_fields


@dataclass(frozen=True, slots=True)
class AgreementFlow:
    """One permitted flow of a collaboration agreement that sender and recipient
    both belong to (at decision time). `effective_to=None` means open-ended."""

    from_sector: str
    to_sector: str
    purposes: frozenset[str]
    categories: frozenset[str]
    effective_from: datetime
    effective_to: datetime | None = None

    def in_effect(self, moment: datetime) -> bool:
        if moment < self.effective_from:
            return False
        return self.effective_to is None or moment < self.effective_to


@dataclass(frozen=True, slots=True)
class FieldRef:
    name: str
    category: str


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """Everything one batch decision needs.

    `sender` is the sending (referral) or holding (records request) organization;
    `recipient` receives the fields. `agreements` holds the flows of every
    collaboration both are members of now; the engine applies each flow's
    effective window at `at`.
    """

    actor: Actor
    sender: OrgRef
    recipient: OrgRef
    subject_owner: uuid.UUID
    purpose: str
    legal_basis: str
    at: datetime
    fields: tuple[FieldRef, ...]
    consent: ConsentInForce | None = None
    agreements: tuple[AgreementFlow, ...] = ()
    justification_given: bool = False

    def with_fields(self, fields: Iterable[FieldRef]) -> DecisionRequest:
        return DecisionRequest(
            actor=self.actor,
            sender=self.sender,
            recipient=self.recipient,
            subject_owner=self.subject_owner,
            purpose=self.purpose,
            legal_basis=self.legal_basis,
            at=self.at,
            fields=tuple(fields),
            consent=self.consent,
            agreements=self.agreements,
            justification_given=self.justification_given,
        )


@dataclass(frozen=True, slots=True)
class FlowTuple:
    from_sector: str
    to_sector: str
    purpose: str
    category: str


def flows_in_effect(
    agreements: Iterable[AgreementFlow], moment: datetime
) -> frozenset[AgreementFlow]:
    return frozenset(flow for flow in agreements if flow.in_effect(moment))


def expand_flows(
    flows: Iterable[AgreementFlow], *, from_sector: str, to_sector: str, purpose: str
) -> frozenset[FlowTuple]:
    """The (from, to, purpose, category) tuples that flows permit for one sender
    sector, recipient sector and purpose. Cedar has no quantifier over a set of
    records, so the policy checks membership of the one tuple a field needs (and
    still compares all four parts); only tuples that could match are passed, to
    keep the entity small. A flow with an empty list expands to nothing."""
    return frozenset(
        FlowTuple(flow.from_sector, flow.to_sector, purpose, category)
        for flow in flows
        if flow.from_sector == from_sector
        and flow.to_sector == to_sector
        and purpose in flow.purposes
        for category in flow.categories
    )
