"""A JSON response whose body is built when it is sent, not when the route returns.

FastAPI closes a route's function-scoped dependencies, and so commits its
transaction (service/auth/dependencies.py, `DbSession`), after the route returns and
before the response is sent. A delivery returns this response so that its body,
the only place ciphertext leaves the service, is built only once the transaction
that audited the release has committed: a failed commit releases nothing, and the
body's serialization no longer runs while the audit head is held (every other
delivery waits for it)."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class DeferredJSONResponse(Response):
    media_type = "application/json"

    def __init__(self, build: Callable[[], object], status_code: int = 200) -> None:
        super().__init__(None, status_code=status_code)
        self._build = build

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.body = orjson.dumps(self._build())
        self.init_headers()
        await super().__call__(scope, receive, send)
