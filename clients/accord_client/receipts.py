"""Offline verification of the service's signed consent receipts."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from accord_client.crypto import verify_ed25519
from accord_client.envelope_format import canonical_json

RECEIPT_LABEL = b"accord/consent-receipt/v1"


class ReceiptError(ValueError):
    """The receipt is malformed or its signature does not verify."""


def receipt_message(receipt: Mapping[str, Any]) -> bytes:
    return RECEIPT_LABEL + b"\n" + canonical_json(dict(receipt))


def verify_receipt(document: Mapping[str, Any], *, public_key: bytes) -> Mapping[str, Any]:
    """Verify a signed receipt against the service's published receipt key (never the
    key embedded in the document) and return the receipt."""
    receipt = document.get("receipt")
    signature = document.get("signature")
    if not isinstance(receipt, Mapping) or not isinstance(signature, Mapping):
        raise ReceiptError("a signed receipt has 'receipt' and 'signature'")
    if signature.get("alg") != "Ed25519" or signature.get("label") != RECEIPT_LABEL.decode():
        raise ReceiptError("unsupported signature algorithm or label")
    try:
        value = base64.b64decode(str(signature.get("value")), validate=True)
    except binascii.Error as exc:
        raise ReceiptError("signature is not base64") from exc
    if not verify_ed25519(public_key, receipt_message(receipt), value):
        raise ReceiptError("the receipt signature does not verify")
    return receipt
