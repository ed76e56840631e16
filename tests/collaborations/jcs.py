"""An independent reading of docs/agreements.md "Canonical encoding": RFC 8785 (JCS)
written here for the values an agreement holds (objects, arrays, strings, integers,
null), with `cryptography` for Ed25519. It shares no code with accord_client."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

LABEL = b"accord/agreement/v1/signature"


def _string(text: str) -> str:
    # RFC 8785 section 3.2.2.2: JSON.stringify's escaping.
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jcs(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        # Sorted by UTF-16 code units of the keys.
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(f"{_string(k)}:{jcs(value[k])}" for k in keys) + "}"
    raise TypeError(type(value))


def _time(text: str | None) -> str | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def message(collaboration_id: str, item: dict[str, Any]) -> bytes:
    """The signed bytes of one history item, from the table in docs/agreements.md."""
    document = {
        "v": 1,
        "collaboration_id": collaboration_id.lower(),
        "version": item["version"],
        "flows": [
            {
                "from_sector": f["from_sector"],
                "to_sector": f["to_sector"],
                "purposes": list(f["purposes"]),
                "categories": list(f["categories"]),
            }
            for f in item["flows"]
        ],
        "effective_from": _time(item["effective_from"]),
        "effective_to": _time(item["effective_to"]),
        "document_sha256": item["document_sha256"],
        "members": sorted(m.lower() for m in item["members"]),
        "previous_sha256": item["previous_sha256"],
    }
    return LABEL + b"\n" + jcs(document).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verifies(public_key: bytes, data: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except InvalidSignature:
        return False
    return True
