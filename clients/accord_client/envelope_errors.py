"""Exceptions raised when an envelope or a delivery cannot be sealed or opened.

One class per failure kind under one base, so a caller can catch `EnvelopeError`
and still log *which* check failed. Messages never contain field values,
ciphertexts or keys (DESIGN.md guarantee 7): they name JSON paths and rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Problem(NamedTuple):
    """One structural problem: where (a JSON path), a stable code, and the rule broken."""

    path: str
    code: str
    message: str


class EnvelopeError(Exception):
    """Base class: the envelope was not opened (or sealed) and no value is returned."""


class EnvelopeMalformedError(EnvelopeError):
    """Structure, types, limits, base64 or canonical form are wrong."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        summary = "; ".join(f"{p.path}: {p.message}" for p in self.problems[:5])
        more = f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"malformed envelope: {summary}{more}")


class UnsupportedVersionError(EnvelopeMalformedError):
    """A format version this library does not implement: never guess at its meaning."""


class WrongRecipientError(EnvelopeError):
    """Addressed to another organization or to a key id other than the one given."""


class SenderMismatchError(EnvelopeError):
    """The header's sender org or key id is not the one the caller looked up."""


class ContextMismatchError(EnvelopeError):
    """The signed context (subject, purpose, consent, request) is not the expected one."""


class SignatureInvalidError(EnvelopeError):
    """The sender's Ed25519 signature does not cover these header and field digests."""


class CommitmentMismatchError(EnvelopeError):
    """The unsealed data key is not the key the signed manifest committed to (E11)."""


class DecryptionFailedError(EnvelopeError):
    """A sealed key or a field ciphertext failed authentication."""


class InvalidKeyError(EnvelopeError, ValueError):
    """A key of the wrong length, a low-order X25519 point or an invalid Ed25519 point."""
