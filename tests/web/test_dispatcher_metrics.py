"""The workers' `/metrics` with `accord serve`'s dispatcher child's webhook figures
(service/web/dispatcher_metrics.py): each family once, the child's webhook families
in place of the worker's, nothing else of the child's; a child that does not answer
makes `accord_webhook_dispatcher_up` 0 within the fetch's timeout. No database: the
child's exposition is a real prometheus_client HTTP server on loopback, or a socket
that never answers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from service.settings import Settings
from service.web import dispatcher_metrics
from service.web.dispatcher_metrics import exposition, merged_exposition
from service.web.observability import Metrics

WEBHOOK = {
    "accord_webhook_attempts",
    "accord_webhook_attempts_created",
    "accord_webhook_deliveries_pending",
    "accord_webhook_oldest_pending_age_seconds",
    "accord_webhook_endpoints_failing",
}


def _families(body: bytes) -> dict[str, Metric]:
    """The exposition parsed by prometheus_client; each family name asserted once."""
    families = list(text_string_to_metric_families(body.decode()))
    names = [family.name for family in families]
    assert sorted(names) == sorted(set(names)), names
    return {family.name: family for family in families}


def _samples(families: dict[str, Metric], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for sample in families[name].samples
        if not sample.name.endswith("_created")
    }


def _worker() -> Metrics:
    """A worker's registry: requests served, webhook families it never set but one
    count that must not show (the child's figures replace it)."""
    worker = Metrics()
    worker.requests.labels("/metrics", "GET", "200").inc(3)
    worker.webhook_attempts.labels(outcome="failed", result="timeout").inc()
    worker.webhook_pending.set(99)
    return worker


def _child() -> Metrics:
    child = Metrics()
    child.webhook_dispatcher_up.set(1)
    child.webhook_attempts.labels(outcome="succeeded", result="2xx").inc(5)
    child.webhook_attempts.labels(outcome="retry", result="5xx").inc(2)
    child.webhook_pending.set(4)
    child.webhook_oldest_pending_age.set(12.5)
    child.webhook_endpoints_failing.set(1)
    child.requests.labels("/other", "POST", "201").inc(7)  # not the worker's: dropped
    child.audit_appends.inc(11)  # likewise
    return child


def test_the_childs_webhook_families_replace_the_workers_and_nothing_else_comes() -> None:
    worker, child = _worker(), _child()
    merged = _families(merged_exposition(worker, generate_latest(child.registry).decode()))

    assert set(merged) >= WEBHOOK
    assert _samples(merged, "accord_webhook_attempts") == {
        (("outcome", "succeeded"), ("result", "2xx")): 5.0,
        (("outcome", "retry"), ("result", "5xx")): 2.0,
    }  # the worker's failed/timeout is gone
    assert _samples(merged, "accord_webhook_deliveries_pending") == {(): 4.0}
    assert _samples(merged, "accord_webhook_oldest_pending_age_seconds") == {(): 12.5}
    assert _samples(merged, "accord_webhook_endpoints_failing") == {(): 1.0}
    assert _samples(merged, "accord_webhook_dispatcher_up") == {(): 1.0}
    # The worker's other families, as they are; none of the child's.
    assert _samples(merged, "accord_http_requests") == {
        (("method", "GET"), ("route", "/metrics"), ("status", "200")): 3.0
    }
    assert _samples(merged, "accord_audit_appends") == {(): 0.0}
    own = _families(generate_latest(worker.registry))
    assert {name for name in own if not name.startswith("accord_webhook_")} == {
        name for name in merged if not name.startswith("accord_webhook_")
    }


def test_without_the_childs_figures_the_webhook_families_are_absent_and_it_says_so() -> None:
    worker = _worker()
    for unread in (None, "this is not\nthe text format {\n"):
        merged = _families(merged_exposition(worker, unread))
        assert not WEBHOOK & set(merged)
        assert _samples(merged, "accord_webhook_dispatcher_up") == {(): 0.0}
        assert "accord_http_requests" in merged


def test_a_child_without_webhook_families_adds_nothing() -> None:
    worker = _worker()
    other = Metrics()
    body = generate_latest(other.registry).decode()
    only_requests = "\n".join(line for line in body.splitlines() if "accord_webhook_" not in line)
    merged = _families(merged_exposition(worker, only_requests + "\n"))
    assert not WEBHOOK & set(merged)
    assert _samples(merged, "accord_webhook_dispatcher_up") == {(): 1.0}  # it answered


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def child_url() -> Iterator[str]:
    """A dispatcher's metrics served as `accord dispatch --metrics-port` serves them."""
    port = _free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=_child().registry)
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_the_workers_exposition_fetches_the_childs(child_url: str) -> None:
    merged = _families(await exposition(_worker(), child_url))
    assert _samples(merged, "accord_webhook_dispatcher_up") == {(): 1.0}
    assert _samples(merged, "accord_webhook_deliveries_pending") == {(): 4.0}
    assert _samples(merged, "accord_http_requests") == {
        (("method", "GET"), ("route", "/metrics"), ("status", "200")): 3.0
    }


async def test_without_an_address_the_exposition_is_the_workers_own() -> None:
    worker = _worker()
    assert await exposition(worker, None) == generate_latest(worker.registry)
    own = _families(await exposition(worker, None))
    assert _samples(own, "accord_webhook_deliveries_pending") == {(): 99.0}


async def test_a_child_that_is_not_listening_is_down_at_once() -> None:
    began = time.monotonic()
    merged = _families(await exposition(_worker(), f"http://127.0.0.1:{_free_port()}/metrics"))
    assert time.monotonic() - began < dispatcher_metrics.FETCH_TIMEOUT_SECONDS
    assert _samples(merged, "accord_webhook_dispatcher_up") == {(): 0.0}
    assert not WEBHOOK & set(merged)


async def test_a_child_that_does_not_answer_is_down_within_the_timeout() -> None:
    """A stopped child (SIGSTOP): its socket accepts connections, nothing answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/metrics"
        began = time.monotonic()
        merged = _families(await exposition(_worker(), url))
        took = time.monotonic() - began
    assert dispatcher_metrics.FETCH_TIMEOUT_SECONDS * 0.9 <= took < 2.0
    assert _samples(merged, "accord_webhook_dispatcher_up") == {(): 0.0}
    assert not WEBHOOK & set(merged)


def test_only_a_loopback_http_address_is_read() -> None:
    """The workers fetch this address at every scrape: never anywhere else."""
    for url in ("http://127.0.0.1:9100/metrics", "http://localhost:9100/metrics"):
        assert Settings(webhook_dispatch_metrics_url=url).webhook_dispatch_metrics_url == url
    for url in (
        "http://10.0.0.5:9100/metrics",
        "http://example.org/metrics",
        "https://127.0.0.1:9100/metrics",
        "file:///etc/passwd",
        "127.0.0.1:9100",
    ):
        with pytest.raises(ValidationError, match="loopback"):
            Settings(webhook_dispatch_metrics_url=url)
