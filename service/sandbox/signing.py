"""The demo organizations countersign their collaborations' agreements, each with
its own signing key on this machine, through the client library (issue 24,
docs/agreements.md): the service only verifies."""

from __future__ import annotations

from typing import Any

from accord_client import agreements
from accord_client.api import AccordClient
from accord_client.keys import OrganizationKeys  # noqa: TID251 - the command side, never served


def latest_unsigned(client: AccordClient, collab_id: str, org_id: str) -> dict[str, Any] | None:
    """The latest version, if it lists the organization and it has not signed it."""
    items = client.list_agreements(collab_id)["items"]
    latest: dict[str, Any] = dict(max(items, key=lambda i: int(i["version"])))
    if str(org_id) not in [str(m) for m in latest.get("members") or []]:
        return None
    if any(str(s["org_id"]) == str(org_id) for s in latest.get("signatures", [])):
        return None
    return latest


def countersign(
    admin: AccordClient, collab_id: str, org_id: str, keys: OrganizationKeys
) -> int | None:
    """Sign the latest version for the organization (its org_admin); the version
    signed, or None when there was nothing to sign."""
    item = latest_unsigned(admin, collab_id, org_id)
    if item is None:
        return None
    key = keys.current_signing_key
    body = agreements.countersignature(collab_id, item, key.key_id, key.seed)
    admin.sign_agreement(collab_id, **body)
    return int(item["version"])


def countersign_everything(admin: AccordClient, org_id: str, keys: OrganizationKeys) -> None:
    """Every collaboration the organization belongs to: sign what awaits it."""
    for collab in admin.iter_collaborations():
        countersign(admin, str(collab["id"]), org_id, keys)
