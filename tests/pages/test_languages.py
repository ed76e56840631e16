"""Issue 20: every page in every shipped language, with no untranslated string.

Three checks, each able to fail on its own:
- the catalogs: every string Babel extracts from the pages (templates, and the
  `N_` words of service/pages/words.py) has a confirmed, non-empty translation in
  every shipped catalog, with the same placeholders, and no stale entry;
- rendering: every page (consents of every state, the accounting with released and
  held-back kinds, help, both withdrawal pages, every error page) rendered through
  catalogs that record every string asked for and not in them;
- no text outside the catalogs: the same pages in a pseudo-language (`ar`, right to
  left) whose every translation is marked; any visible text or label that is not
  marked and is not data (names, dates, ids) was written in a template without
  gettext. The same pages prove that `dir` switches to `rtl`.
And the language choice: the switcher, then the grant's language, then the browser.
"""

from __future__ import annotations

import gettext
import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po
from starlette.requests import Request

from service.auth.principals import Role
from service.pages import catalogs
from service.pages.language import accepted, choose
from service.pages.site import Site
from service.pages.terms import KINDS, Terms, load_terms
from service.policy.setup import load_taxonomy
from service.settings import REPO_ROOT, Settings
from tests.pages.support import CSRF, Browser, issue_link, new_browser
from tests.referrals.support import make_kit
from tests.support.factories import grant_body, new_consent
from tests.support.world import World

PAGES = Path(catalogs.__file__).parent
SHIPPED = ("en", "es", "vi")
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
MARK_OPEN, MARK_CLOSE = "⟦", "⟧"


def extracted() -> set[str]:
    with (PAGES / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(PAGES), method_map, options_map
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_shipped_languages_are_english_spanish_and_vietnamese() -> None:
    assert tuple(catalogs.load_translations()) == SHIPPED
    assert [catalogs.language(c).direction for c in SHIPPED] == ["ltr"] * 3
    assert catalogs.language("ar").direction == "rtl"


@pytest.mark.parametrize("code", [c for c in SHIPPED if c != catalogs.SOURCE_LANGUAGE])
def test_every_extracted_string_has_a_confirmed_translation(code: str) -> None:
    messages = extracted()
    assert len(messages) > 100  # the extraction really saw the templates and words.py
    with catalogs.po_file(catalogs.LOCALE_DIR, code).open("rb") as source:
        catalog = read_po(source)
    entries = {m.id: m for m in catalog if m.id}
    missing = sorted(messages - set(entries))
    assert not missing, f"{code}: no entry for {missing}"
    stale = sorted(set(entries) - messages)
    assert not stale, f"{code}: entries no page uses any more: {stale}"
    assert not catalog.obsolete, f"{code}: obsolete entries"
    for msgid, entry in entries.items():
        assert isinstance(entry.string, str), msgid
        assert entry.string.strip(), f"{code}: empty {msgid!r}"
        assert not entry.fuzzy, f"{code}: unconfirmed (fuzzy) {msgid!r}"
        assert sorted(PLACEHOLDER.findall(entry.string)) == sorted(PLACEHOLDER.findall(msgid)), (
            f"{code}: placeholders differ in {msgid!r}"
        )


def test_every_term_of_the_taxonomy_has_a_plain_name_in_every_language() -> None:
    taxonomy = load_taxonomy(REPO_ROOT / "policies" / "categories.toml")
    terms = load_terms(REPO_ROOT / "policies", taxonomy, SHIPPED)
    assert terms.missing(SHIPPED) == []
    assert terms.name("categories", "counseling_notes", "es").startswith("Notas privadas")


class _Strict(gettext.NullTranslations):
    """Translations that record every string asked for that they do not hold."""

    def __init__(self, code: str, inner: gettext.NullTranslations, known: set[str]) -> None:
        super().__init__()
        self.code, self.inner, self.known = code, inner, known
        self.misses: list[str] = []

    def gettext(self, message: str) -> str:
        if message not in self.known:
            self.misses.append(message)
        return self.inner.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        self.misses.append(singular)  # the pages use no plurals yet
        return self.inner.ngettext(singular, plural, n)


def _confirmed(code: str) -> set[str]:
    if code == catalogs.SOURCE_LANGUAGE:
        return extracted()
    with catalogs.po_file(catalogs.LOCALE_DIR, code).open("rb") as source:
        return {m.id for m in read_po(source) if m.id and m.string and not m.fuzzy}


def _pseudo_catalog(directory: Path, messages: set[str]) -> None:
    """`ar` with every translation marked, so unmarked text stands out."""
    catalog = Catalog(locale="ar")
    for message in sorted(messages):
        catalog.add(message, f"{MARK_OPEN}{message}{MARK_CLOSE}")
    path = catalogs.po_file(directory, "ar")
    path.parent.mkdir(parents=True)
    with path.open("wb") as target:
        write_po(target, catalog)


async def _story(client: httpx.AsyncClient, world: World) -> tuple[str, list[str]]:
    """A subject with every kind of consent state, a delivery with released and held
    back kinds, and a directory entry with hours, languages and services."""
    kit = await make_kit(client, world)
    referral = await kit.send()
    await kit.forbid_contact()  # after sending: contact is held back at delivery
    assert (await kit.deliver(referral["id"])).status_code == 200
    staff = world.headers("vsp", Role.caseworker)
    _, wildcard = await new_consent(
        client, world, kit.subject, categories=["*"], fields=["phone"], method="verbal",
        language="fr",
    )  # fmt: skip
    r = await client.post(
        f"/v1/subjects/{kit.subject}/consents",
        json={**grant_body(world), "supersedes": wildcard["id"]},
        headers=staff,
    )
    assert r.status_code == 201, r.text
    _, revoked = await new_consent(client, world, kit.subject)
    r = await client.post(
        f"/v1/consents/{revoked['id']}/revoke", json={"reason": "x"}, headers=staff
    )
    assert r.status_code == 200
    _, later = await new_consent(
        client, world, kit.subject, valid_from=(world.clock.now() + timedelta(days=2)).isoformat()
    )
    r = await client.put(
        f"/v1/organizations/{world.orgs['vsp']}/availability",
        json={
            "accepting_referrals": True,
            "hours": "24/7",
            "languages": ["en", "es", "vi"],
            "services": ["emergency_shelter", "legal_aid"],
            "populations": ["adults"],
        },
        headers=world.headers("vsp", Role.org_admin),
    )
    assert r.status_code == 200, r.text
    return kit.subject, [str(kit.consent["id"]), str(later["id"])]


async def _visit(browser: Browser, lang: str, withdrawable: str) -> list[httpx.Response]:
    """Every page once in `lang` (chosen with the switcher, then remembered)."""
    pages = [await browser.get(f"/s/consents?lang={lang}")]
    for path in (
        "/s/disclosures",
        "/s/help",
        "/s/consents/00000000-0000-0000-0000-000000000000/receipt",
    ):
        pages.append(await browser.get(path))
    token = CSRF.search(pages[0].text)
    assert token is not None
    pages.append(await browser.post(f"/s/consents/{withdrawable}/withdraw", {"csrf": token[1]}))
    pages.append(await browser.post(f"/s/consents/{withdrawable}/withdraw", {}))  # refused
    return pages


def _render_rest(site: Site, lang: str) -> list[str]:
    """The pages no request reaches cheaply in every language: the rate limit's."""
    request = Request({"type": "http", "query_string": b"", "headers": [], "method": "GET"})
    return [site.render(request, "too_many.html", lang=lang, nav=False).body.decode()]


async def _all_pages(
    app: Any, client: httpx.AsyncClient, world: World, site: Site, languages: tuple[str, ...]
) -> dict[str, list[str]]:
    app.state.pages = site
    _subject, (_first, later) = await _story(client, world)
    link = await issue_link(client, world, _subject)
    rendered: dict[str, list[str]] = {}
    browser = new_browser(app)
    stranger = new_browser(app)
    async with browser.http, stranger.http:
        assert (await browser.open(link)).status_code == 303
        for lang in languages:
            pages = await _visit(browser, lang, later)
            assert [p.status_code for p in pages] == [200, 200, 200, 404, 200, 403], lang
            stranger.http.cookies.set("accord_lang", lang, domain="accord.test", path="/s")
            pages.append(await stranger.open(link))  # used: the neutral page
            pages.append(await stranger.get("/s/consents"))  # no session
            rendered[lang] = [p.text for p in pages]
            for page in pages:
                assert f'<html lang="{lang}" dir="{site.languages[lang].direction}">' in page.text
        # The withdrawn page last (it changes what the others show), in every language.
        token = CSRF.search((await browser.get("/s/consents")).text)
        assert token is not None
        done = await browser.post(f"/s/consents/{later}/withdraw/confirm", {"csrf": token[1]})
        assert done.status_code == 303
        for lang in languages:
            page = await browser.get(f"{done.headers['location']}?lang={lang}")
            assert page.status_code == 200
            rendered[lang].append(page.text)
            rendered[lang] += _render_rest(site, lang)
    return rendered


async def test_every_page_renders_in_every_shipped_language_with_no_missing_string(
    app: Any, client: httpx.AsyncClient, world: World, app_settings: Settings
) -> None:
    loaded = catalogs.load_translations()
    strict = {code: _Strict(code, loaded[code], _confirmed(code)) for code in SHIPPED}
    site = Site.build(app_settings, app.state.policy_engine.taxonomy, translations=strict)
    rendered = await _all_pages(app, client, world, site, SHIPPED)
    assert {code: s.misses for code, s in strict.items()} == {code: [] for code in SHIPPED}
    assert all(len(pages) == 10 for pages in rendered.values())
    assert "Lo que usted autorizó" in rendered["es"][0]
    assert "Những gì bạn đã đồng ý" in rendered["vi"][0]


class _Text(HTMLParser):
    """Visible text nodes and the labels a screen reader reads."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("aria-label", "title", "alt", "placeholder") and value:
                self.texts.append(value)

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append(data.strip())


async def test_no_text_escapes_the_catalogs_and_rtl_switches_direction(
    app: Any, client: httpx.AsyncClient, world: World, app_settings: Settings, tmp_path: Path
) -> None:
    messages = extracted()
    _pseudo_catalog(tmp_path, messages)
    translations = {**catalogs.load_translations(), **catalogs.load_translations(tmp_path)}
    translations.pop("en")
    translations = {"en": gettext.NullTranslations(), **translations}
    site = Site.build(app_settings, app.state.policy_engine.taxonomy, translations=translations)
    terms = site.terms
    site.terms = Terms(
        names={
            kind: {
                term: {
                    **terms.names.get(kind, {}).get(term, {}),
                    "ar": f"{MARK_OPEN}{term}{MARK_CLOSE}",
                }
                for term in terms.descriptions[kind]
            }
            for kind in KINDS
        },
        descriptions=terms.descriptions,
    )
    assert site.languages["ar"].direction == "rtl"
    rendered = await _all_pages(app, client, world, site, ("ar",))
    # Data, not text: organizations' names, the switcher's language names (each in
    # itself), the directory's languages named in the page's language.
    data = (
        {f"{name} org" for name in world.orgs}
        | {lang.name for lang in site.languages.values()}
        | {Locale.parse(code).get_display_name("ar") for code in SHIPPED}
    )
    unmarked = set()
    for page in rendered["ar"]:
        parser = _Text()
        parser.feed(page)
        for text in parser.texts:
            if MARK_OPEN in text or text in data or any(ch.isdigit() for ch in text):
                continue
            unmarked.add(text)
    assert not unmarked, f"text written outside gettext: {sorted(unmarked)}"


def test_accept_language_is_read_by_quality_and_bounded() -> None:
    assert accepted("es-MX;q=0.8, vi, en;q=0, *;q=0.1") == ["vi", "es-MX"]
    assert accepted("x" * 600) == []
    assert accepted("en;q=abc, es") == ["es"]
    assert choose(available=SHIPPED, chosen="xx", remembered=None, grant="es-MX") == "es"
    assert choose(available=SHIPPED, grant="fr", accept_language="de, vi;q=0.5") == "vi"
    assert choose(available=SHIPPED, chosen="VI", grant="es") == "vi"
    assert choose(available=SHIPPED, accept_language="de") == "en"


async def test_the_switcher_then_the_grant_then_the_browser(
    app: Any, client: httpx.AsyncClient, world: World, browser: Browser
) -> None:
    subject, _ = await new_consent(client, world, language="es-MX")
    assert (await browser.open(await issue_link(client, world, subject))).status_code == 303
    page = await browser.get("/s/consents", headers={"Accept-Language": "vi"})
    assert '<html lang="es"' in page.text  # the grant's language first
    switched = await browser.get("/s/consents?lang=vi")
    assert '<html lang="vi"' in switched.text
    cookie = switched.headers["set-cookie"]
    assert cookie.startswith("accord_lang=vi;")  # the language code and nothing else
    assert "Path=/s" in cookie
    assert "HttpOnly" in cookie
    assert '<html lang="vi"' in (await browser.get("/s/help")).text  # remembered
    assert '<html lang="vi"' in (await browser.get("/s/help?lang=xx")).text  # unknown: ignored
    # A grant in a language the pages do not have: the browser's language decides.
    other_subject, _ = await new_consent(client, world, language="fr")
    other = new_browser(app)
    async with other.http:
        assert (await other.open(await issue_link(client, world, other_subject))).status_code == 303
        page = await other.get("/s/consents", headers={"Accept-Language": "de, vi;q=0.5"})
        assert '<html lang="vi"' in page.text
        neutral = await other.get("/s/" + "e" * 26, headers={"Accept-Language": "es"})
        assert neutral.status_code == 404
        assert '<html lang="es"' in neutral.text


def test_a_catalog_that_does_not_parse_stops_the_start(tmp_path: Path) -> None:
    path = catalogs.po_file(tmp_path, "es")
    path.parent.mkdir(parents=True)
    path.write_text('msgid "Help"\nmsgstr "Ayuda"\nthis is no catalog\n', encoding="utf-8")
    with pytest.raises(catalogs.CatalogError, match=r"messages\.po"):
        catalogs.load_translations(tmp_path)


def test_a_fuzzy_translation_is_not_shown(tmp_path: Path) -> None:
    path = catalogs.po_file(tmp_path, "es")
    path.parent.mkdir(parents=True)
    path.write_text(
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=utf-8\\n"\n\n'
        '#, fuzzy\nmsgid "Help"\nmsgstr "Ayudar"\n\nmsgid "Hours"\nmsgstr "Horario"\n',
        encoding="utf-8",
    )
    spanish = catalogs.load_translations(tmp_path)["es"]
    assert spanish.gettext("Help") == "Help"
    assert spanish.gettext("Hours") == "Horario"
