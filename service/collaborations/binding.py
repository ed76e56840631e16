"""Which agreement version binds a pair of organizations (issue 24, docs/agreements.md).

The rule, per collaboration that both organizations belong to now: the version in
force between A and B is the HIGHEST version on which BOTH A and B hold a live
(not withdrawn) signature. Its flows, and only its flows, are the collaboration's
contribution to a decision between them; if there is no such version the
collaboration contributes nothing (fail closed). So a new version binds a pair
only once both have signed it, until then the last version both signed stays in
force for them, and one decision never mixes two versions of one collaboration.
Read afresh for every decision (or from the epoch-keyed cache, which every write
to signatures invalidates: migration 0210).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.collaborations.models import AgreementSignature, AgreementVersion, Membership
from service.policy.inputs import AgreementFlow


@dataclass(frozen=True, slots=True)
class PairAgreement:
    """One collaboration as it stands between two organizations."""

    collaboration_id: uuid.UUID
    latest_version: int
    in_force: AgreementVersion | None  # the last version both signed
    # (version, org) signatures missing for the latest version to bind the pair.
    missing: tuple[tuple[int, uuid.UUID], ...]


async def pair_agreements(
    session: AsyncSession, org_a: uuid.UUID, org_b: uuid.UUID
) -> list[PairAgreement]:
    """Every collaboration both organizations belong to now, with the version in
    force between them (two statements, whatever the number of collaborations)."""
    member_a = select(Membership.collaboration_id).where(
        Membership.org_id == org_a, Membership.removed_at.is_(None)
    )
    member_b = select(Membership.collaboration_id).where(
        Membership.org_id == org_b, Membership.removed_at.is_(None)
    )
    versions = (
        await session.scalars(
            select(AgreementVersion)
            .where(
                AgreementVersion.collaboration_id.in_(member_a),
                AgreementVersion.collaboration_id.in_(member_b),
            )
            .order_by(AgreementVersion.collaboration_id, AgreementVersion.version.desc())
        )
    ).all()
    if not versions:
        return []
    signed = (
        await session.execute(
            select(AgreementSignature.agreement_version_id, AgreementSignature.org_id).where(
                AgreementSignature.collaboration_id.in_({v.collaboration_id for v in versions}),
                AgreementSignature.org_id.in_([org_a, org_b]),
                AgreementSignature.withdrawn_at.is_(None),
            )
        )
    ).all()
    live = {(row.agreement_version_id, row.org_id) for row in signed}
    by_collab: dict[uuid.UUID, list[AgreementVersion]] = {}
    for version in versions:
        by_collab.setdefault(version.collaboration_id, []).append(version)
    out: list[PairAgreement] = []
    pair = sorted({org_a, org_b})
    for collab_id, newest_first in by_collab.items():
        in_force = next((v for v in newest_first if all((v.id, org) in live for org in pair)), None)
        latest = newest_first[0]
        missing = tuple((latest.version, org) for org in pair if (latest.id, org) not in live)
        out.append(PairAgreement(collab_id, latest.version, in_force, missing))
    return out


def flows_of(version: AgreementVersion) -> tuple[AgreementFlow, ...]:
    return tuple(
        AgreementFlow(
            from_sector=str(flow["from_sector"]),
            to_sector=str(flow["to_sector"]),
            purposes=frozenset(flow["purposes"]),
            categories=frozenset(flow["categories"]),
            effective_from=version.effective_from,
            effective_to=version.effective_to,
        )
        for flow in version.flows
    )


async def shared_agreement_flows(
    session: AsyncSession, org_a: uuid.UUID, org_b: uuid.UUID
) -> tuple[AgreementFlow, ...]:
    """The flows in force between two organizations: of each collaboration both
    belong to now, the flows of the last version both signed (module docstring).
    A removed member or a withdrawn signature loses them at once (DESIGN.md
    guarantee 2); the engine applies each flow's effective window itself."""
    flows: list[AgreementFlow] = []
    for agreement in await pair_agreements(session, org_a, org_b):
        if agreement.in_force is not None:
            flows.extend(flows_of(agreement.in_force))
    return tuple(flows)
