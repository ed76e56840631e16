"""Ordering: the one mechanism that orders releases against every change they read.

API.md "Ordering" and DESIGN.md guarantee 2: the decision to release a field, and
the disclosure's commit, are ordered against consent revocations, membership
removals and organization rule changes, so that in the audit log no disclosure
under a consent ever follows that consent's revocation entry. This module is the
only place that takes the locks that make it so, and the only place that states
their order. Every writer that must be ordered against revocations calls
`lock_head` (exclusive) or `share_policy` (a release) and nothing else.

The locks (PostgreSQL, migrations 0100 and 0110; SQLite below):

- **the policy lock**: an advisory lock. A release holds it *shared*
  (`share_policy`) from before it reads any input until it commits; every other
  audited writer holds it *exclusively* (`lock_head`), and so do the database
  triggers on organizations, memberships, agreement versions and organizations'
  rules (the policy-epoch trigger, migration 0090). So a change whose entry
  precedes a disclosure's committed before the release read its inputs (and the
  release saw it), and a change whose entry follows it was not committed when the
  release decided. Releases decide side by side under the shared lock.
- **the append queue**: an advisory lock granted in arrival order, so appends are
  served first come, first served rather than by whoever wakes first.
- **the head row** (`audit_head`, SELECT ... FOR UPDATE): the log's size, last
  hash, right edge and the policy epoch.

The lock order, everywhere:

0. a subject's row, and only where a path locks it before anything else: an
   erasure (FOR UPDATE) and the creation of a consent or access link (FOR SHARE,
   `service/subjects/service.py` `get_owned`), so that nothing new is created for
   an erased subject; no path locks a subject's row after any lock below;
1. the policy lock (shared for a release, exclusive for everything else);
2. a consent grant's rows, referral rows, a records request's row;
3. the append queue;
4. the head row.

A revocation or amendment, every referral transition, every records-request
change and the sweep take the policy lock exclusively first (`lock_head`), so
none runs beside a release; a release takes its row locks before the append queue
and the head row last (a referral delivery takes those two only inside its COMMIT,
where a deferred trigger appends its staged entry: service/audit/at_commit.py),
so no two transactions can wait on each other in a cycle.

**The policy epoch** is a counter in the head row that the triggers above advance
on any write to what a release reads besides the consent. A release reads it under
the shared policy lock (`share_policy` returns it), so a per-process cache of
release inputs keyed by epoch (service/disclosures/inputs.py) returns exactly what
a read would. `forget_head` drops this transaction's copy when it wrote a watched
table itself.

On SQLite every transaction opens with BEGIN IMMEDIATE (service/db/engine.py):
the one write lock serializes whole transactions, so the same order holds
trivially; `lock_head` and `share_policy` only read the head row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from service.audit.models import AuditHead
from service.db import direct
from service.db.direct import DirectStatement
from service.db.engine import Base

HEAD_ID = 1


@dataclass
class HeadState:
    """The locked head row as this transaction sees it; `append` keeps it current."""

    size: int
    last_hash: str
    frontier: list[str]
    policy_epoch: int


_HEAD_KEY = "accord.audit_head"


_SHARED_KEY = "accord.policy_shared"


_HEAD = Base.metadata.tables[AuditHead.__tablename__]


_HEAD_STATE = (_HEAD.c.size, _HEAD.c.last_hash, _HEAD.c.frontier, _HEAD.c.policy_epoch)


_SQLITE_HEAD = select(*_HEAD_STATE).where(_HEAD.c.id == HEAD_ID)


def _pg_head(function: str) -> Executable:
    return text(
        f"SELECT size, last_hash, frontier, policy_epoch FROM {function}()"  # noqa: S608 - a constant
    ).columns(*_HEAD_STATE)


# (dialect, holds the policy lock shared) -> the statement that locks the head. On
# SQLite the transaction's BEGIN IMMEDIATE already holds the one write lock. On
# PostgreSQL (migration 0100): the policy lock exclusively, the append queue, then
# the row; or, in a transaction holding the policy lock shared, the last two.
# Run on the driver (service/db/direct.py): every audited request runs these.
_LOCK_HEAD: dict[tuple[str, bool], DirectStatement] = {
    ("sqlite", False): DirectStatement(_SQLITE_HEAD),
    ("sqlite", True): DirectStatement(_SQLITE_HEAD),
    ("postgresql", False): DirectStatement(_pg_head("accord_lock_head")),
    ("postgresql", True): DirectStatement(_pg_head("accord_lock_head_to_append")),
}


_SHARE_POLICY: dict[str, DirectStatement] = {
    "sqlite": DirectStatement(select(_HEAD.c.policy_epoch).where(_HEAD.c.id == HEAD_ID)),
    "postgresql": DirectStatement(
        text("SELECT accord_share_policy() AS policy_epoch").columns(_HEAD.c.policy_epoch)
    ),
}


def _in_this_transaction(session: AsyncSession, key: str) -> Any:
    """What `key` holds for the session's current transaction, else None."""
    cached = session.info.get(key)
    transaction = session.sync_session.get_transaction()
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1]
    return None


async def lock_head(session: AsyncSession) -> HeadState:
    """The head row, locked until the transaction ends. On PostgreSQL this also
    holds the policy lock exclusively (no release decision runs meanwhile), unless
    the transaction holds it shared (`share_policy`: a release about to append its
    entry). Read once per transaction: a second call returns the state already read
    (and kept current by `append`), without another round trip."""
    head: HeadState | None = _in_this_transaction(session, _HEAD_KEY)
    if head is not None:
        return head
    shared = _in_this_transaction(session, _SHARED_KEY) is not None
    dialect = session.sync_session.get_bind().dialect.name
    ((size, last_hash, frontier, epoch),) = await direct.fetch(
        session, _LOCK_HEAD[dialect, shared], {}
    )
    head = HeadState(size, last_hash, list(frontier), epoch)
    session.info[_HEAD_KEY] = (session.sync_session.get_transaction(), head)
    return head


async def share_policy(session: AsyncSession) -> int:
    """Hold the policy lock shared until the transaction ends and return the policy
    epoch (service/disclosures/inputs.py) as it stands under it. Release decisions run
    side by side under the shared lock; every change to what they read (consents,
    organizations, memberships, agreements, rules) holds it exclusively, so each
    decision falls wholly before or wholly after each change (API.md "Ordering").
    The caller appends its entry with `lock_head`, which then waits only for the
    append queue and the head row. On SQLite, BEGIN IMMEDIATE already serializes."""
    epoch: int | None = _in_this_transaction(session, _SHARED_KEY)
    if epoch is not None:
        return epoch
    head: HeadState | None = _in_this_transaction(session, _HEAD_KEY)
    if head is not None:
        return head.policy_epoch  # the head, and so the policy lock, held exclusively
    dialect = session.sync_session.get_bind().dialect.name
    ((value,),) = await direct.fetch(session, _SHARE_POLICY[dialect], {})
    epoch = int(value)
    session.info[_SHARED_KEY] = (session.sync_session.get_transaction(), epoch)
    return epoch


def forget_head(session: Session) -> None:
    """Make the next `lock_head` or `share_policy` in this transaction read the row
    again: database triggers moved a column `append` does not keep in memory (the
    policy epoch)."""
    session.info.pop(_HEAD_KEY, None)
    session.info.pop(_SHARED_KEY, None)
