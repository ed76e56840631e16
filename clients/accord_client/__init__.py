"""Accord client library: survivor data is encrypted and decrypted only here.

The envelope API (docs/envelope.md) is re-exported here; the audit verifier,
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
    "SenderMismatchError",
    "SignatureInvalidError",
    "UnsupportedVersionError",
    "WrongRecipientError",
    "open_delivery",
    "open_envelope",
    "seal_envelope",
]
