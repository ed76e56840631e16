"""An audited write's entry, appended when its transaction commits (PostgreSQL).

The audit head is the one lock every audited transaction of every application node
takes, so how long it is held bounds the whole service's audited throughput. An
append through `append` (service/audit/log.py) holds it from the round trip that
locks it, through the one that writes the entry, to the COMMIT, and across the
event loop's turns between them (3-8 ms per delivery under load, measured). Here a
release stages its entry instead (`stage`: one INSERT, no lock), and a deferred
trigger (migration 0110) takes the append queue and the head, completes, hashes and
writes the entry, its tree nodes, the new right edge and the timeline events that
cite it, during the COMMIT itself: the head is held only while the server runs
that trigger and flushes. The write and its entry are still one transaction
(DESIGN.md guarantee 3): if the trigger fails, the commit fails and nothing is kept.

Every audited write appends this way unless it needs its entry's number before it
commits: releases, and every consent, subject, access-link, records-request and
export write (service/audit/ordering.py, "How an audited write appends"). Measured
before, an audited write that appended at once held the head, and with it the
append queue every release waits in at its COMMIT, across its remaining round
trips (docs/benchmarks/soak.md).

The entry's number is known only at the commit, so the trigger sends it to the
client in a NOTICE on that COMMIT's reply (`token seq`). asyncpg hands notices to
the connection's log listeners (installed by `install`) before the COMMIT's own
result reaches the caller, so when the commit returns, `StagedEntry.seq` is set.

On SQLite (one writer: BEGIN IMMEDIATE serializes whole transactions) `stage`
appends at once through `append`.
"""

from __future__ import annotations

import json
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any, Final

from accord_client.audit_format import GENESIS_PREV, entry_bytes
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from service.audit.log import AuditEvent, CitingRow, append, event_document
from service.audit.models import AuditPending
from service.audit.ordering import policy_held, share_policy
from service.clock import Clock
from service.db import direct
from service.db.direct import DirectStatement
from service.db.engine import Base
from service.errors import ServiceUnavailableError

NOTICE_PREFIX: Final = "accord-audit-append "
# Between the two values only the head knows: canonical JSON sorts the top-level
# keys, and no key of an entry sorts between "prev" and "seq".
_BETWEEN: Final = b'","seq":'
_PENDING: Final = Base.metadata.tables[AuditPending.__tablename__]
_EVENT_COLUMNS: Final = {
    "referral_id": "event_referral_id",
    "at": "event_at",
    "event": "event",
    "actor": "event_actor",
    "actor_org_id": "event_actor_org_id",
    "detail": "event_detail",
}
_STAGE: Final = DirectStatement(
    insert(_PENDING),
    keys=(
        "token",
        "at",
        "action",
        "actor_org_id",
        "counterpart_org_id",
        "subject_ref",
        "body_head",
        "body_tail",
        *_EVENT_COLUMNS.values(),
        "event_also",
    ),
)


class EntryNotReportedError(ServiceUnavailableError):
    """The transaction committed, but its entry's number did not arrive: the body,
    built only after the commit, is not sent (a retry decides and audits again)."""


@dataclass(eq=False)
class StagedEntry:
    """An entry that exists once its transaction commits. `seq` is set by then."""

    token: uuid.UUID
    seq: int | None = field(default=None)

    def committed_seq(self) -> int:
        """The entry's number; only after the commit."""
        if self.seq is None:
            raise EntryNotReportedError("the audit entry's number was not reported at commit")
        return self.seq


# token (hex) -> the staged entry waiting for its number. Weak: an entry whose
# transaction rolled back is forgotten with the request that staged it.
_WAITING: weakref.WeakValueDictionary[str, StagedEntry] = weakref.WeakValueDictionary()


def body_parts(document: dict[str, Any]) -> tuple[bytes, bytes]:
    """(head, tail): the entry's canonical bytes are
    `head + prev + b'","seq":' + decimal(seq) + tail` for any prev (hex) and seq.

    Built from the canonical bytes of the document with the genesis `prev` and seq 0,
    split at the last `"prev":"...","seq":0` (the top-level keys come after
    "details", so a look-alike nested in the details always comes before it)."""
    marker = b',"prev":"' + GENESIS_PREV.encode("ascii") + _BETWEEN + b"0,"
    body = entry_bytes({**document, "prev": GENESIS_PREV, "seq": 0})
    at = body.rfind(marker)
    if at < 0:
        raise ValueError("an entry's canonical bytes lack the prev and seq keys")
    split = at + len(b',"prev":"')
    return body[:split], body[split + len(GENESIS_PREV) + len(_BETWEEN) + 1 :]


async def stage(
    session: AsyncSession, event: AuditEvent, *, clock: Clock, citing: CitingRow | None = None
) -> StagedEntry:
    """Append `event` when the session's transaction commits (PostgreSQL), or now
    (SQLite). The caller reads the number with `committed_seq()` after the commit.
    `citing` must be a referral timeline event (the only kind the trigger writes),
    with any further events of the same referral (`CitingRow.also`: the trigger of
    migration 0230 writes them after it, in order, citing the same entry)."""
    if citing is not None and citing.table.name != "referral_events":
        raise ValueError("only a referral timeline event can cite an entry at commit")
    if session.sync_session.get_bind().dialect.name != "postgresql":
        appended = await append(session, event, clock=clock, citing=citing)
        return StagedEntry(token=uuid.uuid4(), seq=appended.seq)
    if policy_held(session) is None:
        # Every audited transaction holds the policy lock in one mode: one that takes
        # the append queue only inside its COMMIT must not run beside one that holds
        # the queue already (an `append`, under the lock exclusively), or each could
        # wait for a row lock the other holds (service/audit/ordering.py, "No cycle").
        await share_policy(session)
    at = clock.now()
    head, tail = body_parts(event_document(event, seq=0, at=at, prev=GENESIS_PREV))
    staged = StagedEntry(token=uuid.uuid4())
    params: dict[str, Any] = {
        "token": staged.token,
        "at": at,
        "action": event.action,
        "actor_org_id": event.actor.org_id if event.actor else None,
        "counterpart_org_id": event.counterpart_org_id,
        "subject_ref": event.subject_ref,
        "body_head": head,
        "body_tail": tail,
        **dict.fromkeys(_EVENT_COLUMNS.values()),
        "event_also": None,
    }
    if citing is not None:
        params |= {_EVENT_COLUMNS[name]: value for name, value in citing.values.items()}
        if citing.also:
            params["event_also"] = json.dumps(list(citing.also))
    _WAITING[staged.token.hex] = staged
    await direct.execute(session, _STAGE, params)
    return staged


def _on_notice(_connection: object, message: Any) -> None:
    """An asyncpg log listener: record the number the commit-time trigger reports."""
    text = getattr(message, "message", "")
    if not text.startswith(NOTICE_PREFIX):
        return
    token, _, seq = text[len(NOTICE_PREFIX) :].partition(" ")
    try:
        key, number = uuid.UUID(token).hex, int(seq)
    except ValueError:
        return  # not the trigger's (a deployer's own notice that looks like it)
    staged = _WAITING.pop(key, None)
    if staged is not None:
        staged.seq = number


def install(engine: AsyncEngine) -> None:
    """Listen for the trigger's notices on every PostgreSQL connection of `engine`."""
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_log_listener(_on_notice)
