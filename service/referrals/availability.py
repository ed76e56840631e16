"""What the directory says about a referral's recipient at the moment of sending
(issue 22, item 3; docs/referrals.md "When the recipient is not accepting
referrals"): a referral is taken all the same, and the sender is told."""

from __future__ import annotations

import uuid
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from service.organizations.models import Organization

# What the directory said about the recipient when a referral was sent anyway (an
# emergency must still get through: issue 22, item 3), as timeline event names.
NOT_ACCEPTING: Final = "recipient_not_accepting"
LIMITED_HOURS: Final = "recipient_limited_hours"
RECIPIENT_WARNINGS: Final = (NOT_ACCEPTING, LIMITED_HOURS)


async def recipient_warnings(session: AsyncSession, recipient_org_id: uuid.UUID) -> list[str]:
    """`recipient_not_accepting` if the recipient's directory entry says it is not
    accepting referrals; `recipient_limited_hours` if it is not staffed around the
    clock (its `hours` are business, extended or on-call hours: nobody may read the
    referral before then). The directory keeps no time zone, so the service does not
    guess whether this moment is within those hours; the sender sees the hours in
    the directory."""
    recipient = await session.get(Organization, recipient_org_id)
    if recipient is None:  # pragma: no cover - checked before the referral is stored
        return []
    warnings = []
    if not recipient.accepting_referrals:
        warnings.append(NOT_ACCEPTING)
    if recipient.hours != "24/7":
        warnings.append(LIMITED_HOURS)
    return warnings
