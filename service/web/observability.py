"""Structured JSON logs with request ids, and Prometheus metrics.

Logs carry identifiers and decisions, never field values, ciphertexts, tokens or
free text about a survivor (DESIGN.md guarantee 7). Metric labels are route
templates, never concrete paths (which would hold ids).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes a caller may attach with `extra=` that the formatter will print. Anything
# else is dropped, so a careless `extra={"body": ...}` cannot leak a value.
ALLOWED_EXTRA = frozenset(
    {
        "event",
        "method",
        "route",
        "status",
        "duration_ms",
        "org_id",
        "principal",
        "object_id",
        "action",
        "decision",
        "error_type",
        "where",
        "seq",
        "count",
        "reason",
        # Webhook deliveries (service/events/dispatch.py): identifiers and outcomes only.
        "event_id",
        "delivery_id",
        "attempt",
        "outcome",
        # `accord serve`'s dispatcher process (service/events/dispatch_process.py).
        "pid",
        "exit_code",
        "restart_in_seconds",
    }
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            payload["request_id"] = request_id
        for key in ALLOWED_EXTRA:
            if key in record.__dict__:
                payload[key] = record.__dict__[key]
        # Never exc_info: exception messages can carry SQL parameters or input values.
        return json.dumps(payload, sort_keys=True, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log prints raw paths and query strings; ours prints route templates.
    logging.getLogger("uvicorn.access").disabled = True


class Metrics:
    """One registry per app instance (tests create many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "accord_http_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "accord_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["route", "method"],
            registry=self.registry,
        )
        self.audit_appends = Counter(
            "accord_audit_appends_total", "Audit entries appended", registry=self.registry
        )
        self.field_decisions = Counter(
            "accord_field_decisions_total",
            "Field release decisions by outcome",
            ["outcome"],
            registry=self.registry,
        )
        # Webhooks (service/events/dispatch.py; the gauges are read every few seconds).
        self.webhook_attempts = Counter(
            "accord_webhook_attempts_total",
            "Webhook delivery attempts by outcome (succeeded, retry, failed, superseded) "
            "and result (status class such as 2xx, or an error code such as timeout)",
            ["outcome", "result"],
            registry=self.registry,
        )
        self.webhook_pending = Gauge(
            "accord_webhook_deliveries_pending",
            "Webhook deliveries not yet delivered nor given up, to active endpoints",
            registry=self.registry,
        )
        self.webhook_oldest_pending_age = Gauge(
            "accord_webhook_oldest_pending_age_seconds",
            "Age of the oldest pending webhook delivery (0 when none)",
            registry=self.registry,
        )
        self.webhook_endpoints_failing = Gauge(
            "accord_webhook_endpoints_failing",
            "Webhook endpoints whose last delivery exhausted its retries",
            registry=self.registry,
        )
        # 1 while the webhook families beside it are a running dispatcher's: this
        # process's own, or `accord serve`'s dispatcher child's, read by the scrape
        # (service/web/dispatcher_metrics.py); 0 otherwise (then they are absent or zero).
        self.webhook_dispatcher_up = Gauge(
            "accord_webhook_dispatcher_up",
            "1 when the webhook figures are a running dispatcher's (this process's, or "
            "the dispatcher process's, read by this scrape), else 0",
            registry=self.registry,
        )
