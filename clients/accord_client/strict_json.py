"""A strict JSON reader: duplicate keys at any depth, NaN, BOMs and deep nesting refused.

Python's json keeps the last of duplicate keys silently. When two parsers
(this service's and a client's, or a signer's and a verifier's) disagree on
which duplicate wins, what was checked is not what is used: a classic
signature and validation bypass. Pure; shared by client and server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from accord_client.envelope_errors import Problem
from accord_client.envelope_format import MAX_ENVELOPE_JSON_BYTES

MAX_PROBLEMS = 100
MAX_JSON_DEPTH = 32
_PRINTABLE_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")


def child_path(path: str, key: str) -> str:
    """`path.key`; key names are client input, so only schema-like names are echoed."""
    return f"{path}.{key}" if _PRINTABLE_KEY.fullmatch(key) else f"{path}.<unprintable key>"


class StrictJSONError(ValueError):
    """Not acceptable JSON. `syntax` is True when it is not JSON at all (HTTP 400);
    False when it is JSON with duplicate keys or excessive nesting (HTTP 422)."""

    def __init__(self, problems: Sequence[Problem], *, syntax: bool) -> None:
        self.problems = tuple(problems)
        self.syntax = syntax
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in self.problems))


class _Pairs(list[tuple[str, object]]):
    """A JSON object as parsed, before its keys are checked for duplicates."""


def _reject_constant(name: str) -> object:
    raise ValueError("NaN and Infinity are not JSON")


def loads_strict(
    raw: bytes | str, *, root: str = "$", max_bytes: int = MAX_ENVELOPE_JSON_BYTES
) -> object:
    """Parse UTF-8 JSON, rejecting duplicate keys at any depth, NaN/Infinity and BOMs.

    Python's json keeps the last of duplicate keys silently; two parsers that
    disagree on which one wins is a classic signature-bypass, so we refuse.
    """
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise StrictJSONError(
            [Problem(root, "too_large", f"larger than {max_bytes} bytes")], syntax=True
        )
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if text.startswith("\ufeff"):
            raise ValueError("byte order mark")
        tree = json.loads(text, object_pairs_hook=_Pairs, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise StrictJSONError(
            [Problem(root, "syntax", "not valid UTF-8 JSON")], syntax=True
        ) from exc
    problems: list[Problem] = []
    value = _materialize(tree, root, problems, depth=0)
    if problems:
        raise StrictJSONError(problems[:MAX_PROBLEMS], syntax=False)
    return value


def _materialize(node: object, path: str, problems: list[Problem], *, depth: int) -> object:
    if depth > MAX_JSON_DEPTH:
        problems.append(Problem(path, "too_deep", f"nested deeper than {MAX_JSON_DEPTH} levels"))
        return None
    if isinstance(node, _Pairs):
        result: dict[str, object] = {}
        for key, item in node:
            if key in result:
                problems.append(
                    Problem(child_path(path, key), "duplicate_key", "duplicate object key")
                )
                continue
            result[key] = _materialize(item, child_path(path, key), problems, depth=depth + 1)
        return result
    if isinstance(node, list):
        return [
            _materialize(v, f"{path}[{i}]", problems, depth=depth + 1) for i, v in enumerate(node)
        ]
    return node


def nested_deeper(value: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when some value inside `value` (itself at depth 0) is at a depth over
    `limit`: what loads_strict refuses as `too_deep`. For a reader that parses with
    another parser (the audit verifier, with orjson) and must refuse no less."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return False


def too_deep(raw: bytes, document: object) -> bool:
    """`document`, parsed from `raw` by another parser, is nested deeper than
    loads_strict accepts. Only a text with more brackets than the limit can be, so
    most cost two counts."""
    return raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and nested_deeper(document)
