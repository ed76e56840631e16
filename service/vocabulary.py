"""The closed vocabularies that requests are validated against.

Categories and purposes are data in `policies/` (DESIGN.md section 4: the taxonomy
is data, not code); the service reads them from the loaded policy set. Matching is
exact: `Counseling_Notes`, a trailing space or a homoglyph is an unknown value and
a 422, never a near match (SECURITY-TESTS C04).

A field's name is the sender's word, its category label is what the policies
decide on. Where the name is itself a name the taxonomy knows (a category's), the
label must agree: a field named `counseling_notes` labelled `needs` would
otherwise leave under the rules for `needs` (docs/envelope.md "Labels").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from service.errors import ProblemItem


@dataclass(frozen=True)
class Vocabulary:
    categories: frozenset[str]
    purposes: frozenset[str]

    def check_list(
        self, path: str, values: Iterable[str], allowed: frozenset[str], what: str
    ) -> list[ProblemItem]:
        problems: list[ProblemItem] = []
        seen: set[str] = set()
        items = list(values)
        if not items:
            problems.append(
                ProblemItem(
                    path, f"at least one {what} is required (an empty list matches nothing)"
                )
            )
        for index, value in enumerate(items):
            if value not in allowed:
                problems.append(ProblemItem(f"{path}/{index}", f"unknown {what}"))
            elif value in seen:
                problems.append(ProblemItem(f"{path}/{index}", f"duplicate {what}"))
            seen.add(value)
        return problems

    def check_categories(self, path: str, values: Iterable[str]) -> list[ProblemItem]:
        return self.check_list(path, values, self.categories, "category")

    def check_purposes(self, path: str, values: Iterable[str]) -> list[ProblemItem]:
        return self.check_list(path, values, self.purposes, "purpose")

    def check_labels(self, path: str, fields: Iterable[tuple[str, str]]) -> list[ProblemItem]:
        """One problem per field (name, category) whose name is a category of the
        taxonomy and whose category is another; `path` is the list of fields."""
        return [
            ProblemItem(
                f"{path}[{index}].category",
                "a field named after a category must carry that category",
                {"code": "label_mismatch", "field": name, "category": category},
            )
            for index, (name, category) in enumerate(fields)
            if name in self.categories and category != name
        ]
