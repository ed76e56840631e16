"""Rendering the pages: one Jinja2 environment per language, the response headers
every page carries, the cookies, and the error pages.

Every response under /s/ (pages, redirects, error pages, the receipt, the CSS and
the script) carries the same headers: a Content-Security-Policy that allows only
the service's own style sheet and script (no inline script, no other origin, no
framing), `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`. The request
guard (service/web/middleware.py) adds `Cache-Control: no-store` to every
response, so no page is kept by the browser or a proxy.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale
from babel.dates import format_date, format_datetime, format_time
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from service.pages import language as lang_choice
from service.pages.catalogs import Language, languages_of, load_translations
from service.pages.terms import Terms, load_terms
from service.policy.taxonomy import Taxonomy
from service.settings import Settings

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
COOKIE_PATH = "/s"
SESSION_COOKIE = "accord_s"
LANGUAGE_COOKIE = "accord_lang"

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def _when(lang: str, zone: ZoneInfo) -> Callable[[datetime], str]:
    """A date and time in the language's own order, with the zone's abbreviation."""
    pattern = Locale.parse(lang, sep="-").datetime_formats["medium"]

    def when(value: datetime) -> str:
        local = value.astimezone(zone)
        text = str(pattern).replace("{1}", format_date(local, "long", locale=lang))
        text = text.replace("{0}", format_time(local, "short", locale=lang))
        return f"{text} {format_datetime(value, 'z', tzinfo=zone, locale=lang)}"

    return when


def _day(lang: str, zone: ZoneInfo) -> Callable[[datetime], str]:
    def day(value: datetime) -> str:
        return format_date(value.astimezone(zone), "long", locale=lang)

    return day


@dataclass
class Site:
    """What the pages need from start-up on; `app.state.pages`."""

    languages: dict[str, Language]
    translations: Mapping[str, gettext.NullTranslations]
    envs: dict[str, jinja2.Environment]
    terms: Terms
    settings: Settings

    @classmethod
    def build(
        cls,
        settings: Settings,
        taxonomy: Taxonomy,
        *,
        translations: Mapping[str, gettext.NullTranslations] | None = None,
    ) -> Site:
        translations = translations if translations is not None else load_translations()
        languages = languages_of(translations)
        zone = ZoneInfo(settings.pages_time_zone)
        envs: dict[str, jinja2.Environment] = {}
        for code, catalog in translations.items():
            env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(TEMPLATES),
                autoescape=True,
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                extensions=["jinja2.ext.i18n"],
            )
            env.policies["ext.i18n.trimmed"] = True
            env.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]
            env.filters["when"] = _when(code, zone)
            env.filters["day"] = _day(code, zone)
            envs[code] = env
        terms = load_terms(settings.policy_dir, taxonomy, languages)
        return cls(languages, translations, envs, terms, settings)

    def gettext(self, lang: str) -> Callable[[str], str]:
        return self.translations[lang].gettext

    def language(self, request: Request, *, grant: str | None = None) -> str:
        return lang_choice.choose(
            available=self.languages,
            chosen=request.query_params.get("lang"),
            remembered=request.cookies.get(LANGUAGE_COOKIE),
            grant=grant,
            accept_language=request.headers.get("accept-language"),
        )

    def render(
        self,
        request: Request,
        template: str,
        *,
        lang: str,
        status: int = 200,
        here: str = "/s/consents",
        **context: Any,
    ) -> HTMLResponse:
        """The page in `lang`, with its headers; remembers a language chosen now."""
        info = self.languages[lang]
        body = (
            self.envs[lang]
            .get_template(template)
            .render(
                lang=info.code,
                dir=info.direction,
                languages=list(self.languages.values()),
                here=here,
                exit_url=self.settings.pages_exit_url,
                **context,
            )
        )
        response = HTMLResponse(body, status_code=status)
        chosen = lang_choice.match(request.query_params.get("lang"), self.languages)
        if chosen is not None:
            self.set_cookie(response, LANGUAGE_COOKIE, chosen, max_age=365 * 86400)
        secure(response)
        return response

    def set_cookie(self, response: Response, name: str, value: str, *, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=COOKIE_PATH,
            secure=self.settings.pages_cookie_secure,
            httponly=True,
            samesite="strict",
        )

    def forget_session(self, response: Response) -> None:
        response.delete_cookie(
            SESSION_COOKIE,
            path=COOKIE_PATH,
            secure=self.settings.pages_cookie_secure,
            httponly=True,
            samesite="strict",
        )


def site_of(request: Request) -> Site:
    site: Site = request.app.state.pages
    return site


class PageError(Exception):
    """A page-level refusal, rendered as an HTML page after the request's transaction
    rolled back (so a refused request changes nothing)."""

    status = 404
    template = "not_found.html"

    def __init__(self, lang: str | None = None) -> None:
        super().__init__(self.template)
        self.lang = lang


class PageNotFoundError(PageError):
    """Unknown, malformed, or another survivor's: one identical page."""


class SessionEndedError(PageError):
    """No session, or one that ended: the same neutral page as a refused link."""

    status = 403
    template = "closed.html"


class FormRefusedError(PageError):
    status = 403
    template = "form_refused.html"


class TooManyTriesError(PageError):
    status = 429
    template = "too_many.html"

    def __init__(self, lang: str | None = None, retry_after: str = "60") -> None:
        super().__init__(lang)
        self.retry_after = retry_after


def install(app: FastAPI) -> None:
    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        site = site_of(request)
        lang = exc.lang or site.language(request)
        response = site.render(request, exc.template, lang=lang, status=exc.status, nav=False)
        if isinstance(exc, SessionEndedError) and SESSION_COOKIE in request.cookies:
            site.forget_session(response)
        if isinstance(exc, TooManyTriesError):
            response.headers["Retry-After"] = exc.retry_after
        return response


def load_site(settings: Settings, taxonomy: Taxonomy) -> Site:
    """At start-up: catalogs compiled, plain-language names checked (a broken catalog
    or names file stops the start)."""
    return Site.build(settings, taxonomy)
