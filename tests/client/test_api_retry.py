"""Retries: only idempotent calls (GET, PUT, POSTs with an Idempotency-Key), on
connection errors, 429 and 503, with the same Idempotency-Key on every attempt;
and the sync and async twins expose the same methods."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from accord_client.api import AccordClient, AsyncAccordClient
from accord_client.api_models import (
    AccordAPIError,
    RateLimitedError,
    RetryPolicy,
    ServiceUnavailableError,
    backoff_seconds,
    retry_after_seconds,
)
from sqlalchemy import func, select

from service.subjects.models import Subject
from tests.client.conftest import BASE_URL, NO_WAIT, async_client
from tests.support.world import World

SUBJECT = {"id": "6f1c1c9e-8d0e-4f7a-9a55-0a1b2c3d4e5f", "owner_org_id": "x"}
UNAVAILABLE = {"type": "https://accord.invalid/problems/unavailable", "title": "Unavailable"}


def flaky(
    failures: int, *, status: int = 503, ok: int = 201
) -> tuple[Callable[..., Any], list[httpx.Request]]:
    """A MockTransport handler failing the first `failures` calls with `status`
    (or a connection error when status is 0), then answering `ok`."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= failures:
            if status == 0:
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(
                status,
                json=UNAVAILABLE,
                headers={"Retry-After": "0", "Content-Type": "application/problem+json"},
            )
        return httpx.Response(ok, json=SUBJECT)

    return handler, seen


def sync_client(handler: Callable[..., Any], retry: RetryPolicy = NO_WAIT) -> AccordClient:
    return AccordClient(
        base_url=BASE_URL, token="t", transport=httpx.MockTransport(handler), retry=retry
    )


def async_mock(handler: Callable[..., Any], retry: RetryPolicy = NO_WAIT) -> AsyncAccordClient:
    return AsyncAccordClient(
        base_url=BASE_URL, token="t", transport=httpx.MockTransport(handler), retry=retry
    )


def test_a_create_is_retried_on_503_with_the_same_idempotency_key() -> None:
    handler, seen = flaky(2)
    with sync_client(handler) as client:
        assert client.create_subject()["id"] == SUBJECT["id"]
    assert len(seen) == 3
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(keys) == 1
    assert all(r.headers["Authorization"] == "Bearer t" for r in seen)


async def test_the_async_twin_retries_the_same_way() -> None:
    handler, seen = flaky(3, status=0)
    async with async_mock(handler) as client:
        await client.create_subject(idempotency_key="caller-key")
    assert [r.headers["Idempotency-Key"] for r in seen] == ["caller-key"] * 4


def test_each_call_gets_its_own_key() -> None:
    handler, seen = flaky(0)
    with sync_client(handler) as client:
        client.create_subject()
        client.create_subject()
    assert seen[0].headers["Idempotency-Key"] != seen[1].headers["Idempotency-Key"]


@pytest.mark.parametrize("status", [0, 429, 503])
def test_a_get_is_retried_on_transient_failures(status: int) -> None:
    handler, seen = flaky(1, status=status, ok=200)
    with sync_client(handler) as client:
        client.get_consent("c")
    assert len(seen) == 2


def test_a_create_is_resent_with_the_same_key_after_a_read_timeout() -> None:
    """It may have been committed; the service answers a repeated key with the first
    result, so the create is resent, always with the same Idempotency-Key."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        raise httpx.ReadTimeout("slow", request=request)

    with sync_client(handler) as client, pytest.raises(httpx.ReadTimeout):
        client.create_subject()
    assert len(seen) == NO_WAIT.attempts
    assert len({r.headers["Idempotency-Key"] for r in seen}) == 1


def test_a_post_without_a_key_is_never_retried() -> None:
    handler, seen = flaky(1, ok=200)
    with sync_client(handler) as client, pytest.raises(ServiceUnavailableError) as caught:
        client.revoke_consent("c", reason="asked")
    assert len(seen) == 1
    assert caught.value.retry_after == 0.0
    assert "asked" not in str(caught.value)


async def test_deliver_and_accept_are_never_retried() -> None:
    handler, seen = flaky(5, ok=200)
    async with async_mock(handler) as client:
        with pytest.raises(ServiceUnavailableError):
            await client.deliver_referral("r")
        with pytest.raises(ServiceUnavailableError):
            await client.accept_referral("r")
    assert len(seen) == 2


def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    handler, seen = flaky(100, status=429)
    with sync_client(handler) as client, pytest.raises(RateLimitedError):
        client.list_consents("s")
    assert len(seen) == NO_WAIT.attempts


def test_a_client_error_is_not_retried() -> None:
    handler, seen = flaky(1, status=409, ok=200)
    with sync_client(handler) as client, pytest.raises(AccordAPIError) as caught:
        client.get_referral("r")
    assert len(seen) == 1
    assert caught.value.status == 409


def test_backoff_is_exponential_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(backoff_initial=0.5, backoff_max=4.0, jitter=0.0, retry_after_max=30.0)
    assert [backoff_seconds(policy, n, None, 0.0) for n in (1, 2, 3, 4, 5)] == [
        0.5, 1.0, 2.0, 4.0, 4.0,
    ]  # fmt: skip
    request = httpx.Request("GET", BASE_URL)
    slow = httpx.Response(429, headers={"Retry-After": "7"}, request=request)
    huge = httpx.Response(503, headers={"Retry-After": "86400"}, request=request)
    assert (
        backoff_seconds(
            policy, 1, RateLimitedError(_problem(429), request=request, response=slow), 0.0
        )
        == 7.0
    )
    assert (
        backoff_seconds(
            policy, 1, ServiceUnavailableError(_problem(503), request=request, response=huge), 0.0
        )
        == 30.0
    )
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None


def _problem(status: int) -> Any:
    from accord_client.api_models import ProblemDetails

    return ProblemDetails(status=status)


async def test_retry_against_the_app_creates_exactly_one_subject(app: Any, world: World) -> None:
    """A wrapper that answers 503 twice before passing requests to the real app."""
    inner = httpx.ASGITransport(app=app)
    seen: list[str] = []

    class FailingFirst(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request.headers.get("Idempotency-Key", ""))
            if len(seen) <= 2:
                return httpx.Response(503, json=UNAVAILABLE, headers={"Retry-After": "0"})
            return await inner.handle_async_request(request)

    async with async_client(app, world, transport=FailingFirst()) as client:
        subject = await client.create_subject()
    assert len(seen) == 3
    assert len(set(seen)) == 1
    async with app.state.sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(Subject))
    assert count == 1
    assert subject["id"]


def _public(cls: type) -> dict[str, inspect.Signature]:
    """Public methods, inherited ones included (the event and webhook methods come
    from a mixin per twin: accord_client/_events_client.py)."""
    members: dict[str, inspect.Signature] = {}
    for klass in reversed(cls.__mro__[:-1]):  # without object; subclasses override
        members.update(
            (name, inspect.signature(member))
            for name, member in vars(klass).items()
            if callable(member) and not name.startswith("_")
        )
    return members


def test_the_sync_and_async_clients_expose_the_same_methods() -> None:
    sync_methods, async_methods = _public(AccordClient), _public(AsyncAccordClient)
    assert sync_methods.keys() == async_methods.keys()
    assert {"events", "iter_events", "create_webhook", "webhook_signing_key"} <= sync_methods.keys()
    for name, signature in sync_methods.items():
        other = async_methods[name]
        assert list(signature.parameters) == list(other.parameters), name
        is_async = inspect.iscoroutinefunction(getattr(AsyncAccordClient, name)) or (
            inspect.isasyncgenfunction(getattr(AsyncAccordClient, name))
        )
        assert is_async, name
    assert inspect.iscoroutinefunction(AsyncAccordClient.close)
