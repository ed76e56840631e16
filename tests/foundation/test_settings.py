"""Settings: safe defaults, unsafe configurations refused (STYLE.md rule 7)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Environment, Settings

PROD = {
    "environment": Environment.production,
    "jwt_jwks_file": Path("/etc/accord/jwks.json"),
    "jwt_issuer": "https://idp",
}


def test_defaults_are_the_embedded_development_setup() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.database_url.startswith("sqlite+aiosqlite:///")
    assert s.jwt_algorithms == ["EdDSA"]
    assert s.jwt_leeway_seconds == 60
    assert s.max_body_bytes == 1024 * 1024
    assert s.test_hooks is False


def test_production_refuses_test_hooks() -> None:
    with pytest.raises(ValidationError, match="test_hooks"):
        Settings(**PROD, test_hooks=True)
    assert Settings(**PROD).test_hooks is False


def test_production_needs_its_own_issuer_and_keys() -> None:
    with pytest.raises(ValidationError):
        Settings(environment=Environment.production, jwt_issuer="https://idp")
    with pytest.raises(ValidationError):
        Settings(environment=Environment.production, jwt_jwks_file=Path("/x"))


@pytest.mark.parametrize("algs", [["none"], ["HS256"], ["EdDSA", "hs512"], []])
def test_symmetric_or_none_algorithms_refused(algs: list[str]) -> None:
    with pytest.raises(ValidationError):
        Settings(jwt_algorithms=algs)


def test_A05_leeway_never_above_60_seconds() -> None:
    with pytest.raises(ValidationError):
        Settings(jwt_leeway_seconds=61)


def test_survivor_token_lifetime_at_most_seven_days() -> None:
    with pytest.raises(ValidationError):
        Settings(survivor_token_max_lifetime_seconds=7 * 86400 + 1)


def test_algorithms_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCORD_JWT_ALGORITHMS", "EdDSA, ES256")
    assert Settings().jwt_algorithms == ["EdDSA", "ES256"]


def test_production_fetches_jwks_over_https_only() -> None:
    base = {"environment": Environment.production, "jwt_issuer": "https://idp"}
    with pytest.raises(ValidationError, match="https"):
        Settings(**base, jwt_jwks_url="http://idp.example/jwks")
    assert Settings(**base, jwt_jwks_url="https://idp.example/jwks").jwt_jwks_url


def test_dev_staff_key_only_without_an_identity_provider() -> None:
    assert Settings(_env_file=None).uses_dev_staff_key  # type: ignore[call-arg]
    assert not Settings(jwt_jwks_file=Path("/x")).uses_dev_staff_key
    assert not Settings(**PROD).uses_dev_staff_key
