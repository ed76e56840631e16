"""A release's inputs other than the consent, reused while the policy epoch stands.

Every release reads, besides the consent, both organizations' status and sector,
the agreement flows they share and their own rules. Those change rarely, and every
change moves the policy epoch, a counter in the audit head row that database
triggers advance on any write to `organizations` (status, sector), memberships,
agreement versions, agreement signatures (migration 0210) or organizations' rules
(migration 0090): no code path, and no
operator's SQL, can change an input without moving it. A release reads the epoch
under the policy lock it holds shared (service/disclosures/decide.py; the triggers take that
lock exclusively, migration 0100), so the inputs it reuses are exactly those it
would read: while the release holds the lock nobody can move the epoch, and an
entry made for an older epoch is never used for a newer one.

The cache is per process and safe to lose (DESIGN.md section 8): on a miss, or on
another node, the inputs are read from the database. A transaction that itself
writes one of the watched tables forgets the epoch and head it read (the triggers
moved the epoch in the database, not in memory), so its next release re-reads it, and
it neither uses nor fills the cache: what it reads includes its own uncommitted
change, and a rolled-back epoch number is reused by the next committed change.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from itertools import chain
from typing import Any, Final

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from service.audit.ordering import forget_head
from service.collaborations.models import AgreementSignature, AgreementVersion, Membership
from service.collaborations.service import shared_agreement_flows
from service.organizations.models import Organization, OrganizationPolicy
from service.organizations.rules import org_rules_for
from service.policy.engine import PolicyEngine
from service.policy.inputs import AgreementFlow, OrgRef
from service.policy.org_rules import OrgRules
from service.sectors import Sector

# The key under which a sessionmaker's sessions find the process's cache (db.py).
CACHE_KEY: Final = "accord.release_inputs"
# The transaction (if any) in which this session wrote a watched table.
_WROTE_KEY: Final = "accord.release_inputs.wrote"
WATCHED_MODELS: Final = (
    Organization,
    Membership,
    AgreementVersion,
    AgreementSignature,
    OrganizationPolicy,
)


@dataclass(frozen=True, slots=True)
class PartyInputs:
    """Both organizations as the policy sees them (None: unknown or inactive), the
    agreement flows they share and their own rules."""

    sender: OrgRef | None
    recipient: OrgRef | None
    agreements: tuple[AgreementFlow, ...]
    rules: tuple[OrgRules, ...]


class ReleaseInputCache:
    """Party inputs by (sender, recipient, policy-set version) for one epoch; a newer
    epoch empties it. Bounded; touched only from the event loop's thread."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._epoch = -1
        self._items: OrderedDict[tuple[uuid.UUID, uuid.UUID, str], PartyInputs] = OrderedDict()

    def get(self, epoch: int, key: tuple[uuid.UUID, uuid.UUID, str]) -> PartyInputs | None:
        if epoch != self._epoch:
            return None
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, epoch: int, key: tuple[uuid.UUID, uuid.UUID, str], value: PartyInputs) -> None:
        if epoch < self._epoch:
            return  # read under an older epoch than one already seen: never reused
        if epoch > self._epoch:
            self._items.clear()
            self._epoch = epoch
        self._items[key] = value
        if len(self._items) > self._size:
            self._items.popitem(last=False)


async def _read(
    session: AsyncSession, engine: PolicyEngine, sender_id: uuid.UUID, recipient_id: uuid.UUID
) -> PartyInputs:
    rows = await session.execute(
        select(Organization.id, Organization.active, Organization.sector).where(
            Organization.id.in_([sender_id, recipient_id])
        )
    )
    orgs = {row.id: OrgRef(id=row.id, sector=Sector(row.sector)) for row in rows if row.active}
    sender, recipient = orgs.get(sender_id), orgs.get(recipient_id)
    if sender is None or recipient is None:
        return PartyInputs(sender, recipient, (), ())
    return PartyInputs(
        sender,
        recipient,
        await shared_agreement_flows(session, sender_id, recipient_id),
        tuple(await org_rules_for(session, engine, [sender_id, recipient_id])),
    )


async def party_inputs(
    session: AsyncSession,
    engine: PolicyEngine,
    sender_id: uuid.UUID,
    recipient_id: uuid.UUID,
    *,
    epoch: int,
) -> PartyInputs:
    """The inputs as of `epoch`, read under the policy lock the caller holds.

    A transaction that wrote a watched table reads past the cache and never fills
    it: it sees its own uncommitted change under a moved epoch, and if it rolls
    back, the next committed change reuses that epoch number."""
    cache: ReleaseInputCache | None = session.info.get(CACHE_KEY)
    wrote = session.info.get(_WROTE_KEY)
    if wrote is not None and wrote is session.sync_session.get_transaction():
        cache = None
    key = (sender_id, recipient_id, engine.version)
    if cache is not None:
        found = cache.get(epoch, key)
        if found is not None:
            return found
    inputs = await _read(session, engine, sender_id, recipient_id)
    if cache is not None:
        cache.put(epoch, key, inputs)
    return inputs


@event.listens_for(Session, "before_flush")
def _forget_head_on_watched_writes(session: Session, _context: Any, _instances: Any) -> None:
    if any(
        isinstance(obj, WATCHED_MODELS)
        for obj in chain(session.new, session.dirty, session.deleted)
    ):
        forget_head(session)
        session.info[_WROTE_KEY] = session.get_transaction()
