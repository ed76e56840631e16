"""Load and validate the policy set in `policies/` (once, at start-up).

The set is: `schema.cedarschema` (Cedar schema syntax), `categories.toml` (the
taxonomy) and every `*.cedar` file directly in the directory. Any problem stops
the load with a `PolicySetError` naming the file: a syntax error, a policy that
does not validate against the schema, a policy without `@id` or `@reason`, a
duplicate id, a template, or a missing file.

Version (the policy-set hash in every decision and audit entry): SHA-256 over
those files sorted by file name (byte order of the UTF-8 names); for each file,
the 4-byte big-endian length of its name, the name, the 8-byte big-endian length
of its content, and the content bytes exactly as on disk. Other files
(README.md, backups) are not part of the set and do not change the version.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy

from service.policy.errors import PolicySetError
from service.policy.taxonomy import Taxonomy, parse_taxonomy

SCHEMA_FILE = "schema.cedarschema"
TAXONOMY_FILE = "categories.toml"
POLICY_SUFFIX = ".cedar"
POLICY_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")  # fullmatch: no trailing newline
# Cedar's parser recurses on brackets without a limit: about 700 nested levels
# overflow the thread's stack and end the process (cedarpy 4.12; upstream
# cedar-policy/cedar#1353). Organizations submit Cedar text, so it is refused far
# below that, before Cedar sees it. Real policies nest a few levels.
MAX_NESTING = 32
_TOO_DEEP = (
    "an expression is nested too deeply for the policy engine (long chains of "
    "&&, || or method calls included): split it into several statements"
)


@dataclass(frozen=True, slots=True)
class PolicyFile:
    name: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class PolicyMeta:
    id: str
    reason: str
    source: str
    effect: str
    obligations: tuple[str, ...]
    # True if the policy's outcome can depend on the field's name other than
    # through a consent's named fields; such a policy makes the engine decide
    # field by field instead of once per category.
    reads_field: bool = False


@dataclass(frozen=True)
class LoadedPolicySet:
    version: str
    files: tuple[PolicyFile, ...]
    taxonomy: Taxonomy
    schema: cedarpy.Schema
    # Static policies in Cedar's JSON form (EST), keyed by their @id.
    est: Mapping[str, Any]
    meta: Mapping[str, PolicyMeta]

    @property
    def reads_field(self) -> bool:
        return any(info.reads_field for info in self.meta.values())


def policy_set_version(files: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files, key=lambda n: n.encode("utf-8")):
        encoded_name = name.encode("utf-8")
        content = files[name].encode("utf-8")
        digest.update(len(encoded_name).to_bytes(4, "big"))
        digest.update(encoded_name)
        digest.update(len(content).to_bytes(8, "big"))
        digest.update(content)
    return digest.hexdigest()


def read_policy_dir(directory: Path) -> dict[str, str]:
    """The files of the set, by name. Missing schema or taxonomy, or no policy file, stops."""
    if not directory.is_dir():
        raise PolicySetError(str(directory), "policy directory not found")
    files: dict[str, str] = {}
    for required in (SCHEMA_FILE, TAXONOMY_FILE):
        if not (directory / required).is_file():
            raise PolicySetError(str(directory / required), "file not found")
    for path in sorted(directory.iterdir()):
        in_set = path.suffix == POLICY_SUFFIX or path.name in (SCHEMA_FILE, TAXONOMY_FILE)
        if path.is_file() and in_set:
            try:
                files[path.name] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise PolicySetError(str(path), f"not UTF-8 text: {exc}") from exc
    if not any(name.endswith(POLICY_SUFFIX) for name in files):
        raise PolicySetError(str(directory), "no *.cedar policy file")
    return files


def load_policy_set(directory: Path) -> LoadedPolicySet:
    files = read_policy_dir(directory)
    return build_policy_set(files, location=str(directory))


def build_policy_set(files: Mapping[str, str], *, location: str = "policies") -> LoadedPolicySet:
    """Validate a policy set given as {file name: text}. Tests use it to load variants."""

    def where(name: str) -> str:
        return f"{location}/{name}"

    if SCHEMA_FILE not in files:
        raise PolicySetError(where(SCHEMA_FILE), "file not found")
    if TAXONOMY_FILE not in files:
        raise PolicySetError(where(TAXONOMY_FILE), "file not found")
    try:
        schema = cedarpy.Schema.from_str(files[SCHEMA_FILE])
    except ValueError as exc:
        raise PolicySetError(where(SCHEMA_FILE), str(exc)) from exc
    taxonomy = parse_taxonomy(files[TAXONOMY_FILE], where(TAXONOMY_FILE))
    est: dict[str, Any] = {}
    meta: dict[str, PolicyMeta] = {}
    for name in sorted(n for n in files if n.endswith(POLICY_SUFFIX)):
        for policy_id, (policy, info) in parse_policies(
            files[name], schema, name, where(name)
        ).items():
            if policy_id in est:
                other = meta[policy_id].source
                raise PolicySetError(
                    where(name), f"policy id {policy_id!r} is also used in {other}"
                )
            est[policy_id] = policy
            meta[policy_id] = info
    if not est:
        raise PolicySetError(location, "the policy files hold no policy")
    return LoadedPolicySet(
        version=policy_set_version(files),
        files=tuple(PolicyFile(n, files[n]) for n in sorted(files, key=lambda n: n.encode())),
        taxonomy=taxonomy,
        schema=schema,
        est=est,
        meta=meta,
    )


class PolicyTextError(ValueError):
    """Cedar text that cannot be used; `problems` lists (policy id or "", message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{pid or 'text'}: {msg}" for pid, msg in problems))
        self.problems = problems


def parse_policies(
    text: str, schema: cedarpy.Schema, source: str, path: str
) -> dict[str, tuple[dict[str, Any], PolicyMeta]]:
    """Parse and validate one file; a problem becomes a PolicySetError naming its path."""
    try:
        return parse_cedar_text(text, schema, source)
    except PolicyTextError as exc:
        raise PolicySetError(path, str(exc)) from exc


def parse_cedar_text(
    text: str, schema: cedarpy.Schema, source: str
) -> dict[str, tuple[dict[str, Any], PolicyMeta]]:
    """Parse Cedar text, validate it against the schema, and key each policy by its @id.

    Raises PolicyTextError with every problem found."""
    depth = nesting_depth(text)
    if depth > MAX_NESTING:
        raise PolicyTextError(
            [("", f"brackets nested {depth} levels deep; at most {MAX_NESTING} are accepted")]
        )
    try:
        est_text = cedarpy.policies_to_json_str(text)
    except ValueError as exc:
        raise PolicyTextError([("", f"syntax error: {exc}")]) from exc
    try:
        parsed = json.loads(est_text)
        # What the engine will load (engine.py builds its sets from this form); its
        # JSON reader stops at 128 levels, so a deeper expression fails here, not at
        # the first decision that would apply it.
        cedarpy.PolicySet.from_json_str(est_text)
    except (RecursionError, ValueError) as exc:
        raise PolicyTextError([("", _TOO_DEEP)]) from exc
    problems: list[tuple[str, str]] = []
    if parsed.get("templates"):
        problems.append(("", "templates (?principal, ?resource) are not allowed"))
    # Cedar's strict validator: wrong attribute names or types, missing `has` checks.
    validation = cedarpy.validate_policies(text, schema)
    annotated_ids = validation.id_annotations_by_policy_id
    problems.extend(
        (annotated_ids.get(error.policy_id, error.policy_id), f"schema: {error.error}")
        for error in validation.errors
    )
    result: dict[str, tuple[dict[str, Any], PolicyMeta]] = {}
    for position, policy in enumerate(parsed.get("staticPolicies", {}).values()):
        annotations: dict[str, str] = policy.get("annotations") or {}
        policy_id = annotations.get("id") or ""
        if not POLICY_ID.fullmatch(policy_id):
            # Named by position: an invalid @id is not echoed back.
            problems.append(
                (
                    f"policy #{position + 1}",
                    '@id("...") must be 1-80 lowercase letters, digits and dashes',
                )
            )
            continue
        label = policy_id
        reason = (annotations.get("reason") or "").strip()
        if not reason:
            problems.append((label, 'needs a plain-language @reason("...")'))
        if policy_id in result:
            problems.append((label, "duplicate @id"))
        obligations = tuple((annotations.get("obligations") or "").split())
        result[policy_id] = (
            policy,
            PolicyMeta(
                id=policy_id,
                reason=reason,
                source=source,
                effect=str(policy.get("effect")),
                obligations=obligations,
                reads_field=reads_field_name(policy),
            ),
        )
    if problems:
        raise PolicyTextError(problems)
    return result


def nesting_depth(text: str) -> int:
    """The deepest nesting of (), [] and {} in Cedar text, outside string literals
    and // comments."""
    depth = deepest = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")]}":
            depth = max(0, depth - 1)
        i += 1
    return deepest


def _path(*attrs: str) -> dict[str, Any]:
    node: dict[str, Any] = {"Var": "principal"}
    for attr in attrs:
        node = {".": {"left": node, "attr": attr}}
    return node


_CONTEXT_FIELD = {".": {"left": {"Var": "context"}, "attr": "field"}}
# `<consent>.fields.contains(context.field)`: the one use of the field name that
# cannot tell two fields of a category apart unless a consent names fields
# (an unrestricted consent's `fields` is empty, so the test is false for all).
_NAMED_FIELD_TESTS = (
    {"contains": {"left": _path("consent", "fields"), "right": _CONTEXT_FIELD}},
    {"contains": {"left": _path("consent", "guardian", "fields"), "right": _CONTEXT_FIELD}},
)


def reads_field_name(node: object) -> bool:
    """Whether a policy (in Cedar's JSON form) reads `context` in any other way."""
    if isinstance(node, dict):
        if node in _NAMED_FIELD_TESTS:
            return False
        if node.get("Var") == "context":
            return True
        return any(reads_field_name(value) for value in node.values())
    if isinstance(node, list):
        return any(reads_field_name(item) for item in node)
    return False
