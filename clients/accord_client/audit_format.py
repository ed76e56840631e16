"""The canonical bytes of an audit entry, shared by the service (which hashes them
into the log) and the offline verifier (which recomputes them). docs/audit.md
specifies them; version 1:

    JCS(RFC 8785) of {"v": 1, "seq": <int>, "at": <RFC 3339 UTC, microseconds, "Z">,
                      "action": <str>, "actor": {"principal", "org", "sector"},
                      "subject": <pseudonym or null>, "counterpart": <org id or null>,
                      "details": {...}, "prev": <hex SHA-256 leaf hash of seq-1>}

The leaf of the Merkle tree is these bytes (leaf hash = SHA-256(0x00 || bytes));
`prev` chains each entry to the one before (64 zeros for the first). Entries hold
identifiers, categories, field names, policy ids and ciphertext digests; never a
field value.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from accord_client.envelope_format import canonical_json
from accord_client.merkle import leaf_hash

FORMAT_VERSION = 1
GENESIS_PREV = "0" * 64


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_document(
    *,
    seq: int,
    at: datetime | str,
    action: str,
    actor: Mapping[str, str | None],
    subject: str | None,
    counterpart: str | None,
    details: Mapping[str, Any],
    prev: str,
) -> dict[str, Any]:
    return {
        "v": FORMAT_VERSION,
        "seq": seq,
        "at": at if isinstance(at, str) else format_time(at),
        "action": action,
        "actor": {
            "principal": actor.get("principal"),
            "org": actor.get("org"),
            "sector": actor.get("sector"),
        },
        "subject": subject,
        "counterpart": counterpart,
        "details": dict(details),
        "prev": prev,
    }


def entry_bytes(document: Mapping[str, Any]) -> bytes:
    return canonical_json(dict(document))


def entry_leaf_hash(document: Mapping[str, Any]) -> bytes:
    return leaf_hash(entry_bytes(document))
