"""The fixed vocabularies the pages put into words: sectors, how consent was given
and by whom, a consent's state, an organization's hours and services.

Each is the English msgid, marked with `N_` so that Babel's extraction finds it
(service/pages/babel.cfg); the page translates it when it renders. The taxonomy's
own terms (categories, purposes, legal bases) are named in
policies/plain-language.toml instead, because deployers change them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "translate later"
    return message


SECTORS: Mapping[str, str] = {
    "victim_services": N_("a victim service provider"),
    "shelter": N_("a shelter"),
    "law_enforcement": N_("law enforcement (police)"),
    "prosecution": N_("a prosecutor's office"),
    "legal_services": N_("legal services"),
    "healthcare": N_("health care"),
    "child_welfare": N_("child welfare services"),
    "government": N_("a government agency"),
    "advocacy": N_("an advocacy group"),
    "faith_based": N_("a faith-based group"),
    "research": N_("researchers"),
    "oversight": N_("an oversight body"),
}

METHODS: Mapping[str, str] = {
    "written": N_("In writing, on a signed form"),
    "verbal": N_("Out loud, in words"),
    "electronic": N_("Electronically, on a screen"),
}

GIVEN_BY: Mapping[str, str] = {
    "survivor": N_("You"),
    "parent_or_guardian": N_("Your parent or guardian"),
    "legal_representative": N_("Your legal representative"),
}

STATES: Mapping[str, str] = {
    "live": N_("In effect"),
    "not_yet": N_("Not in effect yet"),
    "expired": N_("Ended: its time ran out"),
    "withdrawn": N_("Withdrawn"),
    "superseded": N_("Replaced by a newer version"),
    "not_counted": N_("Not in effect"),
}

HOURS: Mapping[str, str] = {
    "24/7": N_("Open 24 hours a day, every day"),
    "business_hours": N_("Open during business hours"),
    "extended_hours": N_("Open longer than business hours"),
    "on_call": N_("Someone can be reached on call"),
}

SERVICES: Mapping[str, str] = {
    "emergency_shelter": N_("Emergency shelter"),
    "transitional_housing": N_("Housing for a longer stay"),
    "case_management": N_("A case manager who helps you plan"),
    "crisis_hotline": N_("A crisis phone line"),
    "counseling": N_("Counseling"),
    "medical_care": N_("Medical care"),
    "mental_health": N_("Mental health care"),
    "substance_use_treatment": N_("Treatment for alcohol or drug use"),
    "legal_aid": N_("Legal help"),
    "immigration_legal": N_("Legal help with immigration"),
    "interpretation": N_("Interpreters"),
    "employment": N_("Help finding work"),
    "financial_assistance": N_("Help with money"),
    "child_services": N_("Services for children"),
    "victim_advocacy": N_("An advocate who supports you"),
    "investigation": N_("Criminal investigation"),
    "prosecution": N_("Criminal prosecution"),
}


def say(words: Mapping[str, str], code: str | None, gettext: Callable[[str], str]) -> str:
    """`code` in words, translated; an unknown code (a newer vocabulary) as itself."""
    if code is None:
        return ""
    message = words.get(code)
    return gettext(message) if message is not None else code
