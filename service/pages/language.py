"""Which language a page is shown in.

In order: the language the survivor chose with the switcher (the `lang` query
parameter, remembered in a cookie that holds only the language code), else the
language the newest consent grant was recorded in (the survivor was informed in
it), else the browser's `Accept-Language`, else English. Tags match a shipped
language exactly or by their primary subtag (`es-MX` -> `es`); anything else is
ignored, never echoed.
"""

from __future__ import annotations

from collections.abc import Collection

from service.pages.catalogs import SOURCE_LANGUAGE

MAX_ACCEPT_LANGUAGE = 512
MAX_RANGES = 16


def match(tag: str | None, available: Collection[str]) -> str | None:
    if not tag or len(tag) > 35:
        return None
    wanted = tag.strip().replace("_", "-").lower()
    by_lower = {code.lower(): code for code in available}
    if wanted in by_lower:
        return by_lower[wanted]
    return by_lower.get(wanted.split("-", 1)[0])


def accepted(header: str | None) -> list[str]:
    """The language ranges of an Accept-Language header, best first (q=0 dropped)."""
    if not header or len(header) > MAX_ACCEPT_LANGUAGE:
        return []
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:MAX_RANGES]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        if tag and tag != "*" and 0 < quality <= 1:
            ranked.append((-quality, index, tag.strip()))
    return [tag for _, _, tag in sorted(ranked)]


def choose(
    *,
    available: Collection[str],
    chosen: str | None = None,
    remembered: str | None = None,
    grant: str | None = None,
    accept_language: str | None = None,
) -> str:
    for candidate in (chosen, remembered, grant):
        found = match(candidate, available)
        if found:
            return found
    for tag in accepted(accept_language):
        found = match(tag, available)
        if found:
            return found
    return SOURCE_LANGUAGE
