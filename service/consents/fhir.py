"""A consent grant as an HL7 FHIR R4 `Consent` resource (scope privacy, a permit
provision with its period, the recipients as actors, purposes and classes).

Identifiers use Accord URNs (`urn:accord:...`); the subject is referenced only by
its random id, never by anything identifying.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from service.consents.service import ConsentState

SUBJECT_SYSTEM = "urn:accord:subject"
ORG_SYSTEM = "urn:accord:organization"
PURPOSE_SYSTEM = "urn:accord:purpose"
CATEGORY_SYSTEM = "urn:accord:category"


def _ref(system: str, value: str) -> dict[str, Any]:
    return {"identifier": {"system": system, "value": value}}


def _instant(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def to_fhir(state: ConsentState, *, at: datetime) -> dict[str, Any]:
    v = state.version
    status = "active" if state.live(at) else "inactive"
    if state.revocation is not None:
        status = "inactive"
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": str(v.id),
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": _ref(SUBJECT_SYSTEM, str(v.subject_id)),
        "dateTime": _instant(v.recorded_at),
        "organization": [_ref(ORG_SYSTEM, str(v.owner_org_id))],
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": {
            "type": "permit",
            "period": {"start": _instant(v.valid_from), "end": _instant(v.expires_at)},
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    "reference": _ref(ORG_SYSTEM, recipient),
                }
                for recipient in v.recipients
            ],
            "purpose": [{"system": PURPOSE_SYSTEM, "code": p} for p in v.purposes],
            "class": [{"system": CATEGORY_SYSTEM, "code": c} for c in v.categories],
        },
    }
    if v.evidence_sha256 is not None:
        digest = base64.b64encode(bytes.fromhex(v.evidence_sha256)).decode("ascii")
        resource["sourceAttachment"] = {"hash": digest, "title": "signed consent form"}
    return resource
