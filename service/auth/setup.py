"""Build the application's token verifier from settings and the keyring."""

from __future__ import annotations

from service.auth.keys import KeySourceLike, RemoteJwks, StaticKeys
from service.auth.tokens import STAFF_TYP, SURVIVOR_TYP, TokenPolicy, TokenVerifier
from service.clock import Clock
from service.keyring import Keyring
from service.settings import Settings

STAFF_REQUIRED = ("iss", "aud", "sub", "exp", "iat", "org", "roles", "jti")
SURVIVOR_REQUIRED = ("iss", "aud", "sub", "exp", "iat", "org", "jti")


def staff_key_source(settings: Settings, keyring: Keyring) -> KeySourceLike:
    if settings.jwt_jwks_url is not None:
        return RemoteJwks(
            settings.jwt_jwks_url,
            cache_seconds=settings.jwks_cache_seconds,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
        )
    if settings.jwt_jwks_file is not None:
        return StaticKeys.from_file(settings.jwt_jwks_file)
    if keyring.dev_staff_token is None:  # pragma: no cover - settings refuse this
        raise RuntimeError("no staff token keys configured")
    return StaticKeys.from_ed25519(keyring.dev_staff_token.public_key)


def build_token_verifier(settings: Settings, keyring: Keyring, *, clock: Clock) -> TokenVerifier:
    staff = TokenPolicy(
        typ=STAFF_TYP,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        algorithms=frozenset(settings.jwt_algorithms),
        max_lifetime_seconds=settings.staff_token_max_lifetime_seconds,
        leeway_seconds=settings.jwt_leeway_seconds,
        required=STAFF_REQUIRED,
    )
    survivor = TokenPolicy(
        typ=SURVIVOR_TYP,
        issuer=settings.survivor_jwt_issuer,
        audience=settings.survivor_jwt_audience,
        algorithms=frozenset({"EdDSA"}),
        max_lifetime_seconds=settings.survivor_token_max_lifetime_seconds,
        leeway_seconds=settings.jwt_leeway_seconds,
        required=SURVIVOR_REQUIRED,
    )
    return TokenVerifier(
        clock=clock,
        staff_policy=staff,
        staff_keys=staff_key_source(settings, keyring),
        survivor_policy=survivor,
        survivor_keys=StaticKeys.from_ed25519(keyring.survivor_token.public_key),
    )
