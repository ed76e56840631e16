"""Accord client library: survivor data is encrypted and decrypted only here.

The envelope API (docs/envelope.md) and the webhook verifier
(`accord_client.webhooks`) are re-exported here; the HTTP clients are in
`accord_client.api` with their types in `.api_models`; the audit verifier,
checkpoints, receipts and key files live in their own modules
(`accord_client.audit_verify`, `.checkpoint`, `.receipts`, `.keys`).
"""

from accord_client.envelope import (
    OpenedEnvelope,
    PlainField,
    open_delivery,
    open_envelope,
    seal_envelope,
)
from accord_client.envelope_errors import (
    CommitmentMismatchError,
    ContextMismatchError,
    DecryptionFailedError,
    EnvelopeError,
    EnvelopeMalformedError,
    InvalidKeyError,
    Problem,
    SenderMismatchError,
    SignatureInvalidError,
    UnsupportedVersionError,
    WrongRecipientError,
)
from accord_client.webhooks import SeenWebhookIds, WebhookVerificationError, verify_webhook

__all__ = [
    "CommitmentMismatchError",
    "ContextMismatchError",
    "DecryptionFailedError",
    "EnvelopeError",
    "EnvelopeMalformedError",
    "InvalidKeyError",
    "OpenedEnvelope",
    "PlainField",
    "Problem",
    "SeenWebhookIds",
    "SenderMismatchError",
    "SignatureInvalidError",
    "UnsupportedVersionError",
    "WebhookVerificationError",
    "WrongRecipientError",
    "open_delivery",
    "open_envelope",
    "seal_envelope",
    "verify_webhook",
]
