"""Group A over HTTP: every token attack gets 401 with a Bearer challenge and changes
nothing (O-unchanged). The token layer's own unit tests are in tests/auth/."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from service.auth.principals import Role
from service.web.observability import JsonFormatter
from tests.support.databases import TestDatabase
from tests.support.world import DROP, World

pytestmark = pytest.mark.security


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(token: str) -> list[str]:
    return token.split(".")


def _with_payload(token: str, change: Callable[[dict[str, Any]], None]) -> str:
    header, payload, signature = _segments(token)
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    change(claims)
    return ".".join([header, _b64url(json.dumps(claims).encode()), signature])


def _unsigned(world: World, alg: str) -> str:
    claims = world.tokens.claims(world.orgs["platform"], ["platform_admin"])
    header = {"alg": alg, "typ": "at+jwt"}
    return f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}."


def _hs256_with_public_key(world: World) -> list[str]:
    from tests.support import devkeys

    pem, kid = devkeys.staff_private_key(world.tokens.settings.key_dir)
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    private = load_pem_private_key(pem, password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    public = private.public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    forms = [
        public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        raw,
        base64.b64encode(raw),
        public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH),
        json.dumps({"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": kid}).encode(),
    ]
    claims = world.tokens.claims(world.orgs["platform"], ["platform_admin"])
    tokens = []
    for secret in forms:
        header = {"alg": "HS256", "typ": "at+jwt", "kid": kid}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        import hashlib
        import hmac

        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        tokens.append(f"{signing_input}.{_b64url(signature)}")
    return tokens


def _foreign_key_token(world: World, **header: Any) -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    claims = world.tokens.claims(world.orgs["platform"], ["platform_admin"])
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"typ": "at+jwt", **header})


def attacks(world: World) -> dict[str, str]:
    t = world.tokens
    platform = world.orgs["platform"]
    good = t.mint(platform, [Role.platform_admin])
    now = int(world.clock.now().timestamp())
    _, kid = __import__("tests.support.devkeys", fromlist=["x"]).staff_private_key(
        t.settings.key_dir
    )
    out = {
        "alg-none": _unsigned(world, "none"),
        "alg-None": _unsigned(world, "None"),
        "alg-NONE": _unsigned(world, "NONE"),
        "signature-stripped": ".".join(_segments(good)[:2]) + ".",
        "expired": t.encode(t.claims(platform, ["platform_admin"], exp=now - 61, iat=now - 600)),
        "not-yet-valid": t.encode(t.claims(platform, ["platform_admin"], nbf=now + 61)),
        "issued-in-future": t.encode(
            t.claims(platform, ["platform_admin"], iat=now + 61, exp=now + 600)
        ),
        "wrong-issuer": t.encode(
            t.claims(platform, ["platform_admin"], iss="https://evil.example")
        ),
        "wrong-audience": t.encode(t.claims(platform, ["platform_admin"], aud="other-service")),
        "audience-list": t.encode(
            t.claims(platform, ["platform_admin"], aud=["accord-api", "other"])
        ),
        "missing-org": t.encode(t.claims(platform, ["platform_admin"], org=DROP)),
        "missing-exp": t.encode(t.claims(platform, ["platform_admin"], exp=DROP)),
        "missing-iat": t.encode(t.claims(platform, ["platform_admin"], iat=DROP)),
        "missing-sub": t.encode(t.claims(platform, ["platform_admin"], sub=DROP)),
        "missing-roles": t.encode(t.claims(platform, ["platform_admin"], roles=DROP)),
        "org-not-uuid": t.encode(t.claims(platform, ["platform_admin"], org="platform")),
        "roles-as-string": t.encode(t.claims(platform, ["platform_admin"], roles="platform_admin")),
        "exp-as-string": t.encode(t.claims(platform, ["platform_admin"], exp=str(now + 600))),
        "unknown-org": t.mint(uuid.uuid4(), [Role.platform_admin]),
        "tampered-org": _with_payload(
            t.mint(world.orgs["unrelated"], [Role.caseworker]),
            lambda c: c.update(org=str(platform)),
        ),
        "tampered-roles": _with_payload(
            t.mint(platform, [Role.caseworker]),
            lambda c: c.update(roles=["caseworker", "platform_admin"]),
        ),
        "tampered-exp": _with_payload(good, lambda c: c.update(exp=c["exp"] + 3600)),
        "unknown-kid": _foreign_key_token(world, kid="no-such-key"),
        "other-issuer-key": _foreign_key_token(world, kid=kid),
        "typ-missing": jwt.encode(
            t.claims(platform, ["platform_admin"]),
            _dev_private(world),
            algorithm="EdDSA",
            headers={"kid": kid},
        ),
        "typ-survivor": t.encode(
            t.claims(platform, ["platform_admin"]), {"typ": "accord-survivor+jwt"}
        ),
        "crit-header": t.encode(
            t.claims(platform, ["platform_admin"]), {"crit": ["x-accord-ext"], "x-accord-ext": 1}
        ),
        "lifetime-10-years": t.encode(
            t.claims(platform, ["platform_admin"], exp=now + 10 * 365 * 86400)
        ),
        "jwe-five-segments": "a.b.c.d.e",
        "garbage": "not-a-token",
    }
    for index, token in enumerate(_hs256_with_public_key(world)):
        out[f"hs256-public-key-form-{index}"] = token
    return out


def _dev_private(world: World) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from tests.support import devkeys

    pem, _ = devkeys.staff_private_key(world.tokens.settings.key_dir)
    return load_pem_private_key(pem, password=None)


ATTACK_NAMES = [
    "alg-none",
    "alg-None",
    "alg-NONE",
    "signature-stripped",
    "expired",
    "not-yet-valid",
    "issued-in-future",
    "wrong-issuer",
    "wrong-audience",
    "audience-list",
    "missing-org",
    "missing-exp",
    "missing-iat",
    "missing-sub",
    "missing-roles",
    "org-not-uuid",
    "roles-as-string",
    "exp-as-string",
    "unknown-org",
    "tampered-org",
    "tampered-roles",
    "tampered-exp",
    "unknown-kid",
    "other-issuer-key",
    "typ-missing",
    "typ-survivor",
    "crit-header",
    "lifetime-10-years",
    "jwe-five-segments",
    "garbage",
] + [f"hs256-public-key-form-{i}" for i in range(5)]


# The SECURITY-TESTS row each case belongs to, shown in its test id ("A01-alg-none").
ROWS = {
    **dict.fromkeys(["alg-none", "alg-None", "alg-NONE", "signature-stripped"], "A01"),
    **{f"hs256-public-key-form-{i}": "A02" for i in range(5)},
    **dict.fromkeys(
        ["missing-org", "missing-exp", "missing-iat", "missing-sub", "missing-roles"], "A04"
    ),
    **dict.fromkeys(["org-not-uuid", "roles-as-string", "exp-as-string"], "A04"),
    **dict.fromkeys(["expired", "not-yet-valid", "issued-in-future"], "A05"),
    **dict.fromkeys(["wrong-issuer", "wrong-audience", "audience-list"], "A06"),
    **dict.fromkeys(["other-issuer-key", "unknown-kid"], "A06"),
    **dict.fromkeys(["tampered-org", "tampered-roles", "tampered-exp"], "A07"),
    "crit-header": "A10",
    **dict.fromkeys(["typ-missing", "typ-survivor"], "A12"),
    "unknown-org": "A14",
    **dict.fromkeys(["jwe-five-segments", "garbage"], "A20"),
    "lifetime-10-years": "A21",
}


def test_every_attack_case_names_its_row() -> None:
    assert set(ROWS) == set(ATTACK_NAMES)


@pytest.mark.parametrize("name", ATTACK_NAMES, ids=[f"{ROWS[n]}-{n}" for n in ATTACK_NAMES])
async def test_A_token_attack_rejected_and_nothing_changes(
    client: httpx.AsyncClient, world: World, db: TestDatabase, name: str
) -> None:
    token = attacks(world)[name]
    before = db.dump()
    response = await client.post(
        "/v1/organizations",
        json={"name": "Should not exist", "sector": "healthcare"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401, name
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.headers["content-type"] == "application/problem+json"
    assert token not in response.text
    assert db.dump() == before


async def test_A05_within_leeway_is_accepted(client: httpx.AsyncClient, world: World) -> None:
    t = world.tokens
    now = int(world.clock.now().timestamp())
    for claims in (
        t.claims(world.orgs["vsp"], ["caseworker"], exp=now - 30, iat=now - 300),
        t.claims(world.orgs["vsp"], ["caseworker"], nbf=now + 30),
        t.claims(world.orgs["vsp"], ["caseworker"], iat=now + 30, exp=now + 600),
    ):
        r = await client.get(
            "/v1/organizations", headers={"Authorization": f"Bearer {t.encode(claims)}"}
        )
        assert r.status_code == 200, claims


async def test_A14_deactivated_organization_is_locked_out_on_the_next_request(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    headers = world.headers("vsp", Role.caseworker)
    assert (await client.get("/v1/organizations", headers=headers)).status_code == 200
    from service.organizations.models import Organization

    async with app.state.sessionmaker() as session:
        org = await session.get(Organization, world.orgs["vsp"])
        assert org is not None
        org.active = False
        await session.commit()
    assert (await client.get("/v1/organizations", headers=headers)).status_code == 401


@pytest.mark.parametrize(
    "roles", [[], ["Supervisor"], ["superuser"], ["platform_admin "], ["caseworker", "caseworker"]]
)
async def test_A18_role_edge_cases_grant_nothing_extra(
    client: httpx.AsyncClient, world: World, db: TestDatabase, roles: list[str]
) -> None:
    before = db.dump()
    token = world.tokens.mint(world.orgs["platform"], roles)
    r = await client.post(
        "/v1/organizations",
        json={"name": "X", "sector": "healthcare"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 403
    assert db.dump() == before
    assert (
        await client.get("/v1/organizations", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200


def test_A02_pyjwt_floor() -> None:
    from importlib.metadata import version

    major, minor, *_ = (int(p) for p in version("pyjwt").split(".")[:2])
    assert (major, minor) >= (2, 13)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_A_noleak_tokens_never_in_logs_metrics_or_errors(
    client: httpx.AsyncClient, world: World
) -> None:
    """O-noleak (2) for bearer tokens: rejected and accepted tokens appear in no log line,
    metric or error body; the log says why, as a code."""
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)
    try:
        tokens = attacks(world)
        good = world.tokens.mint(world.orgs["vsp"], [Role.caseworker])
        bodies = []
        for token in [*tokens.values(), good]:
            r = await client.get("/v1/organizations", headers={"Authorization": f"Bearer {token}"})
            bodies.append(r.text)
        metrics = (await client.get("/metrics")).text
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    logs = "\n".join(handler.lines)
    assert '"reason": "algorithm_not_allowed"' in logs  # the oracle can see rejections
    for token in [*tokens.values(), good]:
        for part in {token, *[p for p in token.split(".") if len(p) > 16]}:
            assert part not in logs
            assert part not in metrics
            assert all(part not in body for body in bodies)
