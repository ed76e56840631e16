"""Development staff tokens (`accord token issue`, `accord demo`).

Signed by the local development key, which stands in for an identity provider.
Refused in production and whenever a real key source (JWKS file or URL) is
configured, so a development token can never open a real deployment.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from service.auth.principals import Role
from service.auth.tokens import STAFF_TYP, encode_eddsa
from service.clock import Clock
from service.crypto import key_id_for
from service.keyring import load_dev_staff_key
from service.settings import Settings


class DevTokensUnavailableError(RuntimeError):
    pass


def issue_dev_token(
    settings: Settings,
    *,
    clock: Clock,
    org_id: uuid.UUID,
    roles: Sequence[Role],
    sub: str,
    lifetime_seconds: int | None = None,
) -> str:
    if not settings.uses_dev_staff_key:
        raise DevTokensUnavailableError(
            "development tokens are only available outside production and when no "
            "ACCORD_JWT_JWKS_FILE or ACCORD_JWT_JWKS_URL is configured"
        )
    signer = load_dev_staff_key(settings, create=True)
    if signer is None:  # pragma: no cover - uses_dev_staff_key was checked above
        raise DevTokensUnavailableError("no development key")
    lifetime = lifetime_seconds or settings.staff_token_max_lifetime_seconds
    if not 0 < lifetime <= settings.staff_token_max_lifetime_seconds:
        raise ValueError(
            f"lifetime must be between 1 and {settings.staff_token_max_lifetime_seconds} seconds"
        )
    now = int(clock.now().timestamp())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": sub,
        "iat": now,
        "exp": now + lifetime,
        "org": str(org_id),
        "roles": [role.value for role in roles],
        "jti": uuid.uuid4().hex,
    }
    return encode_eddsa(signer, kid=key_id_for(signer.public_key), typ=STAFF_TYP, claims=claims)
