"""What a revocation must also end, in stores the consents domain does not know.

A grant's revocation destroys, in its own transaction, every field sent under the
grant and not yet released (DESIGN.md section 6: ciphertext must not linger). Those
fields are kept by the domains that deliver (referrals, records requests), which
sit above consents in the layers (docs/architecture.md): consents may not import
them. So the composition hands every session it makes the one function that
destroys them (service/storage.py, with service/retention.py's
`shred_for_revoked_grant`), and a revocation calls it. A session made without it
refuses to revoke rather than leave ciphertext behind (fail closed).

A grant's expiry ends it too, without a request: the retention sweep asks
`expired_versions` which versions belong to a grant whose latest version has
expired (a release decides on the latest version, service/consents/in_force.py),
and destroys what was sent under them and not yet released.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final, Protocol

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.clock import Clock
from service.consents.models import ConsentVersion

SHRED_UNRELEASED: Final = "accord.consents.shred_unreleased"


class ShredUnreleased(Protocol):
    async def __call__(
        self, session: AsyncSession, consent_ids: set[uuid.UUID], *, clock: Clock
    ) -> None: ...


class NoShredderError(RuntimeError):
    """A programming error: the session was not made by service/storage.py."""


def shred_unreleased(session: AsyncSession) -> ShredUnreleased:
    found: ShredUnreleased | None = session.info.get(SHRED_UNRELEASED)
    if found is None:
        raise NoShredderError("this session cannot destroy unreleased fields; revocation refused")
    return found


def expired_versions(now: datetime) -> Select[uuid.UUID]:
    """The ids of every version of every grant whose latest version has expired by
    `now`: nothing sent under them can be released again."""
    latest = (
        select(ConsentVersion.grant_id, func.max(ConsentVersion.version).label("version"))
        .group_by(ConsentVersion.grant_id)
        .subquery()
    )
    expired_grants = (
        select(ConsentVersion.grant_id)
        .join(
            latest,
            (ConsentVersion.grant_id == latest.c.grant_id)
            & (ConsentVersion.version == latest.c.version),
        )
        .where(ConsentVersion.expires_at <= now)
    )
    return select(ConsentVersion.id).where(ConsentVersion.grant_id.in_(expired_grants))
