"""Helpers for the "People and roles" rows (docs/threat-model.md P01-P04): a second
app node on the same database whose staff tokens come from an identity provider
(a JWKS file), so one test can cover "every node" and "development tokens and an
identity provider's alike"."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from service.app import create_app
from service.clock import FrozenClock
from tests.support.databases import TestDatabase, settings_for

IDP_ISSUER = "https://idp.accord.test"
IDP_KID = "idp-key-1"


@dataclass
class IdpNode:
    """Another app node (its own engine and process state) on the same database,
    trusting an identity provider's key instead of the development key."""

    http: httpx.AsyncClient
    key: ed25519.Ed25519PrivateKey
    clock: FrozenClock

    def token(self, org: uuid.UUID, roles: list[str], sub: str, **extra: Any) -> str:
        now = int(self.clock.now().timestamp())
        claims = {
            "iss": IDP_ISSUER,
            "aud": "accord-api",
            "sub": sub,
            "iat": now,
            "exp": now + 600,
            "org": str(org),
            "roles": roles,
            "jti": uuid.uuid4().hex,
            **extra,
        }
        return jwt.encode(
            claims, self.key, algorithm="EdDSA", headers={"typ": "at+jwt", "kid": IDP_KID}
        )

    def headers(self, org: uuid.UUID, roles: list[str], sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(org, roles, sub)}"}


@asynccontextmanager
async def idp_node(
    db: TestDatabase, key_dir: Path, clock: FrozenClock, tmp_path: Path
) -> AsyncIterator[IdpNode]:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    path = tmp_path / "jwks.json"
    path.write_text(
        json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": IDP_KID}]})
    )
    app = create_app(
        settings_for(db, key_dir, jwt_jwks_file=path, jwt_issuer=IDP_ISSUER), clock=clock
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://accord.test") as http:
            yield IdpNode(http=http, key=key, clock=clock)


def without_audit(dump: str) -> str:
    """O-unchanged apart from the audit log (whose new entry the test checks)."""
    return "\n".join(line for line in dump.splitlines() if "audit_" not in line.split("(")[0])
