"""The HTTP calls of `accord demo` that `accord_client` has no method for today.

Kept in this one module so that each can become the client's own method later
without touching the rest of the sandbox: the development-only `POST /dev/demo`
(which no client should ever have), records requests, and the audit export
(JSON Lines, not one JSON body).
"""

from __future__ import annotations

from typing import Any

import httpx
from accord_client.api import AccordClient
from accord_client.api_models import JSON, RequestSpec

TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class SandboxError(Exception):
    """`accord demo` cannot go on; the message says why and what to do."""


def fetch_demo(base_url: str, *, transport: httpx.BaseTransport | None = None) -> JSON:
    """Ask the service for its demo federation and a token per demo principal."""
    url = base_url.rstrip("/")
    try:
        with httpx.Client(timeout=TIMEOUT, transport=transport) as http:
            response = http.post(f"{url}/dev/demo", json={})
    except httpx.TransportError as exc:
        raise SandboxError(
            f"no Accord service answers at {url}: start one with `accord serve` in "
            "another terminal, or name the running one with --url (or ACCORD_URL)"
        ) from exc
    if response.status_code == 404:
        raise SandboxError(
            f"the service at {url} offers no sandbox: `POST /dev/demo` exists only in "
            "development (ACCORD_ENVIRONMENT=development, no ACCORD_JWT_JWKS_FILE or "
            "ACCORD_JWT_JWKS_URL) and answers only callers on the same machine "
            "(http://127.0.0.1 or http://localhost)"
        )
    if response.status_code != 200:
        raise SandboxError(f"the service at {url} answered {response.status_code} to /dev/demo")
    body: JSON = response.json()
    return body


def create_records_request(client: AccordClient, body: dict[str, Any]) -> JSON:
    """`POST /v1/records-requests`: the answer holds the preliminary decision."""
    answer: JSON = client.request(RequestSpec("POST", "/v1/records-requests", json=body))
    return answer


def export_audit_log(
    base_url: str, token: str, *, transport: httpx.BaseTransport | None = None
) -> list[bytes]:
    """`GET /v1/audit/export?format=jsonl`: the lines of the export, byte for byte
    as sent (verifying is hashing them, never re-encoding)."""
    with httpx.Client(timeout=TIMEOUT, transport=transport) as http:
        response = http.get(
            f"{base_url.rstrip('/')}/v1/audit/export",
            params={"format": "jsonl"},
            headers={"Authorization": f"Bearer {token}"},
        )
    if response.status_code != 200:
        raise SandboxError(f"the audit export answered {response.status_code}")
    return [line for line in response.content.split(b"\n") if line]
