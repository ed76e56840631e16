"""A consent grant as an HL7 FHIR R4 `Consent` resource (scope privacy, a permit
provision with its period, the recipients as actors, purposes and classes).

Never broader than the grant: a grant limited to some fields carries them as
`modifierExtension`s on the provision, so an importer that does not understand the
limit must refuse the resource instead of reading a permit on whole categories.
The SHA-256 of the signed form goes in an extension of `sourceAttachment`
(`Attachment.hash` is SHA-1 in R4, and Accord never holds the form to compute one).
A grant that has ended is `inactive`, with an extension saying how and when.

Identifiers use Accord URNs (`urn:accord:...`); the subject is referenced only by
its random id, never by anything identifying. The mapping and the extension URLs
are documented in docs/consent.md.
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
FIELD_SYSTEM = "urn:accord:field"

# On Consent.provision, one per field (a modifier: it narrows the permit).
FIELD_LIMIT_URL = "urn:accord:fhir:extension:field-limit"
# On Consent.sourceAttachment: the SHA-256 of the signed form, base64.
FORM_SHA256_URL = "urn:accord:fhir:extension:signed-form-sha256"
# On Consent: how the grant ended (`reason`: withdrawn | expired | superseded) and when.
ENDED_URL = "urn:accord:fhir:extension:ended"


def _ref(system: str, value: str) -> dict[str, Any]:
    return {"identifier": {"system": system, "value": value}}


def _instant(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _ending(state: ConsentState, at: datetime) -> tuple[str, datetime | None] | None:
    """How the grant ended by `at`, the earliest ending first; None while it has not."""
    v = state.version
    endings: list[tuple[datetime, str]] = []
    if state.revocation is not None and state.revocation.revoked_at <= at:
        endings.append((state.revocation.revoked_at, "withdrawn"))
    if v.expires_at <= at:
        endings.append((v.expires_at, "expired"))
    if endings:
        moment, reason = min(endings)
        return reason, moment
    if not state.latest:
        return "superseded", None
    return None


def _status(state: ConsentState, at: datetime, ended: bool) -> str:
    """R4 Consent.status: `active` while live, `proposed` before its validity starts,
    `inactive` once ended (or given by a person barred as the giver)."""
    if state.live(at):
        return "active"
    if not ended and not state.giver_barred and at < state.version.valid_from:
        return "proposed"
    return "inactive"


def _ended_extension(reason: str, moment: datetime | None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"url": "reason", "valueCode": reason}]
    if moment is not None:
        parts.append({"url": "at", "valueDateTime": _instant(moment)})
    return {"url": ENDED_URL, "extension": parts}


def _provision(state: ConsentState) -> dict[str, Any]:
    v = state.version
    provision: dict[str, Any] = {
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
    }
    if v.fields is not None:
        provision["modifierExtension"] = [
            {"url": FIELD_LIMIT_URL, "valueCoding": {"system": FIELD_SYSTEM, "code": f}}
            for f in v.fields
        ]
    return provision


def to_fhir(state: ConsentState, *, at: datetime) -> dict[str, Any]:
    v = state.version
    ending = _ending(state, at)
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": str(v.id),
        "status": _status(state, at, ending is not None),
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
        "provision": _provision(state),
    }
    if ending is not None:
        resource["extension"] = [_ended_extension(*ending)]
    if v.evidence_sha256 is not None:
        digest = base64.b64encode(bytes.fromhex(v.evidence_sha256)).decode("ascii")
        resource["sourceAttachment"] = {
            "extension": [{"url": FORM_SHA256_URL, "valueBase64Binary": digest}],
            "title": "signed consent form",
        }
    return resource
