"""The oversight page's words for the codes a report carries: sectors, states,
reasons, legal bases, and the tables' titles. English msgids marked `N_` for Babel
(service/pages/babel.cfg); translated when the page renders. A code or table this
list does not know (a newer report) shows as the report names it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from service.pages.words import N_

Gettext = Callable[[str], str]

KINDS: Mapping[str, str] = {
    "obligation": N_("Tell the survivor about a compelled release"),
    "review": N_("Review an emergency release"),
}

CODES: Mapping[str, str] = {
    # sectors, short: they label bars
    "victim_services": N_("Victim services"),
    "shelter": N_("Shelter"),
    "law_enforcement": N_("Law enforcement"),
    "prosecution": N_("Prosecution"),
    "legal_services": N_("Legal services"),
    "healthcare": N_("Health care"),
    "child_welfare": N_("Child welfare"),
    "government": N_("Government"),
    "advocacy": N_("Advocacy"),
    "faith_based": N_("Faith-based"),
    "research": N_("Research"),
    "oversight": N_("Oversight"),
    # referral states
    "sent": N_("Sent"),
    "delivered": N_("Delivered"),
    "accepted": N_("Accepted"),
    "declined": N_("Declined"),
    "closed": N_("Closed"),
    "withdrawn": N_("Withdrawn"),
    "expired": N_("Expired"),
    # decline reasons
    "no_capacity": N_("No capacity"),
    "not_eligible": N_("Not eligible"),
    "cannot_reach": N_("Could not reach"),
    "survivor_declined": N_("The survivor declined"),
    "other": N_("Other"),
    # legal bases
    "consent": N_("Consent"),
    "court_order": N_("Court order"),
    "subpoena": N_("Subpoena"),
    "mandated_report": N_("Mandated report"),
    "emergency": N_("Emergency"),
    # preliminary answers, answers and duties
    "allowed": N_("Allowed"),
    "needs_consent": N_("Needs consent"),
    "never": N_("Never"),
    "mixed": N_("Mixed"),
    "open": N_("Open"),
    "released": N_("Released"),
    "refused": N_("Refused"),
    "recorded": N_("Recorded"),
    "opened": N_("Opened"),
    "became_overdue": N_("Became overdue"),
    "done_on_time": N_("Done on time"),
    "done_late": N_("Done late"),
    "overdue": N_("Overdue"),
    "not_yet_due": N_("Not due yet"),
}

TABLES: Mapping[str, str] = {
    "referrals_by_sector": N_("Referrals by the sender's and the recipient's sector"),
    "referral_steps": N_("Referrals that reached each step within the period"),
    "declines_by_reason": N_("Declined referrals by reason"),
    "requests_by_basis": N_("Records requests by legal basis and preliminary answer"),
    "requests_by_answer": N_("Records requests by how they were answered"),
    "disclosures_by_basis": N_("Disclosures by legal basis"),
    "consents": N_("Consents recorded, withdrawn and expired"),
    "obligations": N_("Duties to tell the survivor"),
    "reviews": N_("Reviews of emergency releases"),
}

DURATIONS: Mapping[str, str] = {
    "sent_to_delivered": N_("Sent to delivered"),
    "sent_to_accepted": N_("Sent to accepted"),
}


def _say(words: Mapping[str, str], code: str, fallback: str, _: Gettext) -> str:
    message = words.get(code)
    return _(message) if message is not None else fallback


def namer(_: Gettext) -> Callable[[str], str]:
    def name(code: str) -> str:
        return _say(CODES, code, code.replace("_", " "), _)

    return name


def table_title(name: str, title: str, _: Gettext) -> str:
    return _say(TABLES, name, title, _)


def duration_title(name: str, title: str, _: Gettext) -> str:
    return _say(DURATIONS, name, title, _)


def say_kind(kind: str, _: Gettext) -> str:
    return _say(KINDS, kind, kind, _)
