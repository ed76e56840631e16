"""Verify a webhook from an Accord service, and reject replays (docs: clients/README.md).

The service signs per the Standard Webhooks specification: headers `webhook-id`,
`webhook-timestamp` (integer Unix seconds) and `webhook-signature`, a
space-separated list of `version,base64(signature)` over the signed content
`{webhook-id}.{webhook-timestamp}.{body}`:

- `v1`: HMAC-SHA256 with the endpoint's secret (`whsec_` + base64), shown once when
  the endpoint is created or its secret rotated. During a rotation both secrets sign.
- `v1a`: Ed25519 with the service's own webhook key (`whpk_` + base64), published at
  GET /v1/webhooks/signing-key: a receiver can verify with no shared secret at all.

Trust decisions:
- A webhook is accepted if ANY listed signature of a scheme we hold a key for
  verifies (a rotation lists several); signatures of unknown versions are skipped,
  never guessed at, and a list with nothing we can check is refused.
- The timestamp must be within `tolerance` of now in both directions, so a captured
  webhook can be replayed only inside that window; `SeenWebhookIds` closes the window
  by remembering the ids it has accepted.
- The timestamp must be spelled canonically (ASCII digits, no sign, no leading
  zero) and the id be visible ASCII: the signed content is built from the headers
  exactly as received, so one spelling, one meaning.
- HMACs are compared in constant time; Ed25519 is verified strictly (crypto.py).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from accord_client.crypto import ED25519_PUBLIC_KEY_BYTES, verify_ed25519
from accord_client.envelope_format import b64decode_strict
from accord_client.webhook_errors import REASONS, Reason, WebhookVerificationError

__all__ = [
    "DEFAULT_TOLERANCE",
    "REASONS",
    "Reason",
    "SeenWebhookIds",
    "WebhookVerificationError",
    "verify_webhook",
]

DEFAULT_TOLERANCE: Final = timedelta(minutes=5)
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix, not a secret
PUBLIC_KEY_PREFIX: Final = "whpk_"
HEADER_ID: Final = "webhook-id"
HEADER_TIMESTAMP: Final = "webhook-timestamp"
HEADER_SIGNATURE: Final = "webhook-signature"
_HEADERS: Final = (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)

# Unix seconds, canonical: no sign, no leading zero, no whitespace, ASCII digits only
# (Python's int() would also take "+1", " 1", "1_0" and non-ASCII digits).
_TIMESTAMP: Final = re.compile(r"0|[1-9][0-9]{0,11}")
# The id is part of the signed content: visible ASCII, bounded.
_ID: Final = re.compile(r"[!-~]{1,256}")
# An Ed25519 check costs tens of microseconds: a header cannot make us do thousands.
_MAX_SIGNATURES: Final = 32


def _fail(reason: Reason, detail: str = "") -> WebhookVerificationError:
    return WebhookVerificationError(reason, detail)


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def _decode_key(value: str, prefix: str, what: str) -> bytes:
    if not value.startswith(prefix):
        raise ValueError(f"a webhook {what} starts with {prefix!r}")
    try:
        raw = b64decode_strict(value[len(prefix) :])
    except ValueError:
        raise ValueError(f"the webhook {what} is not {prefix}<base64>") from None
    if not raw:
        raise ValueError(f"the webhook {what} is empty")
    return raw


def _signed_headers(headers: Mapping[str, str]) -> tuple[str, str, str]:
    """The three headers, looked up case-insensitively; one header given twice with
    two values is refused rather than one of them chosen."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key not in _HEADERS:
            continue
        if key in found and found[key] != value:
            raise _fail("invalid_header", f"{key} given twice")
        found[key] = value
    for key in _HEADERS:
        if not found.get(key):
            raise _fail("missing_header", key)
    return found[HEADER_ID], found[HEADER_TIMESTAMP], found[HEADER_SIGNATURE]


def _check_time(raw: str, now: datetime, tolerance: timedelta) -> None:
    if not _TIMESTAMP.fullmatch(raw):
        raise _fail("invalid_timestamp")
    age = now.timestamp() - int(raw)
    if age > tolerance.total_seconds():
        raise _fail("timestamp_too_old")
    if -age > tolerance.total_seconds():
        raise _fail("timestamp_too_new")


def _b64(value: str) -> bytes | None:
    try:
        return b64decode_strict(value)
    except ValueError:
        return None


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    *,
    secret: str | None = None,
    public_key: str | None = None,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    now: datetime | None = None,
) -> str:
    """Verify one webhook as received (`body`: the raw bytes, before any JSON parsing)
    and return its `webhook-id`; raise `WebhookVerificationError` otherwise.

    Give the endpoint's `secret` (`whsec_...`, checks `v1`), the service's
    `public_key` (`whpk_...` from GET /v1/webhooks/signing-key, checks `v1a`), or
    both. A `ValueError` means the keys themselves are malformed (a setup error).
    """
    if secret is None and public_key is None:
        raise ValueError("give the endpoint's secret, the service's public key, or both")
    if tolerance < timedelta(0):
        raise ValueError("tolerance must not be negative")
    mac_key = _decode_key(secret, SECRET_PREFIX, "secret") if secret is not None else None
    ed_key = None
    if public_key is not None:
        ed_key = _decode_key(public_key, PUBLIC_KEY_PREFIX, "public key")
        if len(ed_key) != ED25519_PUBLIC_KEY_BYTES:
            raise ValueError("the webhook public key is not an Ed25519 key")
    webhook_id, timestamp, signatures = _signed_headers(headers)
    if not _ID.fullmatch(webhook_id):
        raise _fail("invalid_header", HEADER_ID)
    _check_time(timestamp, _aware(now), tolerance)

    content = f"{webhook_id}.{timestamp}.".encode() + body
    listed = signatures.split()
    if len(listed) > _MAX_SIGNATURES:
        raise _fail("invalid_header", f"more than {_MAX_SIGNATURES} signatures")
    expected_mac = None
    if mac_key is not None:
        expected_mac = hmac.new(mac_key, content, hashlib.sha256).digest()
    checkable = False
    for item in listed:
        version, _, encoded = item.partition(",")
        if version == "v1" and expected_mac is not None:
            checkable = True
            given = _b64(encoded)
            if given is not None and hmac.compare_digest(expected_mac, given):
                return webhook_id
        elif version == "v1a" and ed_key is not None:
            checkable = True
            given = _b64(encoded)
            if given is not None and verify_ed25519(ed_key, content, given):
                return webhook_id
    raise _fail("invalid_signature" if checkable else "no_supported_signature")


class SeenWebhookIds:
    """A bounded, in-memory replay guard: `check(webhook_id)` after `verify_webhook`
    refuses an id it accepted within the replay window.

    A webhook stamped t verifies until t + tolerance, and was first accepted no
    earlier than t - tolerance: so an id is remembered for twice the tolerance from
    its first acceptance, which covers every moment a replay of it could verify.
    When `max_ids` unexpired ids are held, new ones are refused (`replay_guard_full`)
    rather than old ones forgotten early, which would reopen their window; the
    service delivers at least once, so a refused webhook comes again.

    This guards against replays, it is not a durable record: to act once per event
    across restarts, keep the ids (or the events' `seq`) you have processed. If
    acting on a webhook fails, `forget` its id so that the service's retry gets in.
    Thread-safe; give `now` (timezone-aware) to drive it from your own clock.
    """

    def __init__(self, *, tolerance: timedelta = DEFAULT_TOLERANCE, max_ids: int = 100_000) -> None:
        if max_ids < 1:
            raise ValueError("max_ids must be at least 1")
        if tolerance < timedelta(0):
            raise ValueError("tolerance must not be negative")
        self._keep = 2 * tolerance
        self._max = max_ids
        self._until: dict[str, datetime] = {}  # insertion order: oldest first
        self._lock = threading.Lock()

    def check(self, webhook_id: str, *, now: datetime | None = None) -> None:
        """Remember `webhook_id`, or raise `WebhookVerificationError` (`replayed`,
        `replay_guard_full`) if it was seen within the window or there is no room."""
        at = _aware(now)
        with self._lock:
            self._expire(at)
            until = self._until.get(webhook_id)
            if until is not None and until > at:
                raise _fail("replayed")
            if len(self._until) >= self._max:
                raise _fail("replay_guard_full")
            self._until.pop(webhook_id, None)  # re-added at the end: the order stays by age
            self._until[webhook_id] = at + self._keep

    def forget(self, webhook_id: str) -> None:
        """Let this id through again: call it when acting on the webhook failed, so
        the service's retry (the same id) is processed instead of taken for a replay."""
        with self._lock:
            self._until.pop(webhook_id, None)

    def _expire(self, at: datetime) -> None:
        # Oldest first, stopping at the first live id: amortized O(1) per check. An id
        # kept longer because the clock went back is only refused for longer (safe).
        while self._until:
            oldest = next(iter(self._until))
            if self._until[oldest] > at:
                return
            del self._until[oldest]

    def __len__(self) -> int:
        with self._lock:
            return len(self._until)

    def __repr__(self) -> str:
        return f"SeenWebhookIds(held={len(self)}, max_ids={self._max})"
