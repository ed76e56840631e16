"""What each page shows, in plain words: built from the domains' own reads (the
same functions the API uses, so the pages and the API never disagree), with
organizations by name and sector and every code put into words.

Nothing here reads a field value (the server has none) or any free text staff
wrote (revocation reasons, justifications, notes, outcomes): only identifiers,
codes, names of organizations and times. A consent's named fields are counted,
not listed: field names are chosen by case-management tools.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from babel import Locale, UnknownLocaleError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.models import AuditEntry
from service.consents.service import ConsentState
from service.organizations import visibility
from service.organizations.models import Organization
from service.pages import words
from service.pages.terms import Terms
from service.policy.inputs import WILDCARD
from service.policy.taxonomy import Taxonomy

Gettext = Callable[[str], str]


@dataclass(frozen=True)
class OrgView:
    name: str
    sector: str


@dataclass(frozen=True)
class ConsentView:
    id: str
    recorded_at: datetime
    state: str
    state_label: str
    recipients: list[OrgView]
    purposes: list[str]
    kinds: list[str]
    # A wildcard grant: every kind except those that must be named one by one.
    everything_except: list[str] | None
    field_count: int | None
    valid_from: datetime
    expires_at: datetime
    revoked_at: datetime | None
    method: str
    given_by: str
    withdrawable: bool


@dataclass(frozen=True)
class DisclosureView:
    at: datetime
    recipient: OrgView | None
    released: list[str]
    withheld: list[str]
    purpose: str
    basis: str


@dataclass(frozen=True)
class HelpView:
    org: OrgView
    hours: str
    languages: list[str]
    services: list[str]


async def organizations(
    session: AsyncSession, ids: Iterable[uuid.UUID], *, viewer: uuid.UUID | None = None
) -> dict[uuid.UUID, Organization]:
    """By id; with `viewer` (the serving organization), a confidential one it shares
    no collaboration with is a stand-in (service/organizations/visibility.py)."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await session.scalars(select(Organization).where(Organization.id.in_(wanted)))
    found = {org.id: org for org in rows.all()}
    if viewer is None:
        return found
    return await visibility.mask_all(session, visibility.Viewer(viewer), found)


def org_view(org: Organization, _: Gettext) -> OrgView:
    return OrgView(name=org.name, sector=words.say(words.SECTORS, org.sector, _))


def state_of(state: ConsentState, now: datetime) -> str:
    if state.revocation is not None and state.revocation.revoked_at <= now:
        return "withdrawn"
    if not state.latest:
        return "superseded"
    if state.giver_barred:
        return "not_counted"
    if now < state.version.valid_from:
        return "not_yet"
    if now >= state.version.expires_at:
        return "expired"
    return "live"


def newest_language(states: Sequence[ConsentState]) -> str | None:
    """The language the newest grant was recorded in (the survivor was informed in it)."""
    if not states:
        return None
    newest = max(states, key=lambda s: (s.version.recorded_at, s.version.version))
    return newest.version.language


def consent_view(
    state: ConsentState,
    *,
    orgs: Mapping[uuid.UUID, Organization],
    terms: Terms,
    taxonomy: Taxonomy,
    lang: str,
    _: Gettext,
    now: datetime,
) -> ConsentView:
    v = state.version
    code = state_of(state, now)
    categories = list(v.categories)
    everything_except = None
    if WILDCARD in categories:
        explicit = sorted(n for n, info in taxonomy.categories.items() if info.explicit)
        everything_except = [terms.name("categories", n, lang) for n in explicit]
        categories = [c for c in categories if c != WILDCARD]
    recipients = [uuid.UUID(r) for r in v.recipients]
    return ConsentView(
        id=str(v.id),
        recorded_at=v.recorded_at,
        state=code,
        state_label=words.say(words.STATES, code, _),
        recipients=[org_view(orgs[r], _) for r in recipients if r in orgs],
        purposes=[terms.name("purposes", p, lang) for p in v.purposes],
        kinds=[terms.name("categories", c, lang) for c in categories],
        everything_except=everything_except,
        field_count=len(v.fields) if v.fields is not None else None,
        valid_from=v.valid_from,
        expires_at=v.expires_at,
        revoked_at=state.revocation.revoked_at if state.revocation else None,
        method=words.say(words.METHODS, v.method, _),
        given_by=words.say(words.GIVEN_BY, v.given_by, _),
        withdrawable=code in ("live", "not_yet"),
    )


def recipients_of(states: Iterable[ConsentState]) -> set[uuid.UUID]:
    return {uuid.UUID(r) for s in states for r in s.version.recipients}


def disclosure_views(
    rows: Sequence[tuple[AuditEntry, uuid.UUID | None, Organization | None]],
    *,
    terms: Terms,
    lang: str,
    _: Gettext,
) -> list[DisclosureView]:
    """Every disclosure the accounting shows (suspensions already honoured), newest
    first: who, when, which kinds released and which held back, for what, why."""
    views = []
    for entry, _recipient, org in rows:
        details = json.loads(entry.body).get("details", {})
        released = sorted(set(details.get("categories", [])))
        withheld = sorted(
            {w["category"] for w in details.get("withheld", []) if isinstance(w, dict)}
        )
        views.append(
            DisclosureView(
                at=entry.at,
                recipient=org_view(org, _) if org is not None else None,
                released=[terms.name("categories", c, lang) for c in released],
                withheld=[terms.name("categories", c, lang) for c in withheld],
                purpose=terms.name("purposes", str(details.get("purpose", "")), lang),
                basis=terms.name("legal_bases", str(details.get("legal_basis", "")), lang),
            )
        )
    views.reverse()  # the log's order, newest first
    return views


def language_name(code: str, lang: str) -> str:
    """A language named in the page's language (`es` on a Vietnamese page: tiếng Tây Ban Nha)."""
    try:
        return Locale.parse(code, sep="-").get_display_name(lang) or code
    except (UnknownLocaleError, ValueError):
        return code


def help_view(org: Organization, _: Gettext, lang: str) -> HelpView:
    return HelpView(
        org=org_view(org, _),
        hours=words.say(words.HOURS, org.hours, _),
        languages=[language_name(code, lang) for code in org.languages],
        services=[words.say(words.SERVICES, s, _) for s in org.services],
    )
