"""Documentation drift: every setting is documented."""

from __future__ import annotations

from pathlib import Path

from service.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_setting_is_in_the_configuration_doc() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`ACCORD_{name.upper()}`" not in text]
    assert not missing, f"undocumented settings: {missing}"


def test_every_event_type_is_in_the_notifications_doc() -> None:
    from service.events.catalog import EventType

    text = (DOCS / "notifications.md").read_text(encoding="utf-8")
    missing = [t.value for t in EventType if f"| `{t.value}` |" not in text]
    assert not missing, f"event types missing from docs/notifications.md: {missing}"


def test_docs_cite_only_files_that_exist() -> None:
    """A relative link or a `path/like/this.py` in docs/ and README.md names a file
    of the repository."""
    import re

    root = DOCS.parent
    pages = [*DOCS.rglob("*.md"), root / "README.md", root / "clients" / "README.md"]
    missing = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                missing.append(f"{page.relative_to(root)} -> {target}")
        for path in re.findall(
            r"`((?:service|clients|tests|bench|migrations|policies)/[\w./-]+)`", text
        ):
            if not (root / path).exists() and "*" not in path:
                missing.append(f"{page.relative_to(root)} -> {path}")
    assert not missing, missing


def test_docs_name_no_file_outside_the_repository() -> None:
    """The design notes the engineers work from (DESIGN.md, API.md, STYLE.md,
    SECURITY-TESTS.md) are not in the repository, so a user's page must not send
    the reader there; docs/guarantees.md holds the promises pages refer to."""
    import re

    root = DOCS.parent
    pages = [*DOCS.rglob("*.md"), root / "README.md", root / "clients" / "README.md"]
    outside = re.compile(r"\b(?:DESIGN|API|STYLE|SECURITY-TESTS)\.md\b|\.\./shared")
    found = [
        f"{page.relative_to(root)}:{n}"
        for page in pages
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if outside.search(line)
    ]
    assert not found, found
