"""Plain-language names of the taxonomy's categories, purposes and legal bases, in
every language of the pages: `policies/plain-language.toml`, beside the taxonomy
(`categories.toml`) it names, so that a deployer who adds a category there adds
its names here.

One table per term, one key per language:

    [categories.contact]
    en = "How to reach you: phone, e-mail, address for letters"
    es = "..."

The file is not part of the policy set: its names decide nothing, so changing a
wording does not change the policy set's version. It is checked when the service
starts: a term that the taxonomy does not have (a misspelling) or a name that is
not a string stops the start, naming the file. A missing name shows the English
one, then the taxonomy's description (never a bare code); the pages' tests fail
on any missing name for a shipped language.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from service.policy.errors import PolicySetError
from service.policy.taxonomy import Taxonomy

TERMS_FILE = "plain-language.toml"
KINDS = ("categories", "purposes", "legal_bases")

log = logging.getLogger("accord.pages")


@dataclass(frozen=True)
class Terms:
    # kind -> term -> language -> name
    names: Mapping[str, Mapping[str, Mapping[str, str]]]
    # kind -> term -> the taxonomy's own description (English)
    descriptions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def name(self, kind: str, term: str, lang: str) -> str:
        by_language = self.names.get(kind, {}).get(term, {})
        return (
            by_language.get(lang)
            or by_language.get("en")
            or self.descriptions.get(kind, {}).get(term)
            or term
        )

    def missing(self, languages: Iterable[str]) -> list[str]:
        """`kind.term:language` for every name the file lacks."""
        wanted = list(languages)
        return [
            f"{kind}.{term}:{lang}"
            for kind in KINDS
            for term in self.descriptions.get(kind, {})
            for lang in wanted
            if not self.names.get(kind, {}).get(term, {}).get(lang)
        ]


def _descriptions(taxonomy: Taxonomy) -> dict[str, dict[str, str]]:
    return {
        "categories": {n: info.description for n, info in taxonomy.categories.items()},
        "purposes": dict(taxonomy.purposes),
        "legal_bases": dict(taxonomy.legal_bases),
    }


def parse_terms(text: str, source: str, taxonomy: Taxonomy) -> Terms:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicySetError(source, str(exc)) from exc
    known = _descriptions(taxonomy)
    unknown_tables = sorted(set(data) - set(KINDS))
    if unknown_tables:
        raise PolicySetError(source, f"unknown tables {unknown_tables}; expected {list(KINDS)}")
    names: dict[str, dict[str, dict[str, str]]] = {}
    for kind in KINDS:
        table = data.get(kind, {})
        if not isinstance(table, dict):
            raise PolicySetError(source, f"[{kind}] must be a table")
        names[kind] = {}
        for term, by_language in table.items():
            if term not in known[kind]:
                raise PolicySetError(source, f"[{kind}.{term}]: not in the taxonomy")
            if not isinstance(by_language, dict) or not all(
                isinstance(v, str) and v.strip() for v in by_language.values()
            ):
                raise PolicySetError(
                    source, f"[{kind}.{term}]: each language's name must be a non-empty string"
                )
            names[kind][term] = {lang: value.strip() for lang, value in by_language.items()}
    return Terms(names=names, descriptions=known)


def load_terms(policy_dir: Path, taxonomy: Taxonomy, languages: Iterable[str]) -> Terms:
    path = policy_dir / TERMS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        log.warning("pages: no plain-language names", extra={"where": str(path)})
        return Terms(names={}, descriptions=_descriptions(taxonomy))
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicySetError(str(path), f"unreadable: {exc}") from exc
    terms = parse_terms(text, str(path), taxonomy)
    missing = terms.missing(languages)
    if missing:
        log.warning(
            "pages: plain-language names missing; English is shown",
            extra={"where": str(path), "count": len(missing)},
        )
    return terms
