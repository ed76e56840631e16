"""Hypothesis strategies for random policy inputs, biased towards the boundaries
(times within seconds of validity edges, recipients and flows that often match)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import strategies as st

from service.policy.inputs import (
    WILDCARD,
    Actor,
    AgreementFlow,
    ConsentInForce,
    DecisionRequest,
    FieldRef,
    OrgRef,
)
from service.sectors import Sector
from tests.policy.support import NOW, ORGS, VSP, default_set

CATEGORIES = sorted(default_set().taxonomy.categories)
PURPOSES = sorted(default_set().taxonomy.purposes)
BASES = sorted(default_set().taxonomy.legal_bases)
ROLES = ["caseworker", "supervisor", "investigator", "org_admin"]
ORG_REFS = [VSP, *ORGS.values()]

offsets = st.integers(min_value=-3, max_value=3).map(lambda s: NOW + timedelta(seconds=s))
orgs = st.sampled_from(ORG_REFS)


def _subset(values: list[str], extra: list[str] | None = None) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(values + (extra or [])), max_size=4)


def _often(draw: st.DrawFn) -> bool:
    # Hypothesis favours small integers: the common case is the small one.
    return draw(st.integers(0, 4)) < 4


@st.composite
def consents(
    draw: st.DrawFn,
    recipient: OrgRef,
    purpose: str,
    wanted: frozenset[str],
    guardian: bool = True,
) -> ConsentInForce:
    """Consents that often cover the request, so allows are common enough to compare."""
    if draw(st.booleans()):
        return ConsentInForce(
            owner_org=VSP.id,
            recipients=frozenset({recipient.id}),
            purposes=frozenset({purpose}),
            categories=wanted | draw(st.sampled_from([frozenset(), frozenset({WILDCARD})])),
            valid_from=NOW - timedelta(days=1),
            expires_at=NOW + timedelta(days=1),
        )
    recipients = {o.id for o in draw(st.frozensets(orgs, max_size=2))}
    if _often(draw):
        recipients.add(recipient.id)
    purposes = set(draw(_subset(PURPOSES)))
    if _often(draw):
        purposes.add(purpose)
    categories = set(draw(_subset(CATEGORIES, [WILDCARD])))
    categories |= draw(st.frozensets(st.sampled_from(sorted(wanted)))) if wanted else set()
    return ConsentInForce(
        owner_org=VSP.id if _often(draw) else ORGS[Sector.shelter].id,
        recipients=frozenset(recipients),
        purposes=frozenset(purposes),
        categories=frozenset(categories),
        valid_from=NOW - timedelta(days=1) if _often(draw) else draw(offsets),
        expires_at=NOW + timedelta(days=1) if _often(draw) else draw(offsets),
        fields=(
            None
            if _often(draw)
            else draw(st.frozensets(st.sampled_from(["a", "b", "c"]), max_size=2))
        ),
        revoked_at=None if _often(draw) else draw(offsets),
        given_by_minor=draw(st.integers(0, 3)) == 3,
        given_by_named_abuser=draw(st.integers(0, 9)) == 9,
        guardian=(
            draw(st.none() | consents(recipient, purpose, wanted, guardian=False))
            if guardian
            else None
        ),
    )


@st.composite
def flows(draw: st.DrawFn, sender: OrgRef, recipient: OrgRef) -> AgreementFlow:
    return AgreementFlow(
        from_sector=draw(st.sampled_from([sender.sector, sender.sector, Sector.shelter])),
        to_sector=draw(st.sampled_from([recipient.sector, recipient.sector, Sector.healthcare])),
        purposes=draw(_subset(PURPOSES)) | frozenset(draw(st.sampled_from([PURPOSES, []]))),
        categories=draw(_subset(CATEGORIES)) | frozenset(draw(st.sampled_from([CATEGORIES, []]))),
        effective_from=draw(offsets),
        effective_to=draw(st.none() | offsets),
    )


fields = st.lists(
    st.builds(
        FieldRef,
        name=st.sampled_from(["a", "b", "c", "d"]),
        category=st.sampled_from([*CATEGORIES, "Counseling_Notes"]),
    ),
    min_size=1,
    max_size=8,
)


def _open_flow(sender: OrgRef, recipient: OrgRef) -> AgreementFlow:
    return AgreementFlow(
        from_sector=sender.sector,
        to_sector=recipient.sector,
        purposes=frozenset(PURPOSES),
        categories=frozenset(CATEGORIES),
        effective_from=NOW - timedelta(days=1),
    )


@st.composite
def decision_requests(draw: st.DrawFn) -> DecisionRequest:
    sender = draw(st.sampled_from([VSP, VSP, ORGS[Sector.shelter]]))
    recipient = draw(orgs)
    purpose = draw(st.sampled_from([*PURPOSES, *PURPOSES, "Research"]))
    basis = draw(st.sampled_from([*BASES, *BASES, "Court_Order"]))
    actor_org = draw(st.sampled_from([sender.id, sender.id, recipient.id]))
    chosen = tuple(draw(fields))
    agreements = draw(st.lists(flows(sender, recipient), max_size=3))
    if draw(st.booleans()):
        agreements.append(_open_flow(sender, recipient))
    wanted = frozenset(f.category for f in chosen)
    return DecisionRequest(
        actor=Actor(org_id=actor_org, roles=frozenset(draw(st.sets(st.sampled_from(ROLES))))),
        sender=sender,
        recipient=recipient,
        subject_owner=VSP.id if _often(draw) else ORGS[Sector.shelter].id,
        purpose=purpose,
        legal_basis=basis,
        at=NOW,
        fields=chosen,
        consent=draw(st.none() | consents(recipient, purpose, wanted)),
        agreements=tuple(agreements),
        justification_given=draw(st.booleans()),
    )
