"""The exception raised when a webhook is not accepted (accord_client.webhooks).

One class with a stable reason code, so a receiver can answer and log *which*
check failed. Messages never contain the body, a signature or a key: only the
reason, and for a header, its name.
"""

from __future__ import annotations

from typing import Final, Literal

Reason = Literal[
    "missing_header",  # webhook-id, webhook-timestamp or webhook-signature absent
    "invalid_header",  # a header repeated with two values, or a webhook-id out of bounds
    "invalid_timestamp",  # webhook-timestamp is not an integer number of Unix seconds
    "timestamp_too_old",  # older than the tolerance: possibly a replay
    "timestamp_too_new",  # further in the future than the tolerance
    "no_supported_signature",  # no signature of a scheme the given keys can check
    "invalid_signature",  # signatures of a known scheme, none of which verifies
    "replayed",  # this webhook-id was already accepted within the replay window
    "replay_guard_full",  # the replay guard is at its bound: refused, never forgotten early
]

REASONS: Final[tuple[Reason, ...]] = (
    "missing_header",
    "invalid_header",
    "invalid_timestamp",
    "timestamp_too_old",
    "timestamp_too_new",
    "no_supported_signature",
    "invalid_signature",
    "replayed",
    "replay_guard_full",
)


class WebhookVerificationError(Exception):
    """The webhook was not verified (or is a replay): do not act on its body.

    `reason` is one of `REASONS`. Two of them call for a particular answer: for
    `replayed`, a 2xx without acting again (the service's own retry after a lost
    answer carries the same webhook-id); for `replay_guard_full`, a 503, so that the
    service, which delivers at least once, tries again later.
    """

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason: Reason = reason
        super().__init__(f"webhook not verified: {reason}" + (f" ({detail})" if detail else ""))

    def __repr__(self) -> str:
        return f"WebhookVerificationError(reason={self.reason!r})"
