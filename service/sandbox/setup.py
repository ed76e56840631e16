"""`accord demo`: the demo federation of a running service, ready to use.

Over HTTP only, like any case-management tool: the service finds or creates the
federation and signs the tokens (service/sandbox/router.py); this side generates
each organization's keys on this machine (service/sandbox/local_keys.py), has each
organization's admin register them and publish its availability (accepting
referrals), and writes what it got to demo.json (0600: it holds bearer tokens).
Run it again and it renews the tokens and reuses everything else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from accord_client.api import AccordClient
from accord_client.keys import OrganizationKeys  # noqa: TID251 - the command side, never served

from service.sandbox.local_keys import ensure_keys
from service.sandbox.remote import SandboxError, fetch_demo
from service.sandbox.signing import countersign_everything

DEFAULT_URL = "http://127.0.0.1:8000"

# What each demo organization publishes in the directory: every one of them accepts
# referrals, so a newcomer can send to any of them.
AVAILABILITY: Mapping[str, Mapping[str, Any]] = {
    "vsp": {"hours": "24/7", "services": ["case_management", "crisis_hotline", "victim_advocacy"]},
    "shelter": {"hours": "24/7", "services": ["emergency_shelter", "transitional_housing"]},
    "police": {"hours": "24/7", "services": ["investigation"]},
    "prosecutor": {"hours": "business_hours", "services": ["prosecution"]},
    "oversight": {"hours": "business_hours", "services": []},
}


@dataclass(frozen=True)
class Sandbox:
    base_url: str
    organizations: dict[str, str]  # "vsp" -> organization id
    collaboration_id: str
    principals: list[dict[str, Any]]  # name, organization, org_id, sector, roles, token
    expires_in_seconds: int
    audit_verifier_key: str
    created: bool
    keys: dict[str, OrganizationKeys] = field(repr=False)
    transport: httpx.BaseTransport | None = field(default=None, repr=False)

    def token(self, name: str) -> str:
        for principal in self.principals:
            if principal["name"] == name:
                token: str = principal["token"]
                return token
        raise SandboxError(f"the service named no demo principal {name!r}")

    def client(self, name: str) -> AccordClient:
        return AccordClient(
            base_url=self.base_url, token=self.token(name), transport=self.transport
        )


def prepare(
    base_url: str, *, key_dir: Path, transport: httpx.BaseTransport | None = None
) -> Sandbox:
    """The demo federation of the service at `base_url`, with keys registered and
    every organization accepting referrals."""
    body = fetch_demo(base_url, transport=transport)
    sandbox = Sandbox(
        base_url=base_url.rstrip("/"),
        organizations=dict(body["organizations"]),
        collaboration_id=str(body["collaboration_id"]),
        principals=list(body["principals"]),
        expires_in_seconds=int(body["expires_in_seconds"]),
        audit_verifier_key=str(body["audit_verifier_key"]),
        created=bool(body["created"]),
        keys={},
        transport=transport,
    )
    for org, org_id in sandbox.organizations.items():
        with sandbox.client(f"{org}-admin") as admin:
            keys, _registered = ensure_keys(admin, key_dir, org_id)
            published = AVAILABILITY.get(org, {"hours": "business_hours", "services": []})
            admin.set_availability(
                org_id,
                {
                    "accepting_referrals": True,
                    "languages": ["en", "es"],
                    "populations": ["adults"],
                    **published,
                },
            )
        sandbox.keys[org] = keys
    # Agreements bind only the members that countersigned them (docs/agreements.md).
    for org, org_id in sandbox.organizations.items():
        with sandbox.client(f"{org}-admin") as admin:
            countersign_everything(admin, org_id, sandbox.keys[org])
    return sandbox


def summary(sandbox: Sandbox, *, key_dir: Path) -> dict[str, Any]:
    """What demo.json holds."""
    return {
        "url": sandbox.base_url,
        "organizations": sandbox.organizations,
        "collaboration_id": sandbox.collaboration_id,
        "tokens": {p["name"]: p["token"] for p in sandbox.principals},
        "principals": [
            {k: p[k] for k in ("name", "organization", "org_id", "roles")}
            for p in sandbox.principals
        ],
        "expires_in_seconds": sandbox.expires_in_seconds,
        "audit_verifier_key": sandbox.audit_verifier_key,
        "key_dir": str(key_dir),
    }


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only (0600) from the first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file may have had a wider mode
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_summary(sandbox: Sandbox, *, path: Path, key_dir: Path) -> None:
    write_private(path, json.dumps(summary(sandbox, key_dir=key_dir), indent=2) + "\n")


def describe(sandbox: Sandbox) -> list[str]:
    """The human-readable lines `accord demo` prints: one per principal with its token."""
    state = "created" if sandbox.created else "found again (tokens renewed)"
    lines = [
        f"Demo federation at {sandbox.base_url}: {state}",
        f"Task force (collaboration) {sandbox.collaboration_id}, "
        "every organization accepting referrals, keys registered:",
    ]
    lines += [f"  {org:<11} {org_id}" for org, org_id in sandbox.organizations.items()]
    hours = sandbox.expires_in_seconds / 3600
    lines.append(
        f"Tokens (valid {hours:g} h; `accord demo` again renews them; roles: docs/roles.md):"
    )
    for p in sandbox.principals:
        lines.append(f"  {p['name']:<20} {','.join(p['roles']):<15} {p['token']}")
    return lines
