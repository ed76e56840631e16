"""Bearer token verification (API.md "Authentication", SECURITY-TESTS group A).

The order of checks is deliberate: size and shape first, then the header (the
algorithm must be on the allow-list *and* match the key's type, `typ` must name
the token kind, `crit` is refused), then the signature with PyJWT pinned to the
one algorithm, then every claim's type and the times against the injected clock
(never the wall clock, so tests can freeze it). Every failure is the same 401 to
the client; the reason goes to the log as a code, never with the token.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWK

from service.auth.keys import KeySourceLike
from service.clock import Clock
from service.crypto import Signer
from service.errors import UnauthorizedError

log = logging.getLogger("accord.auth")

MAX_TOKEN_BYTES = 8192
STAFF_TYP = "at+jwt"
SURVIVOR_TYP = "accord-survivor+jwt"
# Which key types may verify which algorithm: a key never verifies an algorithm of
# another family (the HS256-with-a-public-key confusion, SECURITY-TESTS A03).
ALGORITHM_KEY_TYPES = {"EdDSA": "OKP", "ES256": "EC", "RS256": "RSA"}
MIN_RSA_BITS = 2048


class TokenRejectedError(UnauthorizedError):
    """A token failed a check. `reason` is a short code for the log, never shown."""

    def __init__(self, reason: str) -> None:
        super().__init__("The bearer token is missing, malformed, expired or not trusted")
        self.reason = reason


@dataclass(frozen=True)
class TokenPolicy:
    """What one kind of token must look like."""

    typ: str
    issuer: str
    audience: str
    algorithms: frozenset[str]
    max_lifetime_seconds: int
    leeway_seconds: int
    required: tuple[str, ...]


@dataclass(frozen=True)
class StaffClaims:
    sub: str
    org: uuid.UUID
    roles: tuple[str, ...]
    jti: str
    exp: int | None = None  # required of staff tokens (service/auth/setup.py)


@dataclass(frozen=True)
class SurvivorClaims:
    subject: uuid.UUID
    org: uuid.UUID
    jti: str


def _segment_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def read_header(token: str) -> dict[str, Any]:
    """The unverified header, after the shape checks. Raises TokenRejectedError."""
    if len(token.encode("utf-8", "replace")) > MAX_TOKEN_BYTES:
        raise TokenRejectedError("too_long")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise TokenRejectedError("not_jws_compact")
    try:
        header = _segment_json(parts[0])
    except (ValueError, UnicodeError, RecursionError) as exc:  # `[[[…` nests past the stack
        raise TokenRejectedError("header_unreadable") from exc
    if not isinstance(header, dict):
        raise TokenRejectedError("header_not_object")
    return header


def check_header(header: Mapping[str, Any], policy: TokenPolicy) -> tuple[str, str]:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in policy.algorithms:
        raise TokenRejectedError("algorithm_not_allowed")
    if header.get("typ") != policy.typ:
        raise TokenRejectedError("wrong_typ")
    if "crit" in header:
        raise TokenRejectedError("crit_not_supported")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenRejectedError("kid_missing")
    return alg, kid


def check_key(key: PyJWK, alg: str) -> None:
    if key.key_type != ALGORITHM_KEY_TYPES[alg]:
        raise TokenRejectedError("key_type_mismatch")
    if alg == "RS256" and getattr(key.key, "key_size", 0) < MIN_RSA_BITS:
        raise TokenRejectedError("rsa_key_too_small")


def _int_claim(claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TokenRejectedError(f"{name}_not_integer")
    return value


def check_times(claims: Mapping[str, Any], policy: TokenPolicy, now: int) -> None:
    exp = _int_claim(claims, "exp")
    iat = _int_claim(claims, "iat")
    nbf = _int_claim(claims, "nbf")
    if exp is None or iat is None:
        raise TokenRejectedError("times_missing")
    leeway = policy.leeway_seconds
    if exp <= now - leeway:
        raise TokenRejectedError("expired")
    if iat > now + leeway:
        raise TokenRejectedError("issued_in_future")
    if nbf is not None and nbf > now + leeway:
        raise TokenRejectedError("not_yet_valid")
    if exp - iat > policy.max_lifetime_seconds or exp <= iat:
        raise TokenRejectedError("lifetime_exceeds_cap")


def _uuid_claim(claims: Mapping[str, Any], name: str) -> uuid.UUID:
    value = claims.get(name)
    if not isinstance(value, str):
        raise TokenRejectedError(f"{name}_not_string")
    try:
        parsed = uuid.UUID(value)
    except ValueError as exc:
        raise TokenRejectedError(f"{name}_not_uuid") from exc
    if str(parsed) != value:
        raise TokenRejectedError(f"{name}_not_canonical_uuid")
    return parsed


def _short_string(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > 255 or not value.isprintable():
        raise TokenRejectedError(f"{name}_invalid")
    return value


class TokenVerifier:
    """Verifies both kinds of token; one instance per application."""

    def __init__(
        self,
        *,
        clock: Clock,
        staff_policy: TokenPolicy,
        staff_keys: KeySourceLike,
        survivor_policy: TokenPolicy,
        survivor_keys: KeySourceLike,
    ) -> None:
        self._clock = clock
        self._staff_policy = staff_policy
        self._staff_keys = staff_keys
        self._survivor_policy = survivor_policy
        self._survivor_keys = survivor_keys

    async def keys_available(self) -> bool:
        """Both key sources can verify now (the readiness probe, SECURITY-TESTS H11)."""
        return await self._staff_keys.available() and await self._survivor_keys.available()

    async def _verify(
        self, token: str, policy: TokenPolicy, keys: KeySourceLike, *, times: bool = True
    ) -> dict[str, Any]:
        try:
            header = read_header(token)
            alg, kid = check_header(header, policy)
            key = await keys.key_for(kid)
            if key is None:
                raise TokenRejectedError("unknown_kid")
            check_key(key, alg)
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key=key.key,
                    algorithms=[alg],
                    audience=policy.audience,
                    issuer=policy.issuer,
                    options={
                        "require": list(policy.required),
                        "strict_aud": True,
                        # Times are checked below against the injected clock.
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                    },
                )
            except jwt.PyJWTError as exc:
                raise TokenRejectedError(type(exc).__name__) from exc
            if times:
                check_times(claims, policy, int(self._clock.now().timestamp()))
            return claims
        except TokenRejectedError as exc:
            log.info("token rejected", extra={"event": "auth.token_rejected", "reason": exc.reason})
            raise

    async def verify_staff(self, token: str) -> StaffClaims:
        claims = await self._verify(token, self._staff_policy, self._staff_keys)
        try:
            roles = claims.get("roles")
            if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                raise TokenRejectedError("roles_not_list_of_strings")
            return StaffClaims(
                sub=_short_string(claims, "sub"),
                org=_uuid_claim(claims, "org"),
                roles=tuple(roles),
                # Required (service/auth/setup.py): a token can be revoked by its id.
                jti=_short_string(claims, "jti"),
                exp=_int_claim(claims, "exp"),
            )
        except TokenRejectedError as exc:
            log.info("token rejected", extra={"event": "auth.token_rejected", "reason": exc.reason})
            raise

    async def verify_survivor(self, token: str) -> SurvivorClaims:
        claims = await self._verify(token, self._survivor_policy, self._survivor_keys)
        try:
            jti = _short_string(claims, "jti")
            return SurvivorClaims(
                subject=_uuid_claim(claims, "sub"), org=_uuid_claim(claims, "org"), jti=jti
            )
        except TokenRejectedError as exc:
            log.info("token rejected", extra={"event": "auth.token_rejected", "reason": exc.reason})
            raise

    async def survivor_token_id(self, token: str) -> str | None:
        """The link id (`jti`) of a token this service signed as a survivor token,
        whatever its times say, or None. Only to audit a misused link (an expired
        link, a link on a staff endpoint): it authenticates nothing, and a token the
        service did not sign names no link (so nobody can write entries for a link
        they never held)."""
        try:
            claims = await self._verify(
                token, self._survivor_policy, self._survivor_keys, times=False
            )
            return _short_string(claims, "jti")
        except UnauthorizedError:
            return None


def encode_eddsa(signer: Signer, *, kid: str, typ: str, claims: Mapping[str, Any]) -> str:
    """A compact JWS signed with one of the service's own Ed25519 keys (through the
    Signer, so the private key never leaves it)."""
    header = {"alg": "EdDSA", "typ": typ, "kid": kid}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        for part in (header, dict(claims))
    )
    signature = signer.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64url(signature)}"
