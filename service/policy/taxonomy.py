"""The category taxonomy and the closed vocabularies (`policies/categories.toml`).

The taxonomy is data (DESIGN.md section 4). Per category: `tier` 1..4,
`explicit` (only a consent naming it counts), `privileged`,
`redisclosure_notice`, and a `description`. Unknown keys are refused so that a
misspelt `explict = true` cannot silently leave a category unprotected.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.policy.errors import PolicySetError
from service.vocabulary import Vocabulary

_CATEGORY_KEYS = frozenset({"tier", "explicit", "privileged", "redisclosure_notice", "description"})
_FLAGS = ("explicit", "privileged", "redisclosure_notice")


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    name: str
    tier: int
    explicit: bool
    privileged: bool
    redisclosure_notice: bool
    description: str


@dataclass(frozen=True)
class Taxonomy:
    categories: dict[str, CategoryInfo]
    purposes: dict[str, str]
    legal_bases: dict[str, str]

    @property
    def vocabulary(self) -> Vocabulary:
        return Vocabulary(categories=frozenset(self.categories), purposes=frozenset(self.purposes))

    def as_dict(self) -> dict[str, Any]:
        return {
            "categories": {
                name: {
                    "tier": info.tier,
                    "explicit": info.explicit,
                    "privileged": info.privileged,
                    "redisclosure_notice": info.redisclosure_notice,
                    "description": info.description,
                }
                for name, info in self.categories.items()
            },
            "purposes": dict(self.purposes),
            "legal_bases": dict(self.legal_bases),
        }


def parse_taxonomy(text: str, source: str) -> Taxonomy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicySetError(source, str(exc)) from exc
    tables: dict[str, dict[str, Any]] = {}
    for name in ("categories", "purposes", "legal_bases"):
        table = data.get(name)
        if not isinstance(table, dict) or not table:
            raise PolicySetError(source, f"[{name}] must be a non-empty table")
        tables[name] = table
    categories = {
        name: _category(source, name, entry) for name, entry in tables["categories"].items()
    }
    for name in ("purposes", "legal_bases"):
        for key, value in tables[name].items():
            if not isinstance(value, str):
                raise PolicySetError(source, f"[{name}] {key!r} must be a description string")
    return Taxonomy(
        categories=categories,
        purposes=dict(tables["purposes"]),
        legal_bases=dict(tables["legal_bases"]),
    )


def _category(source: str, name: str, entry: object) -> CategoryInfo:
    if not isinstance(entry, dict):
        raise PolicySetError(source, f"category {name!r} must be a table")
    unknown = sorted(set(entry) - _CATEGORY_KEYS)
    if unknown:
        raise PolicySetError(source, f"category {name!r} has unknown keys {unknown}")
    tier = entry.get("tier")
    if isinstance(tier, bool) or not isinstance(tier, int) or not 1 <= tier <= 4:
        raise PolicySetError(source, f"category {name!r} needs a tier from 1 to 4")
    for flag in _FLAGS:
        if not isinstance(entry.get(flag, False), bool):
            raise PolicySetError(source, f"category {name!r}: {flag} must be true or false")
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise PolicySetError(source, f"category {name!r}: description must be a string")
    return CategoryInfo(
        name=name,
        tier=tier,
        explicit=bool(entry.get("explicit", False)),
        privileged=bool(entry.get("privileged", False)),
        redisclosure_notice=bool(entry.get("redisclosure_notice", False)),
        description=description,
    )


def load_taxonomy(path: Path) -> Taxonomy:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PolicySetError(str(path), "file not found") from exc
    return parse_taxonomy(text, str(path))
