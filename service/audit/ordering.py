"""Ordering: the one mechanism that orders releases against every change they read.

API.md "Ordering" and DESIGN.md guarantee 2: the decision to release a field, and
the disclosure's commit, are ordered against consent revocations, membership
removals and organization rule changes, so that in the audit log no disclosure
under a consent ever follows that consent's revocation entry. This module is the
only place that takes the locks that make it so, and the only place that states
their order. Every writer that must be ordered against revocations calls
`lock_policy` or `lock_head` (exclusive) or `share_policy` (a release) and nothing
else; a create that must not run beside another create of the same key (an
`Idempotency-Key`, an envelope id) adds `lock_key`.

The locks (PostgreSQL, migrations 0100 and 0110; SQLite below):

- **the policy lock**: an advisory lock. A release holds it *shared*
  (`share_policy`) from before it reads any input until it commits; every change
  a release reads holds it *exclusively* (`lock_policy`, `lock_head`), and so do the database
  triggers on organizations, memberships, agreement versions and organizations'
  rules (the policy-epoch trigger, migration 0090). So a change whose entry
  precedes a disclosure's committed before the release read its inputs (and the
  release saw it), and a change whose entry follows it was not committed when the
  release decided. Releases decide side by side under the shared lock.
- **the append queue**: an advisory lock granted in arrival order, so appends are
  served first come, first served rather than by whoever wakes first.
- **the head row** (`audit_head`, SELECT ... FOR UPDATE): the log's size, last
  hash, right edge and the policy epoch.
- **key locks** (`lock_key`): an advisory lock per (namespace, key), so that two
  creates of the same key (an `Idempotency-Key`, an envelope id) run one after the
  other and the second sees the first's row, while creates of other keys run side
  by side. Keyed `('audit_pending'::regclass)::oid::int` and a 32-bit hash of the
  namespace and key whose low four bits are the namespace's place in
  `KEY_NAMESPACES`: another class than the policy lock and the append queue
  (`audit_head`'s OID, keys 0 and 1), the checkpoint writers (`audit_checkpoints`),
  the sighting writers (`principal_sightings`) and the migrations (a one-bigint
  key), and two namespaces never share a key. A hash collision only makes two
  creates wait for each other; the unique constraints stay the last guard.

The lock order, everywhere:

0. a subject's row, and only where a path locks it before anything else: an
   erasure (FOR UPDATE) and the creation of a consent, access link or referral (FOR
   SHARE, `service/subjects/service.py` `get_owned`; a consent's before the policy
   and key locks its `Idempotency-Key` takes), so that nothing new is created for
   an erased subject; no path locks a subject's row after any lock below;
1. the policy lock (shared for a release, exclusive for a change a release reads);
   1a. key locks, in the order of `KEY_NAMESPACES` (an idempotency key, then an
   envelope id), at most one key per namespace (`lock_key` refuses any other
   order, and refuses to run without the policy lock);
2. a consent grant's rows, referral rows, a records request's row;
3. the append queue;
4. the head row, and organizations' event counter rows (`event_counters`), each
   taken only by a transaction that holds the queue (below).

**How an audited write appends.** The append queue and the head row are held only
for the append itself: an audited write *stages* its entry (service/audit/at_commit.py
`stage`: one INSERT, no lock) and a deferred trigger takes the queue and the row
inside the COMMIT, appends and releases them with the commit. Every consent,
subject, records-request and export write appends this way, and so does every
release and every referral send (the trigger writes its timeline events, "sent" and
one per recipient warning, citing the entry: migration 0230). Only a caller that
needs the entry's number before its commit (a referral transition's timeline event
written by Python, the sweep's) appends at once with `append`
(service/audit/log.py), which takes the queue and the row at that statement and
holds them to the commit. On SQLite `stage` appends at once (BEGIN IMMEDIATE
already serializes whole transactions).

**How an event is numbered** (service/events/outbox.py, migration 0240). On
PostgreSQL `emit` writes an event with a placeholder number and no lock, and a
second deferred trigger numbers it inside the COMMIT: it takes the append queue
(the same advisory lock, `pg_advisory_xact_lock(('audit_head'::regclass)::oid::int,
1)`), then the organization's counter row. A transaction that both staged an entry
and emitted fires the two triggers in the order it wrote them, so either may come
first; because both take the queue before any row, a transaction holds a counter
row or the head only while holding the queue, which one transaction at a time
holds, and no transaction waits for a row held by one that waits for the queue: no
deadlock whichever order each transaction fires them in. (Each trigger taking only
its own row did deadlock: measured with the race test in
tests/events/test_event_numbers.py.) A transaction that holds the queue before its
COMMIT (`append`, `lock_head`) numbers its events in the COMMIT all the same
(taking the queue again is free), or at once with `emit(number_now=True)` (the
webhook test, whose reply carries the number).

**Who holds the policy lock, and how.** A change that a release reads, and must
therefore fall wholly before or after each release decision, holds it exclusively
for its whole transaction: a consent's revocation or amendment, a records request's
answer and every other records-request change, every referral transition, the sweep,
an erasure (`lock_policy`; `lock_head` takes it with the queue and row). A release,
including a records request's delivery, holds it shared (`share_policy`) and so
decides side by side with the others; a records request's delivery then locks the
request's row (level 2), which is what keeps two deliveries of one request from
overlapping. A write that no release reads before it commits holds it shared, as a
release does (`stage` takes it so when the transaction holds it in neither mode):
creating a subject, a consent grant (version 1), a records request, recording an
export or a use of an access link. So it decides and commits beside every release,
blocking none, and waits only for a change in progress. A referral's send decides
every field as a release does and holds the lock shared from the start
(service/referrals/service.py `create`), after its subject's row FOR SHARE (level 0:
an erasure waits for the send, or the send waits and finds the erasure's mark); it
waits for another send only where the two could conflict, by its key locks (its
sender's `Idempotency-Key`, then its envelope id), so that its idempotency and
replay checks see an earlier send of the same key. A create with an
`Idempotency-Key` (service/idempotency/service.py `earlier_result`) takes the policy
lock in the mode its create needs (exclusively for a consent's amendment, else
shared), then the key's lock.

Why the ordering still holds (API.md "Ordering"; SECURITY-TESTS O-order): a
revocation holds the policy lock exclusively from before it reads the grant until
its COMMIT, in which its entry is appended. A release holds it shared from before it
reads the consent until its COMMIT, in which its entry is appended. The two modes
conflict, so one of the two transactions commits (entry included) before the other
reads anything: a release that committed first read the grant live and its entry
precedes the revocation's; a release that waited read the revocation and withholds.
No disclosure under a consent follows that consent's revocation entry. A change
that waits is not overtaken by releases arriving after it (PostgreSQL grants a lock
request only when it conflicts with no earlier waiter).

No cycle: every audited transaction holds the policy lock, shared or exclusive, from
before its first row lock. Only a transaction that holds it exclusively takes the
append queue before its COMMIT (`append`, e.g. a referral's transition, which then
may still lock rows); such a transaction runs beside no other audited one. Every
transaction that holds it shared takes the queue and the row last, inside its
COMMIT, after all its row locks, so none of them waits for a row while holding the
queue. (Measured: with staged writes that took no policy lock, a send holding the
queue waited for an event counter row held by a consent grant waiting for the
queue at its COMMIT, and PostgreSQL aborted one of them. Counter rows are now taken
only inside the COMMIT, under the queue: above.) The one writer that emits without
the policy lock, the overdue announcer (service/records_requests/overdue.py: a
duty's row FOR UPDATE, then its event), waits for the queue in its COMMIT while
holding that row; no transaction that holds the queue before its COMMIT locks a
duty's row, so that wait ends.
A transaction that waits for the policy lock holds no row, queue, head or key lock
yet (a subject's row at most, level 0). One that waits for a key lock holds the policy
lock, a subject's row FOR SHARE and keys of earlier namespaces at most, none of which
the key's holder waits for: the holder holds the policy lock already, takes no key
of an earlier namespace after this one, and locks no subject's row in a mode that
conflicts with FOR SHARE (only an erasure does, FOR UPDATE, and it takes no key).

**The policy epoch** is a counter in the head row that the triggers above advance
on any write to what a release reads besides the consent. A release reads it under
the shared policy lock (`share_policy` returns it), so a per-process cache of
release inputs keyed by epoch (service/disclosures/inputs.py) returns exactly what
a read would. `forget_head` drops this transaction's copy when it wrote a watched
table itself.

On SQLite every transaction opens with BEGIN IMMEDIATE (service/db/engine.py):
the one write lock serializes whole transactions, so the same order holds
trivially; `lock_head` and `share_policy` only read the head row, and `lock_key`
takes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Boolean, Executable, Integer, bindparam, column, select, text
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
# Set when `lock_head` took the append queue and the head row (kept by `forget_head`:
# the locks stay held to the transaction's end).
_QUEUE_KEY = "accord.append_queue"


# The policy epoch as read under the policy lock (either mode), while valid.
_SHARED_KEY = "accord.policy_shared"


# The mode in which this transaction holds the policy lock: "shared" or
# "exclusive". Unlike the two above, `forget_head` keeps it: a lock is not forgotten.
_HELD_KEY = "accord.policy_held"


_HEAD = Base.metadata.tables[AuditHead.__tablename__]


_HEAD_STATE = (_HEAD.c.size, _HEAD.c.last_hash, _HEAD.c.frontier, _HEAD.c.policy_epoch)


_SQLITE_HEAD = select(*_HEAD_STATE).where(_HEAD.c.id == HEAD_ID)


_READ_EPOCH = select(_HEAD.c.policy_epoch).where(_HEAD.c.id == HEAD_ID)


def _pg_head(function: str) -> Executable:
    return text(
        f"SELECT size, last_hash, frontier, policy_epoch FROM {function}()"  # noqa: S608 - a constant
    ).columns(*_HEAD_STATE)


# (dialect, holds the policy lock already) -> the statement that locks the head. On
# SQLite the transaction's BEGIN IMMEDIATE already holds the one write lock. On
# PostgreSQL (migration 0100): the policy lock exclusively, the append queue, then
# the row; or, in a transaction holding the policy lock (either mode), the last two.
# Run on the driver (service/db/direct.py): every audited request runs these.
_LOCK_HEAD: dict[tuple[str, bool], DirectStatement] = {
    ("sqlite", False): DirectStatement(_SQLITE_HEAD),
    ("sqlite", True): DirectStatement(_SQLITE_HEAD),
    ("postgresql", False): DirectStatement(_pg_head("accord_lock_head")),
    ("postgresql", True): DirectStatement(_pg_head("accord_lock_head_to_append")),
}


_SHARE_POLICY: dict[str, DirectStatement] = {
    "sqlite": DirectStatement(_READ_EPOCH),
    "postgresql": DirectStatement(
        text("SELECT accord_share_policy() AS policy_epoch").columns(_HEAD.c.policy_epoch)
    ),
}


# The policy lock alone, exclusively (the key of migration 0100). The epoch is read
# by a later statement, if at all: a statement's snapshot is taken before it waits.
_LOCK_POLICY = DirectStatement(
    text(
        "SELECT pg_advisory_xact_lock(CAST(CAST('audit_head' AS regclass) AS oid)::int, 0) "
        "IS NULL AS held"
    ).columns(column("held", Boolean))
)


_READ_EPOCH_DIRECT = DirectStatement(_READ_EPOCH)


# The namespaces of `lock_key`, in the order a transaction takes their keys.
KEY_NAMESPACES: Final = ("idempotency", "envelope")


# A key lock (see the module docstring for the key space), waiting until granted.
_LOCK_KEY = DirectStatement(
    text(
        "SELECT pg_advisory_xact_lock(CAST(CAST('audit_pending' AS regclass) AS oid)::int, "
        ":key) IS NULL AS held"
    )
    .bindparams(bindparam("key", type_=Integer))
    .columns(column("held", Boolean))
)


# The last key this transaction locked: (namespace's place, the lock's key).
_KEYS_KEY = "accord.key_locked"


def _in_this_transaction(session: AsyncSession, key: str) -> Any:
    """What `key` holds for the session's current transaction, else None."""
    cached = session.info.get(key)
    transaction = session.sync_session.get_transaction()
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1]
    return None


def _remember(session: AsyncSession, key: str, value: Any) -> None:
    session.info[key] = (session.sync_session.get_transaction(), value)


def queue_held(session: AsyncSession) -> bool:
    """Whether this transaction holds the append queue and the head row (`lock_head`)."""
    return bool(_in_this_transaction(session, _QUEUE_KEY))


def policy_held(session: AsyncSession) -> str | None:
    """How this transaction holds the policy lock: "shared", "exclusive" or None."""
    held: str | None = _in_this_transaction(session, _HELD_KEY)
    return held


async def lock_policy(session: AsyncSession) -> None:
    """Hold the policy lock exclusively until the transaction ends (PostgreSQL): no
    release decides meanwhile, and none that decided before is still uncommitted.
    For a change that a release reads (a revocation, an amendment, a records
    request's answer): take it before reading what the change depends on. It does
    not lock the audit head: the change's entry is staged and appended inside its
    COMMIT (service/audit/at_commit.py). A transaction that holds the lock shared
    cannot take it exclusively (two such releases would wait on each other). On
    SQLite, BEGIN IMMEDIATE already serializes whole transactions."""
    held = policy_held(session)
    if held == "exclusive":
        return
    if held == "shared":
        raise RuntimeError("a release holds the policy lock shared; it cannot take it exclusively")
    if session.sync_session.get_bind().dialect.name == "postgresql":
        await direct.execute(session, _LOCK_POLICY, {})
    else:
        # BEGIN IMMEDIATE now, so that the transaction the mode is remembered in exists.
        await session.connection()
    _remember(session, _HELD_KEY, "exclusive")


async def lock_head(session: AsyncSession) -> HeadState:
    """The head row, locked until the transaction ends, for `append` (service/audit/
    log.py), which appends at once. On PostgreSQL this also holds the policy lock
    exclusively (no release decision runs meanwhile), unless the transaction holds
    it already (`share_policy`: a release; `lock_policy`: a change). Read once per
    transaction: a second call returns the state already read (and kept current by
    `append`), without another round trip. A write that does not need its entry's
    number before its commit stages the entry instead (at_commit.py `stage`) and
    holds the head only inside its COMMIT."""
    head: HeadState | None = _in_this_transaction(session, _HEAD_KEY)
    if head is not None:
        return head
    held = policy_held(session) is not None
    dialect = session.sync_session.get_bind().dialect.name
    ((size, last_hash, frontier, epoch),) = await direct.fetch(
        session, _LOCK_HEAD[dialect, held], {}
    )
    head = HeadState(size, last_hash, list(frontier), epoch)
    _remember(session, _HEAD_KEY, head)
    _remember(session, _QUEUE_KEY, True)
    if not held:
        _remember(session, _HELD_KEY, "exclusive")
    return head


async def share_policy(session: AsyncSession) -> int:
    """Hold the policy lock shared until the transaction ends and return the policy
    epoch (service/disclosures/inputs.py) as it stands under it. Release decisions run
    side by side under the shared lock; every change to what they read (consents,
    organizations, memberships, agreements, rules) holds it exclusively, so each
    decision falls wholly before or wholly after each change (API.md "Ordering").
    The caller stages its entry (at_commit.py `stage`), appended inside its COMMIT.
    In a transaction that holds the lock exclusively already, only the epoch is
    read. On SQLite, BEGIN IMMEDIATE already serializes."""
    epoch: int | None = _in_this_transaction(session, _SHARED_KEY)
    if epoch is not None:
        return epoch
    head: HeadState | None = _in_this_transaction(session, _HEAD_KEY)
    if head is not None:
        return head.policy_epoch  # the head row is locked: nobody moves the epoch
    dialect = session.sync_session.get_bind().dialect.name
    if policy_held(session) is not None:
        ((value,),) = await direct.fetch(session, _READ_EPOCH_DIRECT, {})
    else:
        ((value,),) = await direct.fetch(session, _SHARE_POLICY[dialect], {})
        _remember(session, _HELD_KEY, "shared")
    epoch = int(value)
    _remember(session, _SHARED_KEY, epoch)
    return epoch


def forget_head(session: Session) -> None:
    """Make the next `lock_head` or `share_policy` in this transaction read the row
    again: database triggers moved a column `append` does not keep in memory (the
    policy epoch). The policy lock itself stays held, and remembered."""
    session.info.pop(_HEAD_KEY, None)
    session.info.pop(_SHARED_KEY, None)


def key_lock_id(namespace: str, key: str) -> int:
    """The second integer of the advisory lock for (`namespace`, `key`): a signed
    32-bit hash whose low four bits are the namespace's place in `KEY_NAMESPACES`,
    so keys of two namespaces never meet."""
    place = KEY_NAMESPACES.index(namespace)
    digest = hashlib.sha256(f"{namespace}\x00{key}".encode()).digest()
    return (int.from_bytes(digest[:4], "big", signed=True) & ~0xF) | place


async def lock_key(session: AsyncSession, namespace: str, key: str) -> None:
    """Hold the lock of (`namespace`, `key`) until the transaction ends (PostgreSQL),
    so that another transaction that takes it runs wholly before or after this one:
    for a create that must see an earlier create of the same key (an
    `Idempotency-Key`, an envelope id) and that otherwise runs beside other creates.
    After the policy lock (either mode) and before any row lock but a subject's (level
    0), one key per namespace in the order of `KEY_NAMESPACES`: a call out of that
    order is a programming error (RuntimeError), as it could close a cycle of waits.
    Taking the same key again is a no-op. On SQLite, BEGIN IMMEDIATE already
    serializes."""
    if policy_held(session) is None:
        raise RuntimeError("a key lock comes after the policy lock (service/audit/ordering.py)")
    place, lock_id = KEY_NAMESPACES.index(namespace), key_lock_id(namespace, key)
    last: tuple[int, int] | None = _in_this_transaction(session, _KEYS_KEY)
    if last is not None:
        if last == (place, lock_id):
            return
        if last[0] >= place:
            raise RuntimeError(
                f"key locks out of order: {namespace!r} after {KEY_NAMESPACES[last[0]]!r}"
            )
    if session.sync_session.get_bind().dialect.name == "postgresql":
        await direct.execute(session, _LOCK_KEY, {"key": lock_id})
    _remember(session, _KEYS_KEY, (place, lock_id))
