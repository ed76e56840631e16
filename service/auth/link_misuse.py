"""Noticing misuse of a survivor's access link, and having it audited even though the
request that misused it is refused (issue 22, item 4; row P04 in docs/threat-model.md).

A refused request rolls its transaction back (service/db/engine.py), so an audit
entry written inside it would vanish with it. Instead the code that refuses notes
what happened here (the link's id and a reason code, never anything the request
carried: no path, no id it asked for, no body, no token), and `LinkMisuseRecorder`
hands the note to the recorder (service/subjects/access_links.py `record_misuse`)
after the request's own transaction has ended, in a transaction of its own.

Noted:
- `staff_endpoint`: a survivor token sent to an endpoint for staff;
- `expired`, `revoked`: a link used after it expired or was ended (its token on the
  API, its session on the pages);
- `other_record`: a request authenticated by a live link answered 404 (the
  survivor's pages and endpoints only ever name the survivor's own records, so that
  answer means a record that is not theirs, or none). The answer itself is the same
  as ever: the entry is written after it, and tells the caller nothing.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("accord.auth")

STAFF_ENDPOINT = "staff_endpoint"
EXPIRED = "expired"
REVOKED = "revoked"
OTHER_RECORD = "other_record"


@dataclass
class _Notes:
    misuse: tuple[str, str] | None = None  # (link id, reason)
    survivor: str | None = None  # the live link that authenticated this request


_NOTES: contextvars.ContextVar[_Notes | None] = contextvars.ContextVar(
    "accord_link_misuse", default=None
)


def note_misuse(link_id: str, reason: str) -> None:
    """The first note of a request wins (one entry per refused request)."""
    notes = _NOTES.get()
    if notes is not None and notes.misuse is None:
        notes.misuse = (link_id, reason)


def note_survivor(link_id: str) -> None:
    notes = _NOTES.get()
    if notes is not None:
        notes.survivor = link_id


Recorder = Callable[[Any, str, str], Awaitable[None]]


class LinkMisuseRecorder:
    """Pure ASGI middleware: after the request, write what was noted, through
    `record(app_state, link_id, reason)`. A failure to record is logged (by class)
    and never changes the answer already given."""

    def __init__(self, app: ASGIApp, *, record: Recorder) -> None:
        self.app = app
        self.record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        notes = _Notes()
        token = _NOTES.set(notes)
        status = 0

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            _NOTES.reset(token)
        misuse = notes.misuse
        if misuse is None and notes.survivor is not None and status == 404:
            misuse = (notes.survivor, OTHER_RECORD)
        if misuse is None:
            return
        try:
            await self.record(scope["app"].state, *misuse)
        except Exception as exc:  # noqa: BLE001 - the answer is already sent
            log.warning(
                "link misuse not recorded",
                extra={"event": "access_link.misuse_unrecorded", "error_type": type(exc).__name__},
            )
