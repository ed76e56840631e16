"""uvicorn's httptools protocol with a deadline for every request's head
(SECURITY-TESTS G09, slow clients).

uvicorn closes a keep-alive connection that stays idle after a response
(`timeout_keep_alive`), but sets no deadline before a connection's first request,
nor while a request line and its headers arrive: a client that connects and sends
nothing, or sends its headers a byte at a time, holds a connection and its file
descriptor for as long as it likes, and enough of them exhaust the process's
descriptors. This protocol closes any connection whose request head (request line
and headers) is not complete within `ACCORD_HTTP_HEAD_TIMEOUT_SECONDS` of the
connection opening or of that request's first byte. Bodies are read by the
application under its own limits.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.settings import Settings

log = logging.getLogger("accord.http")


@functools.cache
def head_timeout() -> float:
    """Read once per process, on its first connection (not at import)."""
    return Settings().http_head_timeout_seconds


class HeadDeadlineProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_deadline is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_deadline = self.loop.call_later(head_timeout(), self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            log.info("request head not complete in time", extra={"event": "http.head_timeout"})
            self.transport.close()
