"""How deeply a JSON body nests, measured without recursion (issue 22 item 8).

Python's JSON parser recurses once per array or object: about a thousand nested
`[` answered 500 with a RecursionError and a traceback in the log, before any
token was read, and the connection was dropped. The request guard
(service/web/middleware.py) measures the depth here first, in a few passes over
the bytes that never recurse, and refuses anything deeper than `MAX_JSON_DEPTH`
with a 400 problem (docs/threat-model.md "Input rules"). No request body of this
API nests beyond ten levels (a referral's envelope's header's context is four).

Brackets inside strings do not count. Escaped backslashes and escaped quotes are
removed first, so every remaining quote opens or closes a string and the text
outside strings is every other piece between quotes (exact for valid JSON; for
invalid JSON the count may be off, and the parser then refuses the body anyway).
Every pass runs in C, in linear time, whatever the input.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Final

from service.errors import BadRequestError

MAX_JSON_DEPTH: Final = 32

_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_STEP: Final = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))


class JSONTooDeepError(BadRequestError):
    type_slug = "json-too-deep"
    title = "The JSON body nests too deeply"


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in `body` (0 for a scalar)."""
    text = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(text.split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def check_json_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse a body that nests arrays and objects deeper than `limit` (400)."""
    if json_depth(body) > limit:
        raise JSONTooDeepError(f"Arrays and objects may nest at most {limit} levels deep")
