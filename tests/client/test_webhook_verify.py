"""accord_client.webhooks.verify_webhook against signatures made by independent code:
the `standardwebhooks` package for `v1` (HMAC-SHA256) and the `cryptography`
package's Ed25519 for `v1a`, written here from the specification's text, never with
the client's own signing code. Then every way a webhook must be refused, and the
replay guard."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta

import nacl.signing
import pytest
from accord_client.webhooks import (
    DEFAULT_TOLERANCE,
    REASONS,
    SeenWebhookIds,
    WebhookVerificationError,
    verify_webhook,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from service.crypto import FileSigner
from service.events import signing

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
MSG_ID = "7d0a6c1e-3f2b-4c55-9a1e-0b8f7c9d2e41"
BODY = b'{"id":"7d0a6c1e-3f2b-4c55-9a1e-0b8f7c9d2e41","type":"referral.accepted","seq":3}'


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


SECRET = new_secret()
PRIVATE = Ed25519PrivateKey.generate()


def whpk(private: Ed25519PrivateKey) -> str:
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "whpk_" + base64.b64encode(raw).decode()


PUBLIC = whpk(PRIVATE)


def v1(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    """`v1,<b64>` as the standardwebhooks package signs it."""
    return Webhook(secret).sign(msg_id=msg_id, timestamp=datetime.fromtimestamp(ts, UTC), data=body)


def v1a(private: Ed25519PrivateKey, msg_id: str, ts: int, body: bytes) -> str:
    """`v1a,<b64>`: Ed25519 over `{id}.{timestamp}.{body}`, per the specification."""
    content = f"{msg_id}.{ts}.".encode() + body
    return "v1a," + base64.b64encode(private.sign(content)).decode()


def hdrs(signature: str, *, msg_id: str = MSG_ID, ts: int | str = TS) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def refused(
    body: bytes,
    headers: dict[str, str],
    *,
    secret: str | None = None,
    public_key: str | None = None,
) -> str:
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(body, headers, secret=secret, public_key=public_key, now=NOW)
    assert caught.value.reason in REASONS
    return caught.value.reason


# --- accepted --------------------------------------------------------------------------


def test_a_v1_signature_made_by_standardwebhooks_verifies_with_the_secret() -> None:
    headers = hdrs(v1(SECRET, MSG_ID, TS, BODY))
    assert verify_webhook(BODY, headers, secret=SECRET, now=NOW) == MSG_ID


def test_a_v1a_signature_made_with_cryptography_verifies_with_the_public_key_alone() -> None:
    headers = hdrs(v1a(PRIVATE, MSG_ID, TS, BODY))
    assert verify_webhook(BODY, headers, public_key=PUBLIC, now=NOW) == MSG_ID


def test_headers_are_found_whatever_their_case() -> None:
    headers = {
        "Webhook-Id": MSG_ID,
        "WEBHOOK-TIMESTAMP": str(TS),
        "Webhook-Signature": v1(SECRET, MSG_ID, TS, BODY),
        "Content-Type": "application/json",
    }
    assert verify_webhook(BODY, headers, secret=SECRET, now=NOW) == MSG_ID


def test_any_signature_in_the_list_may_verify_as_during_a_secret_rotation() -> None:
    old, new = new_secret(), new_secret()
    both = " ".join(
        [v1(new, MSG_ID, TS, BODY), v1(old, MSG_ID, TS, BODY), v1a(PRIVATE, MSG_ID, TS, BODY)]
    )
    for secret in (old, new):
        assert verify_webhook(BODY, hdrs(both), secret=secret, now=NOW) == MSG_ID
    assert verify_webhook(BODY, hdrs(both), public_key=PUBLIC, now=NOW) == MSG_ID
    # Both keys given: one good signature of either scheme is enough.
    wrong_key = whpk(Ed25519PrivateKey.generate())
    assert verify_webhook(BODY, hdrs(both), secret=old, public_key=wrong_key, now=NOW) == MSG_ID


def test_unknown_versions_are_skipped_not_refused() -> None:
    signature = f"v2,AAAA v1b,{v1(SECRET, MSG_ID, TS, BODY)[3:]} {v1(SECRET, MSG_ID, TS, BODY)}"
    assert verify_webhook(BODY, hdrs(signature), secret=SECRET, now=NOW) == MSG_ID


@pytest.mark.parametrize("skew", [-DEFAULT_TOLERANCE, DEFAULT_TOLERANCE])
def test_a_timestamp_exactly_at_the_tolerance_is_accepted(skew: timedelta) -> None:
    ts = TS + int(skew.total_seconds())
    headers = hdrs(v1(SECRET, MSG_ID, ts, BODY), ts=ts)
    assert verify_webhook(BODY, headers, secret=SECRET, now=NOW) == MSG_ID


def test_what_the_service_signs_verifies_here_and_with_standardwebhooks() -> None:
    """Interop with the service's own signer (service/events/signing.py)."""
    raw, seed = os.urandom(32), os.urandom(32)
    signer = FileSigner(nacl.signing.SigningKey(seed))
    secret = signing.format_secret(raw)
    public_key = signing.format_public_key(signer.public_key)
    ts = _now_ts()  # standardwebhooks checks against the real clock
    headers = signing.headers(MSG_ID, ts, BODY, secrets=[raw], signer=signer)
    assert verify_webhook(BODY, headers, secret=secret) == MSG_ID
    assert verify_webhook(BODY, headers, public_key=public_key) == MSG_ID
    Webhook(secret).verify(BODY, headers, json_parse=False)  # raises if it disagrees


def _now_ts() -> int:
    return int(datetime.now(UTC).timestamp())


@given(body=st.binary(max_size=512), flip=st.integers(min_value=0))
def test_any_body_verifies_and_any_changed_byte_is_refused(body: bytes, flip: int) -> None:
    headers = hdrs(f"{v1(SECRET, MSG_ID, TS, body)} {v1a(PRIVATE, MSG_ID, TS, body)}")
    assert verify_webhook(body, headers, secret=SECRET, public_key=PUBLIC, now=NOW) == MSG_ID
    tampered = bytearray(body + b"}")
    tampered[flip % len(tampered)] ^= 0x01
    assert refused(bytes(tampered), headers, secret=SECRET) == "invalid_signature"
    assert refused(bytes(tampered), headers, public_key=PUBLIC) == "invalid_signature"


# --- refused -----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["v1", "v1a"])
def test_a_tampered_body_is_refused(scheme: str) -> None:
    tampered = BODY.replace(b"accepted", b"declined")
    if scheme == "v1":
        headers = hdrs(v1(SECRET, MSG_ID, TS, BODY))
        assert verify_webhook(BODY, headers, secret=SECRET, now=NOW)
        assert refused(tampered, headers, secret=SECRET) == "invalid_signature"
    else:
        headers = hdrs(v1a(PRIVATE, MSG_ID, TS, BODY))
        assert verify_webhook(BODY, headers, public_key=PUBLIC, now=NOW)
        assert refused(tampered, headers, public_key=PUBLIC) == "invalid_signature"


def test_a_changed_id_or_timestamp_is_refused() -> None:
    signature = f"{v1(SECRET, MSG_ID, TS, BODY)} {v1a(PRIVATE, MSG_ID, TS, BODY)}"
    other_id = hdrs(signature, msg_id=MSG_ID.replace("7d0a", "7d0b"))
    for keys in ({"secret": SECRET}, {"public_key": PUBLIC}):
        with pytest.raises(WebhookVerificationError, match="invalid_signature"):
            verify_webhook(BODY, other_id, now=NOW, **keys)
        with pytest.raises(WebhookVerificationError, match="invalid_signature"):
            verify_webhook(BODY, hdrs(signature, ts=TS + 1), now=NOW, **keys)


def test_a_wrong_secret_is_refused() -> None:
    headers = hdrs(v1(new_secret(), MSG_ID, TS, BODY))
    assert refused(BODY, headers, secret=SECRET) == "invalid_signature"


def test_a_wrong_public_key_is_refused() -> None:
    headers = hdrs(v1a(Ed25519PrivateKey.generate(), MSG_ID, TS, BODY))
    assert refused(BODY, headers, public_key=PUBLIC) == "invalid_signature"


def test_a_v1a_signature_labelled_v1_is_not_checked_as_hmac() -> None:
    ed = v1a(PRIVATE, MSG_ID, TS, BODY)
    assert refused(BODY, hdrs("v1," + ed[4:]), secret=SECRET) == "invalid_signature"
    mac = v1(SECRET, MSG_ID, TS, BODY)
    assert refused(BODY, hdrs("v1a," + mac[3:]), public_key=PUBLIC) == "invalid_signature"


@pytest.mark.parametrize(
    ("skew", "reason"),
    [
        (-DEFAULT_TOLERANCE - timedelta(seconds=1), "timestamp_too_old"),
        (-timedelta(days=3), "timestamp_too_old"),
        (DEFAULT_TOLERANCE + timedelta(seconds=1), "timestamp_too_new"),
        (timedelta(days=1), "timestamp_too_new"),
    ],
)
def test_stale_and_future_timestamps_are_refused_even_when_signed(
    skew: timedelta, reason: str
) -> None:
    ts = TS + int(skew.total_seconds())
    headers = hdrs(f"{v1(SECRET, MSG_ID, ts, BODY)} {v1a(PRIVATE, MSG_ID, ts, BODY)}", ts=ts)
    assert refused(BODY, headers, secret=SECRET, public_key=PUBLIC) == reason


def test_the_tolerance_is_the_callers_to_choose() -> None:
    ts = TS - 60
    headers = hdrs(v1(SECRET, MSG_ID, ts, BODY), ts=ts)
    with pytest.raises(WebhookVerificationError, match="timestamp_too_old"):
        verify_webhook(BODY, headers, secret=SECRET, now=NOW, tolerance=timedelta(seconds=30))
    assert verify_webhook(BODY, headers, secret=SECRET, now=NOW, tolerance=timedelta(minutes=2))


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_or_empty_header_is_refused(missing: str) -> None:
    headers = hdrs(v1(SECRET, MSG_ID, TS, BODY))
    del headers[missing]
    assert refused(BODY, headers, secret=SECRET) == "missing_header"
    assert refused(BODY, headers | {missing: ""}, secret=SECRET) == "missing_header"


@pytest.mark.parametrize(
    "timestamp",
    [
        "abc",
        f"{TS}.0",
        f"{TS}.5",
        f"+{TS}",
        f"-{TS}",
        f" {TS}",
        f"{TS} ",
        f"0{TS}",
        f"{TS:_}",
        "١٧٧٢٣٦٦٤٠٠",  # Arabic-Indic digits, which int() accepts
        "1e9",
        "9" * 40,
    ],
)
def test_a_timestamp_that_is_not_canonical_integer_seconds_is_refused(timestamp: str) -> None:
    headers = hdrs(v1(SECRET, MSG_ID, TS, BODY), ts=timestamp)
    assert refused(BODY, headers, secret=SECRET) == "invalid_timestamp"


@pytest.mark.parametrize("signature", ["v2,AAAA", "v0,AAAA v2,AAAA", "V1,AAAA", "v1aa,AAAA", "x"])
def test_a_list_of_only_unknown_versions_is_refused(signature: str) -> None:
    assert refused(BODY, hdrs(signature), secret=SECRET, public_key=PUBLIC) == (
        "no_supported_signature"
    )


def test_a_scheme_without_its_key_counts_as_unknown() -> None:
    only_v1 = hdrs(v1(SECRET, MSG_ID, TS, BODY))
    assert refused(BODY, only_v1, public_key=PUBLIC) == "no_supported_signature"
    only_v1a = hdrs(v1a(PRIVATE, MSG_ID, TS, BODY))
    assert refused(BODY, only_v1a, secret=SECRET) == "no_supported_signature"


@pytest.mark.parametrize("value", ["", "not base64!", "AAAA", "QUJDRA==", "QUJDRB=="])
def test_a_known_version_with_a_bad_value_does_not_verify(value: str) -> None:
    assert refused(BODY, hdrs(f"v1,{value}"), secret=SECRET) == "invalid_signature"
    assert refused(BODY, hdrs(f"v1a,{value}"), public_key=PUBLIC) == "invalid_signature"


def test_a_header_repeated_with_another_value_is_refused() -> None:
    headers = hdrs(v1(SECRET, MSG_ID, TS, BODY)) | {"Webhook-Id": "another-id"}
    assert refused(BODY, headers, secret=SECRET) == "invalid_header"


def test_an_id_with_whitespace_or_an_endless_list_is_refused() -> None:
    assert refused(BODY, hdrs(v1(SECRET, "a b", TS, BODY), msg_id="a b"), secret=SECRET) == (
        "invalid_header"
    )
    endless = " ".join(["v2,AAAA"] * 40 + [v1(SECRET, MSG_ID, TS, BODY)])
    assert refused(BODY, hdrs(endless), secret=SECRET) == "invalid_header"


def test_messages_name_the_reason_never_the_body_or_the_keys() -> None:
    headers = hdrs(v1(new_secret(), MSG_ID, TS, BODY))
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(BODY, headers, secret=SECRET, now=NOW)
    text = f"{caught.value} {caught.value!r}"
    assert "invalid_signature" in text
    for secret_thing in (SECRET, SECRET[6:], headers["webhook-signature"], "referral.accepted"):
        assert secret_thing not in text


@pytest.mark.parametrize(
    "keys",
    [
        {},
        {"secret": "c2VjcmV0"},  # no whsec_ prefix
        {"secret": "whsec_not base64"},
        {"secret": "whsec_"},
        {"public_key": "whsec_" + PUBLIC[5:]},
        {"public_key": "whpk_" + base64.b64encode(b"short").decode()},
    ],
)
def test_missing_or_malformed_keys_are_a_setup_error(keys: dict[str, str]) -> None:
    headers = hdrs(v1(SECRET, MSG_ID, TS, BODY))
    with pytest.raises(ValueError, match=r"webhook|secret|key"):
        verify_webhook(BODY, headers, now=NOW, **keys)  # type: ignore[arg-type]


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_webhook(
            BODY,
            hdrs(v1(SECRET, MSG_ID, TS, BODY)),
            secret=SECRET,
            now=NOW.replace(tzinfo=None),
        )


def test_without_now_the_current_time_is_used() -> None:
    ts = _now_ts()
    assert verify_webhook(BODY, hdrs(v1(SECRET, MSG_ID, ts, BODY), ts=ts), secret=SECRET)
    old = ts - 3600
    with pytest.raises(WebhookVerificationError, match="timestamp_too_old"):
        verify_webhook(BODY, hdrs(v1(SECRET, MSG_ID, old, BODY), ts=old), secret=SECRET)


# --- the replay guard --------------------------------------------------------------------


def test_a_repeated_id_is_refused_and_another_is_not() -> None:
    seen = SeenWebhookIds()
    seen.check("a", now=NOW)
    with pytest.raises(WebhookVerificationError) as caught:
        seen.check("a", now=NOW + timedelta(seconds=1))
    assert caught.value.reason == "replayed"
    seen.check("b", now=NOW + timedelta(seconds=1))
    assert len(seen) == 2


def test_an_id_is_remembered_for_twice_the_tolerance() -> None:
    seen = SeenWebhookIds(tolerance=timedelta(minutes=5))
    seen.check("a", now=NOW)
    with pytest.raises(WebhookVerificationError, match="replayed"):
        seen.check("a", now=NOW + timedelta(minutes=10) - timedelta(seconds=1))
    seen.check("a", now=NOW + timedelta(minutes=10))  # forgotten: the timestamp check is
    assert len(seen) == 1  # the earlier entries expired and were dropped


def test_a_full_guard_refuses_new_ids_rather_than_forgetting_live_ones() -> None:
    seen = SeenWebhookIds(tolerance=timedelta(minutes=1), max_ids=2)
    seen.check("a", now=NOW)
    seen.check("b", now=NOW)
    with pytest.raises(WebhookVerificationError) as caught:
        seen.check("c", now=NOW)
    assert caught.value.reason == "replay_guard_full"
    with pytest.raises(WebhookVerificationError, match="replayed"):
        seen.check("a", now=NOW)  # still remembered
    seen.check("c", now=NOW + timedelta(minutes=2))  # room again once a and b expired


def test_a_forgotten_id_gets_in_again() -> None:
    seen = SeenWebhookIds()
    seen.check("a", now=NOW)
    seen.forget("a")
    seen.forget("never-seen")  # no error
    seen.check("a", now=NOW)
    with pytest.raises(WebhookVerificationError, match="replayed"):
        seen.check("a", now=NOW)


def test_the_guard_refuses_bad_settings_and_naive_times() -> None:
    with pytest.raises(ValueError, match="max_ids"):
        SeenWebhookIds(max_ids=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        SeenWebhookIds().check("a", now=NOW.replace(tzinfo=None))


@given(
    first=st.integers(min_value=-300, max_value=300),
    later=st.integers(min_value=0, max_value=3 * 86400),
)
def test_a_captured_webhook_is_never_accepted_twice(first: int, later: int) -> None:
    """Received first `first` seconds after its timestamp, replayed `later` seconds
    after that: refused by the guard inside the window, by the timestamp after it."""
    seen = SeenWebhookIds()
    headers = hdrs(v1(SECRET, MSG_ID, TS, BODY))
    arrival = NOW + timedelta(seconds=first)
    seen.check(verify_webhook(BODY, headers, secret=SECRET, now=arrival), now=arrival)
    replay = arrival + timedelta(seconds=later)
    with pytest.raises(WebhookVerificationError) as caught:
        seen.check(verify_webhook(BODY, headers, secret=SECRET, now=replay), now=replay)
    assert caught.value.reason in {"replayed", "timestamp_too_old"}
