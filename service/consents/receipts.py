"""Signed consent receipts, after the Kantara Initiative Consent Receipt
Specification (v1.1): what was agreed, with whom, for what, until when, signed by
the service's receipt key (one key per purpose: never the checkpoint key).

The signature is Ed25519 over `accord/consent-receipt/v1 || 0x0A || JCS(receipt)`;
the label keeps a receipt signature from ever verifying as a checkpoint or an
envelope signature (SECURITY-TESTS E17). `accord_client.receipts` verifies it offline.
"""

from __future__ import annotations

import base64
from typing import Any

from accord_client.receipts import RECEIPT_LABEL, receipt_message

from service.consents.service import ConsentState
from service.crypto import Signer, key_id_for
from service.organizations.models import Organization


def build_receipt(
    state: ConsentState, *, owner: Organization, policy_version: str
) -> dict[str, Any]:
    v = state.version
    return {
        "version": "KI-CR-v1.1.0",
        "jurisdiction": owner.jurisdiction,
        "consentTimestamp": int(v.recorded_at.timestamp()),
        "collectionMethod": v.method,
        "consentReceiptID": str(v.id),
        "language": v.language,
        "piiPrincipalId": str(v.subject_id),
        "piiControllers": [{"piiController": owner.name, "orgId": str(owner.id)}],
        "services": [
            {
                "service": purpose,
                "purposes": [
                    {
                        "purpose": purpose,
                        "consentType": "EXPLICIT",
                        "piiCategory": sorted(v.categories),
                        "primaryPurpose": True,
                        "termination": v.expires_at.isoformat(),
                        "thirdPartyDisclosure": True,
                        "thirdPartyName": sorted(v.recipients),
                    }
                ],
            }
            for purpose in sorted(v.purposes)
        ],
        "sensitive": True,
        "spiCat": sorted(v.categories),
        "accord": {
            "grant_id": str(v.grant_id),
            "grant_version": v.version,
            "valid_from": v.valid_from.isoformat(),
            "expires_at": v.expires_at.isoformat(),
            "fields": sorted(v.fields) if v.fields is not None else None,
            "given_by": v.given_by,
            "revoked_at": state.revocation.revoked_at.isoformat() if state.revocation else None,
            "policy_set_version": policy_version,
        },
    }


def sign_receipt(receipt: dict[str, Any], signer: Signer) -> dict[str, Any]:
    signature = signer.sign(receipt_message(receipt))
    return {
        "receipt": receipt,
        "signature": {
            "alg": "Ed25519",
            "label": RECEIPT_LABEL.decode("ascii"),
            "key_id": key_id_for(signer.public_key),
            "public_key": base64.b64encode(signer.public_key).decode("ascii"),
            "value": base64.b64encode(signature).decode("ascii"),
        },
    }
