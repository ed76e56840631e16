"""Build Cedar's JSON for the engine: the base entities (once per policy set), the
agreements entity (once per distinct set of flows in effect), and the small
per-decision delta (the Release, two organizations, the consent).

Measured (DESIGN.md section 9): every context key costs per request, entity
attributes cost once per decision, and records in sets are dear. So the context
holds only the field name, and everything shared by a batch is an attribute of
the one `Release` principal.
"""

from __future__ import annotations

import json
from typing import Any, Final

from service.policy.inputs import ConsentInForce, DecisionRequest, FlowTuple, to_micros
from service.policy.taxonomy import Taxonomy

RELEASE_UID: Final = {"type": "Release", "id": "release"}
AGREEMENTS_UID: Final = {"type": "Agreements", "id": "shared"}
ACTION_UID: Final = {"type": "Action", "id": "release"}


def category_uid(name: str) -> dict[str, str]:
    return {"type": "Category", "id": name}


def base_entities_json(taxonomy: Taxonomy) -> str:
    return json.dumps(
        [
            {
                "uid": category_uid(info.name),
                "attrs": {
                    "name": info.name,
                    "tier": info.tier,
                    "explicit": info.explicit,
                    "privileged": info.privileged,
                    "redisclosure_notice": info.redisclosure_notice,
                },
                "parents": [],
            }
            for info in taxonomy.categories.values()
        ]
    )


def agreements_json(flows: frozenset[FlowTuple]) -> str:
    ordered = sorted(flows, key=lambda f: (f.from_sector, f.to_sector, f.purpose, f.category))
    return json.dumps(
        [
            {
                "uid": AGREEMENTS_UID,
                "attrs": {
                    "flows": [
                        {
                            "from_sector": f.from_sector,
                            "to_sector": f.to_sector,
                            "purpose": f.purpose,
                            "category": f.category,
                        }
                        for f in ordered
                    ]
                },
                "parents": [],
            }
        ]
    )


def _consent_entity(
    uid: dict[str, str], consent: ConsentInForce, guardian_uid: dict[str, str] | None
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "owner": str(consent.owner_org),
        "recipients": sorted(str(r) for r in consent.recipients),
        "purposes": sorted(consent.purposes),
        "categories": sorted(consent.categories),
        "fields_restricted": consent.fields is not None,
        "fields": sorted(consent.fields or ()),
        "valid_from": to_micros(consent.valid_from),
        "expires_at": to_micros(consent.expires_at),
        "given_by_minor": consent.given_by_minor,
        "given_by_named_abuser": consent.given_by_named_abuser,
    }
    if consent.revoked_at is not None:
        attrs["revoked_at"] = to_micros(consent.revoked_at)
    if guardian_uid is not None:
        attrs["guardian"] = {"__entity": guardian_uid}
    return {"uid": uid, "attrs": attrs, "parents": []}


def delta_json(request: DecisionRequest) -> str:
    """The per-decision entities. Only metadata: ids, sectors, names, times.

    Organizations are UUID strings, not entities: an entity reference costs
    several times a string to parse, and the policies only compare them."""
    release: dict[str, Any] = {
        "recipient": str(request.recipient.id),
        "recipient_sector": str(request.recipient.sector),
        "sender": str(request.sender.id),
        "sender_sector": str(request.sender.sector),
        "subject_owner": str(request.subject_owner),
        "actor_org": str(request.actor.org_id),
        "actor_roles": sorted(request.actor.roles),
        "purpose": request.purpose,
        "basis": request.legal_basis,
        "justified": request.justification_given,
        "now": to_micros(request.at),
        "agreements": {"__entity": AGREEMENTS_UID},
    }
    entities: list[dict[str, Any]] = [{"uid": RELEASE_UID, "attrs": release, "parents": []}]
    consent = request.consent
    if consent is not None:
        consent_uid = {"type": "Consent", "id": "consent"}
        guardian_uid = None
        if consent.guardian is not None:
            guardian_uid = {"type": "Consent", "id": "guardian"}
            # The guardian's own consent stands alone: a guardian of a guardian is not a thing.
            entities.append(_consent_entity(guardian_uid, consent.guardian, None))
        entities.append(_consent_entity(consent_uid, consent, guardian_uid))
        release["consent"] = {"__entity": consent_uid}
    return json.dumps(entities)


def authorization_request(category: str, field_name: str) -> dict[str, Any]:
    # The context is passed as JSON text: cedarpy then neither copies the request
    # nor re-encodes it, and every context key costs per request.
    return {
        "principal": RELEASE_UID,
        "action": ACTION_UID,
        "resource": category_uid(category),
        "context": json.dumps({"field": field_name}),
    }
