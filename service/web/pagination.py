"""Opaque, authenticated cursors bound to the principal and the query (API.md).

A cursor is base64url(JSON position) + "." + base64url(HMAC-SHA256). The MAC covers
the position and a binding of (principal, endpoint, filters), so an edited cursor,
or one replayed by another principal or with other filters, is refused with 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.errors import BadRequestError


@dataclass(frozen=True)
class Position:
    """The sort key of the last row of a page: (time, id)."""

    at: datetime
    id: uuid.UUID


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("cursor secret must be at least 32 bytes")
        self._secret = secret

    @staticmethod
    def binding(principal: str, endpoint: str, filters: Mapping[str, Any]) -> bytes:
        material = json.dumps([principal, endpoint, dict(filters)], sort_keys=True, default=str)
        return hashlib.sha256(material.encode()).digest()

    def encode(self, position: Position, binding: bytes) -> str:
        body = json.dumps({"at": position.at.isoformat(), "id": str(position.id)}).encode()
        mac = hmac.new(self._secret, binding + body, hashlib.sha256).digest()
        return f"{_b64(body)}.{_b64(mac)}"

    def decode(self, cursor: str, binding: bytes) -> Position:
        try:
            body_text, mac_text = cursor.split(".")
            body = _unb64(body_text)
            mac = _unb64(mac_text)
        except (ValueError, TypeError) as exc:
            raise BadRequestError("Invalid cursor") from exc
        expected = hmac.new(self._secret, binding + body, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            raise BadRequestError("Invalid cursor")
        try:
            data = json.loads(body)
            return Position(at=datetime.fromisoformat(data["at"]), id=uuid.UUID(data["id"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise BadRequestError("Invalid cursor") from exc


@dataclass(frozen=True)
class PageRequest:
    limit: int
    after: Position | None


def next_position(rows: Sequence[Any], limit: int, *, at: str = "created_at") -> Position | None:
    """Given rows fetched with limit + 1, the position to continue from (or None)."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return Position(at=getattr(last, at), id=last.id)


class Paginator:
    """Per-request pagination: parses limit/cursor and issues bound cursors."""

    def __init__(self, codec: CursorCodec, *, limit: int, cursor: str | None) -> None:
        self.codec = codec
        self.limit = limit
        self.cursor = cursor

    def page(self, binding: bytes) -> PageRequest:
        after = self.codec.decode(self.cursor, binding) if self.cursor else None
        return PageRequest(limit=self.limit, after=after)

    def next_cursor(self, position: Position | None, binding: bytes) -> str | None:
        return self.codec.encode(position, binding) if position else None
