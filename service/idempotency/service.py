"""`Idempotency-Key` for creates (subjects, consents): the same key and the same
request return the first result (200 instead of 201), never a second object; the
same key with another request is a 422 and changes nothing.

The check and the record happen in the create's own transaction, under the policy
lock (in the mode the create needs: exclusively for a change a release reads, such
as a consent's amendment, else shared) and the key's own lock
(service/audit/ordering.py `lock_key`, namespace "idempotency"), so two concurrent
retries with one key run one after the other and the second sees the first's
record, while creates with other keys run side by side. A create that locks a
subject's row locks it before calling `once` (the lock order: a subject's row comes
first). The record's primary key (organization, key) stays the last guard."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.ordering import lock_key, lock_policy, policy_held, share_policy
from service.auth.principals import Principal
from service.clock import Clock
from service.errors import ProblemItem, RuleViolationError
from service.idempotency.models import IdempotencyRecord

T = TypeVar("T")


def fingerprint(route: str, body: Any) -> str:
    material = json.dumps([route, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(material.encode()).hexdigest()


def lock_name(org_id: uuid.UUID, key: str) -> str:
    """What `lock_key` locks for an organization's `Idempotency-Key` (also a referral's
    send: service/referrals/service.py)."""
    return f"{org_id}:{key}"


async def earlier_result(
    session: AsyncSession,
    *,
    principal: Principal,
    key: str,
    route: str,
    request_sha256: str,
    exclusive: bool = False,
) -> uuid.UUID | None:
    """The id the first request with this key created, or None for a new key. Takes
    the policy lock (exclusively with `exclusive`, for a create that changes what a
    release reads; else shared, unless the transaction holds it already), then the
    key's lock, and holds both until the transaction ends."""
    if exclusive:
        await lock_policy(session)
    elif policy_held(session) is None:
        await share_policy(session)
    await lock_key(session, "idempotency", lock_name(principal.org_id, key))
    record = await session.get(IdempotencyRecord, (principal.org_id, key))
    if record is None:
        return None
    if record.route != route or record.request_sha256 != request_sha256:
        raise RuleViolationError(
            "This Idempotency-Key was used with a different request",
            errors=[ProblemItem("header:/Idempotency-Key", "reused with another request")],
        )
    return record.resource_id


async def remember(
    session: AsyncSession,
    *,
    principal: Principal,
    key: str,
    route: str,
    request_sha256: str,
    resource_id: uuid.UUID,
    clock: Clock,
) -> None:
    session.add(
        IdempotencyRecord(
            org_id=principal.org_id,
            key=key,
            route=route,
            request_sha256=request_sha256,
            resource_id=resource_id,
            created_at=clock.now(),
        )
    )
    await session.flush()


async def once(
    session: AsyncSession,
    *,
    principal: Principal,
    key: str | None,
    route: str,
    body: Any,
    create: Callable[[], Awaitable[T]],
    load: Callable[[uuid.UUID], Awaitable[T]],
    id_of: Callable[[T], uuid.UUID],
    clock: Clock,
    exclusive: bool = False,
) -> tuple[T, bool]:
    """Run `create` once per key: (result, created). Without a key, just create.
    `exclusive`: `create` takes the policy lock exclusively (`earlier_result`)."""
    if key is None:
        return await create(), True
    sha = fingerprint(route, body)
    earlier = await earlier_result(
        session,
        principal=principal,
        key=key,
        route=route,
        request_sha256=sha,
        exclusive=exclusive,
    )
    if earlier is not None:
        return await load(earlier), False
    result = await create()
    await remember(
        session,
        principal=principal,
        key=key,
        route=route,
        request_sha256=sha,
        resource_id=id_of(result),
        clock=clock,
    )
    return result, True
