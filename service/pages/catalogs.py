"""The pages' message catalogs (gettext, through Babel) and the languages they make.

English is the source language: every msgid is the English text, so English needs
no catalog. Each other language is one file,
`service/pages/locales/<code>/LC_MESSAGES/messages.po`, compiled into gettext
translations when the service starts (Babel's `mofile`; fuzzy entries are left
out, so a string a translator has not confirmed shows in English rather than
wrong). No compiled `.mo` file is kept in the repository, so none can be stale.
A catalog that does not parse stops the start.
"""

from __future__ import annotations

import gettext
from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po

LOCALE_DIR = Path(__file__).resolve().parent / "locales"
SOURCE_LANGUAGE = "en"
DOMAIN = "messages"


class CatalogError(RuntimeError):
    """A catalog that cannot be used; names the file."""


@dataclass(frozen=True, slots=True)
class Language:
    code: str
    name: str  # in the language itself, for the switcher
    direction: str  # "ltr" or "rtl": the page's `dir`


def language(code: str) -> Language:
    try:
        locale = Locale.parse(code, sep="-")
    except (UnknownLocaleError, ValueError):
        return Language(code=code, name=code, direction="ltr")
    name = locale.get_display_name(locale) or code
    return Language(
        code=code, name=name[:1].upper() + name[1:], direction=locale.text_direction or "ltr"
    )


def po_file(directory: Path, code: str) -> Path:
    return directory / code / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_po(path: Path) -> gettext.GNUTranslations:
    """A .po file compiled in memory into gettext translations."""
    try:
        with path.open("rb") as source:
            catalog = read_po(source, abort_invalid=True)
    except (OSError, ValueError, PoFileError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def load_translations(directory: Path = LOCALE_DIR) -> dict[str, gettext.NullTranslations]:
    """English, then every language with a catalog in `directory`, by code."""
    loaded: dict[str, gettext.NullTranslations] = {SOURCE_LANGUAGE: gettext.NullTranslations()}
    for child in sorted(directory.iterdir()) if directory.is_dir() else []:
        path = po_file(directory, child.name)
        if path.is_file():
            loaded[child.name] = compile_po(path)
    return loaded


def languages_of(translations: Mapping[str, gettext.NullTranslations]) -> dict[str, Language]:
    return {code: language(code) for code in translations}
