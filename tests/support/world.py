"""Test fixtures for organizations and tokens: factories, not survivor data."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from service.auth.principals import Principal, Role
from service.clock import FrozenClock
from service.collaborations import service as collab_service
from service.collaborations.schemas import AgreementInput, CollaborationCreate, Flow
from service.organizations import service as org_service
from service.organizations.schemas import OrganizationCreate
from service.sectors import Sector
from service.settings import Settings
from tests.support import agreement_keys, devkeys

BOOTSTRAP = Principal(
    subject="test-bootstrap",
    org_id=uuid.UUID(int=0),
    sector=Sector.oversight,
    roles=frozenset({Role.platform_admin}),
)


class TokenFactory:
    """Mints staff tokens with the service's development key, independently of the
    service's own issuing code, and can produce the malformed ones of group A."""

    def __init__(self, settings: Settings, clock: FrozenClock) -> None:
        self.settings = settings
        self.clock = clock

    def _key(self) -> tuple[Any, str]:
        pem, kid = devkeys.staff_private_key(self.settings.key_dir)
        return load_pem_private_key(pem, password=None), kid

    def claims(
        self, org_id: uuid.UUID, role_names: list[str], /, sub: str = "alice", **extra: Any
    ) -> dict[str, Any]:
        """Positional-only org and roles, so `org=` and `roles=` can override them."""
        now = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "sub": sub,
            "iat": now,
            "exp": now + 600,
            "org": str(org_id),
            "roles": role_names,
            "jti": uuid.uuid4().hex,
        }
        claims.update(extra)
        return {k: v for k, v in claims.items() if v is not _DROP}

    def encode(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        key, kid = self._key()
        return jwt.encode(
            claims, key, algorithm="EdDSA", headers={"typ": "at+jwt", "kid": kid, **(headers or {})}
        )

    def mint(
        self, org: uuid.UUID, roles: list[str] | tuple[Role, ...], sub: str = "alice", **extra: Any
    ) -> str:
        role_names = [r.value if isinstance(r, Role) else r for r in roles]
        return self.encode(self.claims(org, role_names, sub, **extra))

    def headers(self, org: uuid.UUID, *roles: Role | str, sub: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(org, list(roles), sub)}"}  # type: ignore[arg-type]


_DROP = object()
DROP: Any = _DROP

FLOW_CATEGORIES = ["identity", "contact", "language", "needs", "demographics", "safety_plan"]


@dataclass
class World:
    app: Any
    tokens: TokenFactory
    clock: FrozenClock
    orgs: dict[str, uuid.UUID] = field(default_factory=dict)
    collaboration_id: uuid.UUID | None = None
    # Each organization's registered Ed25519 signing key (issue 24: agreements bind
    # only the members that countersigned them): org key -> (key id, seed).
    signing_keys: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    SECTORS: ClassVar[dict[str, Sector]] = {
        "vsp": Sector.victim_services,
        "shelter": Sector.shelter,
        "police": Sector.law_enforcement,
        "prosecutor": Sector.prosecution,
        "research": Sector.research,
        "oversight": Sector.oversight,
        "unrelated": Sector.victim_services,
        "platform": Sector.government,
    }

    @classmethod
    async def build(cls, app: Any, tokens: TokenFactory, clock: FrozenClock) -> World:
        world = cls(app=app, tokens=tokens, clock=clock)
        async with app.state.sessionmaker() as session:
            for key, sector in cls.SECTORS.items():
                org = await org_service.create(
                    session,
                    principal=BOOTSTRAP,
                    data=OrganizationCreate(name=f"{key} org", sector=sector),
                    clock=clock,
                )
                world.orgs[key] = org.id
                world.signing_keys[key] = await agreement_keys.register(
                    session, org.id, sector, clock
                )
            agreement = AgreementInput(
                flows=[
                    Flow(
                        from_sector=Sector.victim_services,
                        to_sector=Sector.shelter,
                        purposes=["services_referral"],
                        categories=FLOW_CATEGORIES,
                    )
                ],
                effective_from=clock.now() - timedelta(days=1),
                effective_to=clock.now() + timedelta(days=365),
                document_sha256=hashlib.sha256(b"test mou").hexdigest(),
            )
            members = [world.orgs[k] for k in ("vsp", "shelter", "police", "prosecutor")]
            collab = await collab_service.create(
                session,
                principal=BOOTSTRAP,
                data=CollaborationCreate(
                    name="Test task force", agreement=agreement, members=members
                ),
                vocabulary=app.state.vocabulary,
                clock=clock,
            )
            world.collaboration_id = collab.id
            await session.commit()
        await world.sign_agreement()
        return world

    async def sign_agreement(self, *orgs: str) -> None:
        """Every member (or those named) countersigns the test collaboration's latest
        agreement version with its registered key, as its org_admin would."""
        assert self.collaboration_id is not None
        await agreement_keys.sign_latest(self, self.collaboration_id, orgs)

    def headers(self, org: str, *roles: Role | str, sub: str = "alice") -> dict[str, str]:
        return self.tokens.headers(self.orgs[org], *roles, sub=sub)
