"""Generate `accord_client/schemas.py`: a TypedDict for every schema that a `/v1`
operation answers with, from the service's OpenAPI document.

A development tool, not part of the accord-client distribution (it imports the
server to read its OpenAPI document). Run it from the repository root after a
response model changed:

    .venv/bin/python clients/tools/schemas.py > clients/accord_client/schemas.py
    .venv/bin/ruff format clients/accord_client/schemas.py

tests/client/test_client_surface.py fails while the file is out of date.
"""

from __future__ import annotations

import json
import sys
from typing import Any

HEADER = '''"""Response shapes of every `/v1` operation, generated from the service's OpenAPI
document by clients/tools/schemas.py: do not edit by hand (a test compares).

Each is a TypedDict: the JSON object as the service sends it (times as ISO 8601
strings, ids as strings), so results index like dicts and type-check by key.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict
'''


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


class Generator:
    def __init__(self, openapi: dict[str, Any]) -> None:
        self.components: dict[str, Any] = openapi["components"]["schemas"]
        self.openapi = openapi
        self.emitted: list[str] = []
        self.seen: set[str] = set()

    def roots(self) -> list[str]:
        names: list[str] = []
        for path, operations in sorted(self.openapi["paths"].items()):
            if not path.startswith("/v1"):
                continue
            for operation in operations.values():
                for status, response in sorted(operation.get("responses", {}).items()):
                    if not status.startswith("2"):
                        continue
                    schema = response.get("content", {}).get("application/json", {}).get("schema")
                    if schema and "$ref" in schema:
                        names.append(_ref_name(schema["$ref"]))
        return sorted(set(names))

    def type_of(self, schema: dict[str, Any]) -> str:
        if "$ref" in schema:
            return self.named(_ref_name(schema["$ref"]))
        if "anyOf" in schema or "oneOf" in schema:
            parts = [self.type_of(s) for s in schema.get("anyOf", schema.get("oneOf", []))]
            unique = list(dict.fromkeys(parts))
            return " | ".join(unique)
        if "enum" in schema:
            return "Literal[" + ", ".join(json.dumps(v) for v in schema["enum"]) + "]"
        if "const" in schema:
            return f"Literal[{json.dumps(schema['const'])}]"
        kind = schema.get("type")
        if kind == "array":
            return f"list[{self.type_of(schema.get('items', {}))}]"
        if kind == "object":
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict) and extra:
                return f"dict[str, {self.type_of(extra)}]"
            return "dict[str, Any]"
        simple = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
        if kind in simple:
            return simple[kind]
        if kind == "null":
            return "None"
        return "Any"

    def named(self, name: str) -> str:
        schema = self.components[name]
        if schema.get("type") != "object" or "properties" not in schema:
            return self.type_of({k: v for k, v in schema.items() if k != "title"})
        if name not in self.seen:
            self.seen.add(name)
            fields = [
                f"    {prop}: {self.type_of(sub)}" for prop, sub in schema["properties"].items()
            ]
            self.emitted.append(
                f"class {name}(TypedDict):\n" + ("\n".join(fields) or "    pass") + "\n"
            )
        return name

    def module(self) -> str:
        roots = self.roots()
        for name in roots:
            self.named(name)
        body = "\n\n".join(sorted(self.emitted))
        exported = sorted(self.seen)
        all_list = "__all__ = [\n" + "".join(f'    "{n}",\n' for n in exported) + "]\n"
        return HEADER + "\n\n" + body + "\n\n" + all_list


def generate(openapi: dict[str, Any]) -> str:
    return Generator(openapi).module()


def main() -> None:
    from service.app import create_app  # a development tool only

    sys.stdout.write(generate(create_app().openapi()))


if __name__ == "__main__":
    main()
