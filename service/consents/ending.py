"""What a revocation must also end, in stores the consents domain does not know.

A grant's revocation destroys, in its own transaction, every field sent under the
grant and not yet released (DESIGN.md section 6: ciphertext must not linger). Those
fields are kept by the domains that deliver (referrals, records requests), which
sit above consents in the layers (docs/architecture.md): consents may not import
them. So the composition hands every session it makes the one function that
destroys them (service/storage.py, with service/retention.py's
`shred_for_revoked_grant`), and a revocation calls it. A session made without it
refuses to revoke rather than leave ciphertext behind (fail closed).
"""

from __future__ import annotations

import uuid
from typing import Final, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from service.clock import Clock

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
