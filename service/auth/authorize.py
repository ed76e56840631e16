"""Authorization by organization ownership and role, in one place.

Order matters: ownership first, so another organization's object answers 404
(never 403, which would confirm it exists); then the role, 403 when lacking.
"""

from __future__ import annotations

import uuid

from service.auth.principals import Principal, Role
from service.errors import ForbiddenError, NotFoundError


def require_own_org(principal: Principal, org_id: uuid.UUID, *roles: Role) -> None:
    if not roles:
        raise ValueError("require_own_org needs at least one role")
    if principal.org_id != org_id:
        raise NotFoundError()
    if not principal.has_any(*roles):
        raise ForbiddenError("Your role does not permit this")
