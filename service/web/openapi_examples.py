"""Examples for the OpenAPI document, made from the schemas themselves.

Every JSON request body and main response gets an example that validates against
its schema (tests/web/test_openapi_contract.py checks each one), built from the
schema: a field's own `example`/`examples` or default first, then a value chosen by
its format, pattern or name (identifiers are fixed UUIDs, times a fixed instant,
binary values standard base64). The same function is what schemathesis's
examples phase sends, so an example is also a request the service must answer
without a 5xx. No example holds survivor data: free text is placeholder text.
"""

from __future__ import annotations

import uuid
from typing import Any

from service.errors import PROBLEM_BASE
from service.web.problem_types import BY_SLUG

INSTANT = "2026-11-22T12:00:00Z"
LATER = "2027-05-22T12:00:00Z"
ENDS = frozenset({"expires_at", "effective_to", "valid_until", "due_at", "deadline"})
HEX64 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
BASE64 = "q2yKZbZSZ8Qm3Pq7p3m6i1sIYLb3vW7dWc1h0m3yD9o="
# Patterns of this API's schemas and a value matching each.
PATTERNS = {
    "^[0-9a-f]{64}$": HEX64,
    "^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,6}$": "en",
    "^[a-z][a-z0-9_]{0,63}$": "sheltered",
    "^[A-Za-z0-9][A-Za-z0-9._:/-]*$": "case-2041",
    "^(pending|succeeded|failed|cancelled)$": "pending",
}
# Field names whose values are binary (standard base64) in this API.
BINARY_NAMES = (
    "ciphertext",
    "sealed_key",
    "public_key",
    "signature",
    "key_commitment",
    "verifier_key",
    "root_hash",
    "leaf_hash",
    "digest",
    "proof",
)
TEXT = {
    "name": "Harbor House",
    "jurisdiction": "US-WA",
    # Words of the policy vocabulary (policies/categories.toml), so that an example
    # sent as it stands passes the vocabulary checks.
    "purpose": "services_referral",
    "category": "contact",
    "categories": "contact",
    "field": "phone",
    "fields": "phone",
    "reason": "The survivor asked to stop sharing",
    "justification": "Investigation of case 24-1187 under the cited order",
    "legal_basis": "court_order",
    "legal_reference": "Order 24-SW-0193",
    "url": "https://case-tool.example.org/accord/webhooks",
    "origin": "accord.example.org",
    "cedar": 'forbid (principal, action, resource) when { resource.category == "location" };',
}


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _string(schema: dict[str, Any], name: str) -> str:
    fmt = schema.get("format")
    if fmt == "uuid":
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"accord:{name or 'id'}"))
    if fmt == "date-time":
        return LATER if name in ENDS else INSTANT
    if fmt == "date":
        return INSTANT[:10]
    if fmt in {"uri", "url"}:
        return TEXT["url"]
    if "pattern" in schema and schema["pattern"] in PATTERNS:
        return PATTERNS[schema["pattern"]]
    if name.endswith("sha256") or name.endswith("_ref"):
        return HEX64
    if any(part in name for part in BINARY_NAMES) or fmt in {"base64", "byte", "binary"}:
        return BASE64
    text = TEXT.get(name) or TEXT.get(name.removesuffix("s")) or "example"
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if high is not None and len(text) > high:
        text = text[:high]
    return text.ljust(low, "x")


def _nullable(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    options = schema.get("anyOf", schema.get("oneOf", []))
    return any(_resolve(o, components).get("type") == "null" for o in options)


def example_of(schema: dict[str, Any], components: dict[str, Any], name: str = "") -> Any:
    """A value that validates against `schema` (deterministic)."""
    schema = _resolve(schema, components)
    for key in ("example", "const"):
        if key in schema:
            return schema[key]
    if schema.get("examples"):
        return schema["examples"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(o, components).get("type") != "null"]
            return example_of((options or schema[key])[0], components, name)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = example_of(part, components, name)
            if isinstance(value, dict):
                merged.update(value)
            else:
                return value
        return merged
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        # Required properties, and optional ones that cannot be null: an optional
        # reference (`supersedes`) filled with an invented id would only answer 404.
        required = set(schema.get("required", []))
        return {
            prop: example_of(sub, components, prop)
            for prop, sub in schema.get("properties", {}).items()
            if prop in required or not _nullable(sub, components)
        }
    if kind == "array":
        count = max(1, schema.get("minItems", 1))
        count = min(count, schema.get("maxItems", count))
        item = schema.get("items", {})
        values = [example_of(item, components, name) for _ in range(count)]
        if schema.get("uniqueItems") and count > 1:
            return values[:1]
        return values
    if kind == "integer":
        return int(schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1) or 1)
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if kind == "string":
        return _string(schema, name)
    if kind == "null":
        return None
    return {}


def problem_example(status: int, slug: str) -> dict[str, Any]:
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": BY_SLUG[slug].title}
    body["status"] = status
    if status == 422:
        body["errors"] = [{"path": "/purpose", "message": "unknown purpose"}]
    if status >= 500:
        body["request_id"] = "5f0c6b9e3c1d4a8f9b2e7d6c5a4b3c2d"
    return body
