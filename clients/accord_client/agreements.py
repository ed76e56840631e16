"""Agreement countersignatures: the canonical bytes of an agreement version, signing
them with an organization's Ed25519 key, and checking every stored signature
offline against the directory's key history (docs/agreements.md).

The signed message is

    b"accord/agreement/v1/signature" || 0x0A || JCS(document)

where `document` is the JSON object built by `agreement_document`: the
collaboration id, the version number, its flows (in the proposed order), the
effective dates (RFC 3339 UTC, microseconds, "Z"; `effective_to` may be null),
the SHA-256 of the agreement's text, the member organizations (sorted ids) and
the `sha256` of the previous version (null for the first, or when the previous
version predates signatures). A version's own `sha256` is SHA-256 of the signed
message, so versions form a hash chain. Signing happens here, in the client;
the service only verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from accord_client import crypto
from accord_client.envelope_format import canonical_json

SIGNATURE_CONTEXT = b"accord/agreement/v1/signature"
FORMAT_VERSION = 1


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("agreement times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return format_time(value)


def _flow(flow: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "from_sector": str(flow["from_sector"]),
        "to_sector": str(flow["to_sector"]),
        "purposes": [str(p) for p in flow["purposes"]],
        "categories": [str(c) for c in flow["categories"]],
    }


def agreement_document(
    *,
    collaboration_id: str,
    version: int,
    flows: Sequence[Mapping[str, Any]],
    effective_from: datetime | str,
    effective_to: datetime | str | None,
    document_sha256: str,
    members: Iterable[str],
    previous_sha256: str | None,
) -> dict[str, Any]:
    """The object whose JCS bytes every member signs (docs/agreements.md)."""
    return {
        "v": FORMAT_VERSION,
        "collaboration_id": str(collaboration_id).lower(),
        "version": version,
        "flows": [_flow(f) for f in flows],
        "effective_from": _time(effective_from),
        "effective_to": _time(effective_to),
        "document_sha256": document_sha256,
        "members": sorted(str(m).lower() for m in members),
        "previous_sha256": previous_sha256,
    }


def signed_bytes(document: Mapping[str, Any]) -> bytes:
    """The exact message signed: context label, a newline, JCS(document)."""
    return SIGNATURE_CONTEXT + b"\n" + canonical_json(dict(document))


def version_sha256(document: Mapping[str, Any]) -> str:
    """The version's hash (hex): SHA-256 of its signed bytes."""
    return hashlib.sha256(signed_bytes(document)).hexdigest()


def document_from_read(collaboration_id: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """The document of one item of `GET /v1/collaborations/{id}/agreements`."""
    return agreement_document(
        collaboration_id=collaboration_id,
        version=int(item["version"]),
        flows=item["flows"],
        effective_from=_rfc3339_in(item["effective_from"]),
        effective_to=_rfc3339_in(item["effective_to"]) if item["effective_to"] else None,
        document_sha256=str(item["document_sha256"]),
        members=[str(m) for m in item["members"] or []],
        previous_sha256=item.get("previous_sha256"),
    )


def _rfc3339_in(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("agreement times must carry a UTC offset")
    return moment


def sign(seed: bytes, document: Mapping[str, Any]) -> bytes:
    """Ed25519 signature (64 bytes) by the organization's signing key `seed`."""
    return crypto.sign_ed25519(seed, signed_bytes(document))


def verify(public_key: bytes, document: Mapping[str, Any], signature: bytes) -> bool:
    return crypto.verify_ed25519(public_key, signed_bytes(document), signature)


@dataclass(frozen=True, slots=True)
class DirectoryKey:
    """One row of an organization's key history (`GET /v1/organizations/{id}/keys`)."""

    org_id: str
    key_id: str
    kind: str
    public_key: bytes
    created_at: datetime
    retired_at: datetime | None

    def valid_at(self, moment: datetime) -> bool:
        if moment < self.created_at:
            return False
        return self.retired_at is None or moment < self.retired_at


def keys_from_history(org_id: str, items: Iterable[Mapping[str, Any]]) -> list[DirectoryKey]:
    return [
        DirectoryKey(
            org_id=str(org_id).lower(),
            key_id=str(item["key_id"]),
            kind=str(item["kind"]),
            public_key=base64.b64decode(str(item["public_key"]), validate=True),
            created_at=_rfc3339_in(str(item["created_at"])),
            retired_at=_rfc3339_in(str(item["retired_at"])) if item.get("retired_at") else None,
        )
        for item in items
    ]


def verify_history(
    collaboration_id: str,
    history: Sequence[Mapping[str, Any]],
    keys: Iterable[DirectoryKey],
) -> tuple[int, list[str]]:
    """Check every version's hash chain and every stored signature offline.

    `history` is the `items` of the agreement history (any order); `keys` the key
    histories of the signing organizations. Returns (signatures checked, problems);
    no problems means each signature verifies, by a signing key registered to the
    signer and valid when it signed, over the version's canonical bytes."""
    by_id = {k.key_id: k for k in keys}
    problems: list[str] = []
    checked = 0
    previous: str | None = None
    for item in sorted(history, key=lambda i: int(i["version"])):
        version = int(item["version"])
        if item.get("sha256") is None:  # predates signatures: nothing was signed
            previous = None
            continue
        document = document_from_read(collaboration_id, item)
        if document["previous_sha256"] != previous:
            problems.append(f"version {version}: previous_sha256 breaks the chain")
        digest = version_sha256(document)
        if digest != item["sha256"]:
            problems.append(f"version {version}: sha256 does not match its canonical bytes")
        previous = digest
        for sig in item.get("signatures", []):
            checked += 1
            problems += _check_signature(version, document, sig, by_id)
    return checked, problems


def _check_signature(
    version: int,
    document: Mapping[str, Any],
    sig: Mapping[str, Any],
    by_id: Mapping[str, DirectoryKey],
) -> list[str]:
    org = str(sig["org_id"]).lower()
    where = f"version {version}, organization {org}"
    key = by_id.get(str(sig["key_id"]))
    if key is None or key.org_id != org or key.kind != "signing":
        return [f"{where}: key {sig['key_id']} is not a signing key of the signer"]
    if not key.valid_at(_rfc3339_in(str(sig["signed_at"]))):
        return [f"{where}: key {key.key_id} was not current when it signed"]
    if org not in document["members"]:
        return [f"{where}: the signer is not a member of the version"]
    try:
        raw = base64.b64decode(str(sig["signature"]), validate=True)
    except (binascii.Error, ValueError):
        return [f"{where}: signature is not base64"]
    if not verify(key.public_key, document, raw):
        return [f"{where}: signature does not verify"]
    return []


def countersignature(
    collaboration_id: str, item: Mapping[str, Any], key_id: str, seed: bytes
) -> dict[str, Any]:
    """The body that countersigns one version (an item of the agreement history, as
    fetched): rebuilt here from the item, never taken from the server as bytes.
    Check what you sign: `item["flows"]`, dates and `members` are what binds you."""
    document = document_from_read(collaboration_id, item)
    if item.get("sha256") is not None and version_sha256(document) != item["sha256"]:
        raise ValueError("the version's sha256 does not match its content")
    return signature_body(key_id, seed, document)


def signature_body(key_id: str, seed: bytes, document: Mapping[str, Any]) -> dict[str, Any]:
    """The body of `POST /v1/collaborations/{id}/agreements/signatures`."""
    return {
        "version": int(document["version"]),
        "key_id": key_id,
        "signature": base64.b64encode(sign(seed, document)).decode(),
    }


def verify_export(history: Mapping[str, Any], keys: Mapping[str, Any]) -> tuple[int, list[str]]:
    """`accord-audit agreements`: `history` is the agreement history body with a
    `collaboration_id` key; `keys` maps organization ids to key history bodies."""
    directory = [
        key
        for org_id, body in keys.items()
        for key in keys_from_history(str(org_id), body.get("items", []))
    ]
    return verify_history(str(history["collaboration_id"]), history["items"], directory)
