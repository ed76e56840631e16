"""The consent a release decides on, read afresh at that moment: the grant's
latest version with its revocation, its giver's alleged-abuser mark and, for a
minor's grant, the best live parent-or-guardian grant (DESIGN.md guarantee 2).
Every release reads it here, under the policy lock (service/disclosures/decide.py)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple, Protocol

from sqlalchemy import ColumnElement, FromClause, Join, and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from service.consents.models import (
    AllegedAbuser,
    ConsentGiver,
    ConsentRevocation,
    ConsentVersion,
)
from service.consents.schemas import GivenBy
from service.consents.service import ConsentState, state_of
from service.db import direct
from service.db.direct import DirectStatement
from service.policy.inputs import WILDCARD, ConsentInForce
from service.subjects.models import Subject


class GrantTerms(Protocol):
    """The terms of one consent version that decide a release: a stored version, or
    the plain row a release reads (`_Terms`)."""

    @property
    def owner_org_id(self) -> uuid.UUID: ...
    @property
    def recipients(self) -> list[str]: ...
    @property
    def purposes(self) -> list[str]: ...
    @property
    def categories(self) -> list[str]: ...
    @property
    def fields(self) -> list[str] | None: ...
    @property
    def valid_from(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def given_by(self) -> str: ...


def _terms_in_force(
    v: GrantTerms, *, revoked_at: datetime | None, barred: bool, minor: bool
) -> ConsentInForce:
    return ConsentInForce(
        owner_org=v.owner_org_id,
        recipients=frozenset(uuid.UUID(r) for r in v.recipients),
        purposes=frozenset(v.purposes),
        categories=frozenset(v.categories),
        valid_from=v.valid_from,
        expires_at=v.expires_at,
        fields=frozenset(v.fields) if v.fields is not None else None,
        revoked_at=revoked_at,
        given_by_minor=minor and v.given_by == GivenBy.survivor.value,
        given_by_named_abuser=barred,
    )


def _in_force(state: ConsentState, *, minor: bool) -> ConsentInForce:
    return _terms_in_force(
        state.version,
        revoked_at=state.revocation.revoked_at if state.revocation else None,
        barred=state.giver_barred,
        minor=minor,
    )


def _coverage(guardian: GrantTerms, minor: GrantTerms) -> int:
    """How many (recipient, purpose, category) triples of the minor's grant the
    guardian's grant also names (a wildcard counts as naming every category; the
    engine still applies the explicit-category rule field by field)."""
    recipients = len(set(guardian.recipients) & set(minor.recipients))
    purposes = len(set(guardian.purposes) & set(minor.purposes))
    categories = (
        len(minor.categories)
        if WILDCARD in guardian.categories
        else len(set(guardian.categories) & set(minor.categories))
    )
    return recipients * purposes * categories


def _best_guardian(states: list[ConsentState], minor: GrantTerms) -> ConsentState | None:
    """The guardian grant that matches the minor's best: most coverage, then the most
    recently recorded, then the id (deterministic)."""
    if not states:
        return None
    return max(
        states,
        key=lambda s: (_coverage(s.version, minor), s.version.recorded_at, str(s.version.id)),
    )


# One statement, run on the driver (service/db/direct.py: it runs on every release):
# the latest version of the consent's grant, with the grant's revocation time, the
# version's giver, whether that giver is recorded as the subject's alleged abuser,
# and whether the subject is a minor. No row lock: every change to what it reads
# (a new version, a revocation, a giver or an alleged abuser recorded, the subject's
# minority) is audited, and so holds the policy lock exclusively (`lock_head`),
# while the release reading it holds that lock shared (service/disclosures/decide.py).
_BARRED_GIVER = (
    select(AllegedAbuser.id)
    .where(
        AllegedAbuser.subject_id == ConsentVersion.subject_id,
        AllegedAbuser.person_ref == ConsentGiver.giver_ref,
    )
    .exists()
)


class _Terms(NamedTuple):
    """A consent version's columns as the release reads them (no ORM entity: this
    runs on every release)."""

    id: uuid.UUID
    grant_id: uuid.UUID
    version: int
    subject_id: uuid.UUID
    owner_org_id: uuid.UUID
    recipients: list[str]
    purposes: list[str]
    categories: list[str]
    fields: list[str] | None
    valid_from: datetime
    expires_at: datetime
    given_by: str
    recorded_at: datetime


_TERMS = _Terms._fields
_VERSIONS = ConsentVersion.__table__.c
# What `consent_from_terms` reads, in this order: the version's terms, the grant's
# revocation time, the version's giver, whether that giver is a recorded alleged
# abuser, whether the subject is a minor.
TERMS_COLUMNS: Final[tuple[ColumnElement[Any], ...]] = (
    *(_VERSIONS[name] for name in _TERMS),
    ConsentRevocation.__table__.c.revoked_at,
    ConsentGiver.__table__.c.giver_ref,
    _BARRED_GIVER,
    Subject.__table__.c.is_minor,
)


def _latest_of_grant(consent_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """The condition on `consent_versions` for the latest version of the grant that
    the version `consent_id` belongs to ((grant_id, version) is unique)."""
    named = aliased(ConsentVersion)
    later = aliased(ConsentVersion)
    return and_(
        ConsentVersion.grant_id
        == select(named.grant_id).where(named.id == consent_id).scalar_subquery(),
        ConsentVersion.version
        == select(func.max(later.version))
        .where(later.grant_id == ConsentVersion.grant_id)
        .scalar_subquery(),
    )


def _with_terms(versions: FromClause) -> Join:
    return (
        versions.outerjoin(Subject, Subject.id == ConsentVersion.subject_id)
        .outerjoin(ConsentRevocation, ConsentRevocation.grant_id == ConsentVersion.grant_id)
        .outerjoin(ConsentGiver, ConsentGiver.consent_id == ConsentVersion.id)
    )


def terms_outerjoin(left: FromClause, consent_id: ColumnElement[Any]) -> Join:
    """`left` joined to what `consent_from_terms` reads of the consent `consent_id`
    (a column of `left`): one row of TERMS_COLUMNS per row of `left`, NULLs where
    the consent is unknown. For a release that reads its consent in the same
    statement as other inputs (service/referrals/deliver.py)."""
    return _with_terms(left.outerjoin(ConsentVersion, _latest_of_grant(consent_id)))


_CONSENT_IN_FORCE = DirectStatement(
    select(*TERMS_COLUMNS)
    .select_from(_with_terms(ConsentVersion.__table__))
    .where(_latest_of_grant(bindparam("consent_id")))
)


async def consent_in_force(
    session: AsyncSession, consent_id: uuid.UUID, at: datetime
) -> ConsentInForce | None:
    """What the policy engine decides on, read afresh at release time: the grant's
    revocation and expiry as they are now; a superseded version allows nothing; a
    grant given by a person recorded as the alleged abuser carries that mark (the
    policy denies); a minor's grant comes with the live parent-or-guardian grant for
    the same subject that matches it best.

    The caller holds the policy lock shared (service/disclosures/decide.py), so no change to
    the grant can commit between this read and the caller's disclosure."""
    rows = await direct.fetch(session, _CONSENT_IN_FORCE, {"consent_id": consent_id})
    return await consent_from_terms(session, consent_id, rows[0] if rows else None, at)


async def consent_from_terms(
    session: AsyncSession, consent_id: uuid.UUID, row: Sequence[Any] | None, at: datetime
) -> ConsentInForce | None:
    """`consent_in_force` from its TERMS_COLUMNS already read under the policy lock
    (`row`; None or NULLs: no such consent). Reads more only for a minor's grant."""
    if row is None or row[0] != consent_id:
        return None  # unknown, or superseded: allows nothing
    *values, revoked_at, giver, barred, subject_is_minor = row
    terms = _Terms(*values)
    # Only a survivor's own grant depends on whether the subject is a minor.
    minor = terms.given_by == GivenBy.survivor.value and bool(subject_is_minor)
    consent = _terms_in_force(
        terms, revoked_at=revoked_at, barred=giver is not None and bool(barred), minor=minor
    )
    if not consent.given_by_minor:
        return consent
    guardians = [
        s
        for s in await _subject_states(session, terms.subject_id)
        if s.version.given_by == GivenBy.parent_or_guardian.value and s.live(at)
    ]
    best = _best_guardian(guardians, terms)
    if best is None:
        return consent
    return dataclasses.replace(consent, guardian=_in_force(best, minor=False))


async def _subject_states(session: AsyncSession, subject_id: uuid.UUID) -> list[ConsentState]:
    versions = list(
        (
            await session.scalars(
                select(ConsentVersion).where(ConsentVersion.subject_id == subject_id)
            )
        ).all()
    )
    return [await state_of(session, v) for v in versions]
