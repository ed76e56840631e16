"""Group A at the token layer: algorithms and keys (A03), claims (A04, A06), kinds
(A12), formats (A20), lifetimes (A21), and JWKS URL behaviour. The HTTP half is in
tests/security/test_A_tokens_http.py."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import nacl.signing
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from service.auth.keys import JwksError, RemoteJwks, StaticKeys
from service.auth.setup import STAFF_REQUIRED, SURVIVOR_REQUIRED
from service.auth.tokens import (
    STAFF_TYP,
    SURVIVOR_TYP,
    TokenPolicy,
    TokenRejectedError,
    TokenVerifier,
    encode_eddsa,
)
from service.clock import FrozenClock
from service.errors import ServiceUnavailableError

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
T0 = int(NOW.timestamp())
ORG = "5e1f0c4a-8b2d-4c6e-9f1a-2b3c4d5e6f70"


def _jwk(key: Any, kid: str, algo: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(algo.to_jwk(key.public_key()))
    jwk["kid"] = kid
    return jwk


def _policy(algorithms: set[str], typ: str = STAFF_TYP, aud: str = "accord-api") -> TokenPolicy:
    staff = typ == STAFF_TYP
    return TokenPolicy(
        typ=typ,
        issuer="idp",
        audience=aud,
        algorithms=frozenset(algorithms),
        max_lifetime_seconds=3600,
        leeway_seconds=60,
        # The service's own lists: a staff token without `jti` could not be revoked (P01).
        required=STAFF_REQUIRED if staff else SURVIVOR_REQUIRED,
    )


def _claims(**extra: Any) -> dict[str, Any]:
    claims = {
        "iss": "idp",
        "aud": "accord-api",
        "sub": "alice",
        "iat": T0,
        "exp": T0 + 600,
        "org": ORG,
        "roles": ["caseworker"],
        "jti": "token-1",
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not ...}


class Keys:
    def __init__(self) -> None:
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.es = ec.generate_private_key(ec.SECP256R1())
        self.es256k = ec.generate_private_key(ec.SECP256K1())
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
        self.jwks = {
            "keys": [
                _jwk(self.ed, "ed", OKPAlgorithm),
                _jwk(self.es, "es", ECAlgorithm),
                _jwk(self.rsa, "rsa", RSAAlgorithm),
                _jwk(self.rsa_small, "rsa-small", RSAAlgorithm),
            ]
        }


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def _verifier(keys: Keys, algorithms: set[str], tmp_path: Path) -> TokenVerifier:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(keys.jwks))
    source = StaticKeys.from_file(path)
    return TokenVerifier(
        clock=FrozenClock(NOW),
        staff_policy=_policy(algorithms),
        staff_keys=source,
        survivor_policy=_policy({"EdDSA"}, typ=SURVIVOR_TYP, aud="accord-survivor"),
        survivor_keys=source,
    )


def _sign(key: Any, alg: str, kid: str, claims: dict[str, Any] | None = None, **hdr: Any) -> str:
    headers = {"typ": STAFF_TYP, "kid": kid, **hdr}
    return jwt.encode(claims or _claims(), key, algorithm=alg, headers=headers)


async def test_allowed_algorithms_verify(keys: Keys, tmp_path: Path) -> None:
    verifier = _verifier(keys, {"EdDSA", "ES256", "RS256"}, tmp_path)
    for key, alg, kid in (
        (keys.ed, "EdDSA", "ed"),
        (keys.es, "ES256", "es"),
        (keys.rsa, "RS256", "rsa"),
    ):
        claims = await verifier.verify_staff(_sign(key, alg, kid))
        assert claims.org == uuid.UUID(ORG)
        assert claims.roles == ("caseworker",)


@pytest.mark.parametrize(
    ("alg", "kid", "which"),
    [
        ("RS256", "rsa", "rsa"),  # RS256 when only EdDSA is configured
        ("PS256", "rsa", "rsa"),
        ("ES256K", "es", "es256k"),
        ("ES256", "ed", "es"),  # a key of another family under the token's kid
    ],
)
async def test_A03_algorithms_outside_the_allow_list(
    keys: Keys, tmp_path: Path, alg: str, kid: str, which: str
) -> None:
    verifier = _verifier(keys, {"EdDSA"}, tmp_path)
    key = {"rsa": keys.rsa, "es256k": keys.es256k, "es": keys.es}[which]
    with pytest.raises(TokenRejectedError):
        await verifier.verify_staff(_sign(key, alg, kid))


async def test_A03_hs512_and_small_rsa(keys: Keys, tmp_path: Path) -> None:
    verifier = _verifier(keys, {"EdDSA", "RS256"}, tmp_path)
    hs = jwt.encode(_claims(), "k" * 64, algorithm="HS512", headers={"typ": STAFF_TYP, "kid": "ed"})
    with pytest.raises(TokenRejectedError):
        await verifier.verify_staff(hs)
    with pytest.warns(jwt.warnings.InsecureKeyLengthWarning):
        small_token = _sign(keys.rsa_small, "RS256", "rsa-small")
    with pytest.raises(TokenRejectedError) as small:
        await verifier.verify_staff(small_token)
    assert small.value.reason == "rsa_key_too_small"
    # Cross-family: an RS256 header naming the EdDSA key.
    with pytest.raises(TokenRejectedError) as mismatch:
        await verifier.verify_staff(_sign(keys.rsa, "RS256", "ed"))
    assert mismatch.value.reason == "key_type_mismatch"


@pytest.mark.parametrize(
    "claims",
    [
        _claims(iss=...),
        _claims(aud=...),
        _claims(exp=None),
        _claims(iat=None),
        _claims(sub=None),
        _claims(org=None),
        _claims(roles=None),
        _claims(jti=...),
        _claims(jti=None),
        _claims(jti=""),
        _claims(exp=True),
        _claims(iat=float(T0)),
        _claims(sub=7),
        _claims(sub=""),
        _claims(org=ORG.upper()),
        _claims(org="{" + ORG + "}"),
        _claims(roles=[1]),
        _claims(aud=""),
        _claims(aud=["accord-api"]),
    ],
)
async def test_A04_A06_claims_missing_null_or_wrong_type(
    keys: Keys, tmp_path: Path, claims: dict[str, Any]
) -> None:
    verifier = _verifier(keys, {"EdDSA"}, tmp_path)
    with pytest.raises(TokenRejectedError):
        await verifier.verify_staff(_sign(keys.ed, "EdDSA", "ed", claims))


async def test_A12_token_kinds_never_interchange(keys: Keys, tmp_path: Path) -> None:
    verifier = _verifier(keys, {"EdDSA"}, tmp_path)
    survivor = _sign(
        keys.ed,
        "EdDSA",
        "ed",
        _claims(aud="accord-survivor", sub=str(uuid.uuid4()), jti="x", roles=...),
        typ=SURVIVOR_TYP,
    )
    with pytest.raises(TokenRejectedError):
        await verifier.verify_staff(survivor)
    staff = _sign(keys.ed, "EdDSA", "ed")
    with pytest.raises(TokenRejectedError):
        await verifier.verify_survivor(staff)
    # A raw Ed25519 signature (a checkpoint or receipt) dressed as a JWT.
    raw = keys.ed.sign(b"checkpoint body")
    fake = ".".join(
        base64.urlsafe_b64encode(p).rstrip(b"=").decode()
        for p in (
            json.dumps({"alg": "EdDSA", "typ": STAFF_TYP, "kid": "ed"}).encode(),
            b"checkpoint body",
            raw,
        )
    )
    with pytest.raises(TokenRejectedError):
        await verifier.verify_staff(fake)


async def test_A20_oversized_and_odd_formats(keys: Keys, tmp_path: Path) -> None:
    verifier = _verifier(keys, {"EdDSA"}, tmp_path)
    good = _sign(keys.ed, "EdDSA", "ed")
    header, payload, signature = good.split(".")
    big = _sign(keys.ed, "EdDSA", "ed", pad="x" * 65536)
    json_serialization = json.dumps(
        {"payload": payload, "protected": header, "signature": signature}
    )
    b64_false = _sign(keys.ed, "EdDSA", "ed", b64=False, crit=["b64"])
    for token in (big, "a.b.c.d.e", json_serialization, b64_false, f"{header}..{signature}"):
        with pytest.raises(TokenRejectedError):
            await verifier.verify_staff(token)


async def test_A21_lifetime_caps(keys: Keys, tmp_path: Path) -> None:
    verifier = _verifier(keys, {"EdDSA"}, tmp_path)
    too_long = _claims(exp=T0 + 10 * 365 * 86400)
    with pytest.raises(TokenRejectedError) as exc:
        await verifier.verify_staff(_sign(keys.ed, "EdDSA", "ed", too_long))
    assert exc.value.reason == "lifetime_exceeds_cap"
    survivor_week = _claims(
        aud="accord-survivor", sub=str(uuid.uuid4()), jti="x", exp=T0 + 7 * 86400, roles=...
    )
    with pytest.raises(TokenRejectedError):
        await verifier.verify_survivor(
            _sign(keys.ed, "EdDSA", "ed", survivor_week, typ=SURVIVOR_TYP)
        )
    within = dict(survivor_week, exp=T0 + 600)
    claims = await verifier.verify_survivor(_sign(keys.ed, "EdDSA", "ed", within, typ=SURVIVOR_TYP))
    assert claims.jti == "x"


async def test_service_signed_token_verifies_with_pyjwt(keys: Keys) -> None:
    """encode_eddsa (the service's own tokens) produces standard JWS."""
    from service.crypto import key_id_for

    class Signer:
        public_key = keys.ed.public_key().public_bytes_raw()

        def sign(self, message: bytes) -> bytes:
            return keys.ed.sign(message)

    token = encode_eddsa(
        Signer(), kid=key_id_for(Signer.public_key), typ=STAFF_TYP, claims=_claims()
    )
    decoded = jwt.decode(
        token,
        keys.ed.public_key(),
        algorithms=["EdDSA"],
        audience="accord-api",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert decoded["sub"] == "alice"
    assert jwt.get_unverified_header(token)["typ"] == STAFF_TYP


def test_jwks_file_refuses_private_keys_and_duplicates(keys: Keys, tmp_path: Path) -> None:
    private = json.loads(OKPAlgorithm.to_jwk(keys.ed))
    private["kid"] = "p"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"keys": [private]}))
    with pytest.raises(JwksError, match="private key material"):
        StaticKeys.from_file(path)
    dup = keys.jwks["keys"][0]
    path.write_text(json.dumps({"keys": [dup, dup]}))
    with pytest.raises(JwksError, match="duplicate kid"):
        StaticKeys.from_file(path)
    path.write_text("[]")
    with pytest.raises(JwksError):
        StaticKeys.from_file(path)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_jwks_url_cached_refreshed_on_unknown_kid_and_rate_limited(keys: Keys) -> None:
    served = {"keys": [keys.jwks["keys"][0]]}
    requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        return httpx.Response(200, json=served)

    clock = FakeTime()
    source = RemoteJwks(
        "https://idp.example/jwks",
        cache_seconds=300,
        min_refresh_seconds=30,
        transport=httpx.MockTransport(handler),
        monotonic=clock,
    )
    assert await source.key_for("ed") is not None
    assert await source.key_for("ed") is not None
    assert len(requests) == 1  # cached
    assert await source.key_for("es") is None
    assert len(requests) == 1  # unknown kid within the minimum interval: no refetch
    served["keys"].append(keys.jwks["keys"][1])  # the provider rotates in a new key
    clock.now += 31
    assert await source.key_for("es") is not None
    assert len(requests) == 2
    clock.now += 301
    assert await source.key_for("ed") is not None
    assert len(requests) == 3  # stale cache refreshed


async def test_jwks_url_unreachable_fails_closed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    source = RemoteJwks(
        "https://idp.example/jwks",
        cache_seconds=300,
        min_refresh_seconds=0,
        transport=httpx.MockTransport(handler),
    )
    with pytest.raises(ServiceUnavailableError):
        await source.key_for("ed")


async def test_H11_jwks_url_availability_is_probed_at_most_once_per_interval(keys: Keys) -> None:
    """The readiness probe's question: keys fetched at least once. While the provider
    is down, each probe tries again only after the minimum refresh interval; keys
    once fetched stay available through a later outage (they still verify)."""
    up = False
    requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        if not up:
            raise httpx.ConnectError("down", request=request)
        return httpx.Response(200, json={"keys": [keys.jwks["keys"][0]]})

    clock = FakeTime()
    source = RemoteJwks(
        "https://idp.example/jwks",
        cache_seconds=300,
        min_refresh_seconds=30,
        transport=httpx.MockTransport(handler),
        monotonic=clock,
    )
    assert not await source.available()
    assert not await source.available()
    assert len(requests) == 1  # within the interval: no second fetch
    up = True
    assert not await source.available()  # still within it
    clock.now += 31
    assert await source.available()
    assert len(requests) == 2
    up = False
    clock.now += 301
    assert await source.key_for("ed") is not None  # stale, refetch fails, cache kept
    assert await source.available()
    public = bytes(nacl.signing.SigningKey.generate().verify_key)
    assert await StaticKeys.from_ed25519(public).available()
