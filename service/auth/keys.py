"""Where token verification keys come from: a JWKS file, a JWKS URL, or one of the
service's own Ed25519 public keys (survivor tokens; the development staff key).

A JWKS URL is fetched with httpx, cached for `jwks_cache_seconds`, and fetched
again when a token names an unknown `kid` (a key rotation at the identity
provider), at most once per `jwks_min_refresh_seconds` so a flood of tokens with
made-up key ids cannot turn the service into a request amplifier. When the
provider cannot be reached and nothing is cached, authentication fails closed
with a 503 (transient), never by accepting anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from service.crypto import key_id_for
from service.errors import ServiceUnavailableError

log = logging.getLogger("accord.auth")

MAX_JWKS_BYTES = 256 * 1024


class KeySourceLike(Protocol):
    async def key_for(self, kid: str) -> PyJWK | None: ...

    async def available(self) -> bool:
        """Whether keys are at hand to verify tokens with (the readiness probe)."""
        ...


class JwksError(ValueError):
    """A key set that cannot be used; the message names the problem."""


def parse_jwks(document: Any, *, source: str) -> dict[str, PyJWK]:
    """Usable signing keys by kid. Keys without a kid, with `use` other than `sig`
    or of an unsupported type are skipped; duplicate kids are an error."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise JwksError(f"{source}: a JWKS must be an object with a 'keys' list")
    keys: dict[str, PyJWK] = {}
    for index, entry in enumerate(document["keys"]):
        if not isinstance(entry, Mapping):
            raise JwksError(f"{source}: keys[{index}] is not an object")
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            log.warning("jwks key skipped", extra={"event": "auth.jwks_skip", "reason": "no_kid"})
            continue
        if entry.get("use", "sig") != "sig" or "d" in entry:
            # A private key in a public key set is a deployment mistake: refuse it.
            if "d" in entry:
                raise JwksError(f"{source}: key {kid!r} contains private key material")
            continue
        if kid in keys:
            raise JwksError(f"{source}: duplicate kid {kid!r}")
        try:
            keys[kid] = PyJWK.from_dict(dict(entry))
        except PyJWKError as exc:
            raise JwksError(f"{source}: key {kid!r} is not usable: {exc}") from exc
    return keys


def okp_jwk(public_key: bytes) -> dict[str, str]:
    """The JWK of one of the service's own raw Ed25519 public keys."""
    import base64

    x = base64.urlsafe_b64encode(public_key).rstrip(b"=").decode("ascii")
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": key_id_for(public_key), "use": "sig"}


class StaticKeys:
    """A fixed key set (a JWKS file read at start-up, or the service's own key)."""

    def __init__(self, keys: Mapping[str, PyJWK]) -> None:
        self._keys = dict(keys)

    async def key_for(self, kid: str) -> PyJWK | None:
        return self._keys.get(kid)

    async def available(self) -> bool:
        return bool(self._keys)

    @classmethod
    def from_file(cls, path: Path) -> StaticKeys:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise JwksError(f"{path}: cannot read a JWKS: {exc}") from exc
        keys = parse_jwks(document, source=str(path))
        if not keys:
            raise JwksError(f"{path}: no usable signing key")
        return cls(keys)

    @classmethod
    def from_ed25519(cls, public_key: bytes) -> StaticKeys:
        return cls(parse_jwks({"keys": [okp_jwk(public_key)]}, source="service key"))


class RemoteJwks:
    """A JWKS URL, cached, refreshed on an unknown kid with a minimum interval."""

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float,
        min_refresh_seconds: float,
        transport: httpx.AsyncBaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._transport = transport
        self._monotonic = monotonic
        self._keys: dict[str, PyJWK] | None = None
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    def _age(self) -> float | None:
        return None if self._fetched_at is None else self._monotonic() - self._fetched_at

    async def _fetch(self) -> None:
        self._fetched_at = self._monotonic()
        try:
            async with httpx.AsyncClient(
                transport=self._transport, timeout=5.0, follow_redirects=False
            ) as http:
                response = await http.get(self._url, headers={"Accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > MAX_JWKS_BYTES:
                raise JwksError("JWKS response too large")
            self._keys = parse_jwks(response.json(), source="JWKS URL")
            log.info("jwks fetched", extra={"event": "auth.jwks_fetched", "count": len(self._keys)})
        except (httpx.HTTPError, ValueError) as exc:
            # Keep what was cached: a provider outage must not lock everyone out
            # at once, and an unknown kid stays unknown.
            log.warning(
                "jwks fetch failed",
                extra={"event": "auth.jwks_failed", "error": type(exc).__name__},
            )

    async def key_for(self, kid: str) -> PyJWK | None:
        async with self._lock:
            age = self._age()
            stale = age is None or age >= self._cache_seconds
            unknown = self._keys is not None and kid not in self._keys
            may_refresh = age is None or age >= self._min_refresh
            if stale or (unknown and may_refresh):
                await self._fetch()
            if self._keys is None:
                raise ServiceUnavailableError("The token issuer's keys cannot be fetched")
            return self._keys.get(kid)

    async def available(self) -> bool:
        """Keys fetched at least once (cached keys outlive a provider outage, as in
        `key_for`). Until then each call tries a fetch, at most once per minimum
        refresh interval, so a readiness probe cannot hammer the provider."""
        async with self._lock:
            age = self._age()
            if self._keys is None and (age is None or age >= self._min_refresh):
                await self._fetch()
            return self._keys is not None
