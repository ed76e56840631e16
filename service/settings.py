"""The one settings class: the only reader of the environment (prefix ACCORD_).

Defaults are the embedded development set-up: a SQLite file in the working
directory and development keys generated on first run. Outside development,
unsafe settings are refused at start-up (STYLE.md convention 7).
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import limits
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACCORD_", extra="ignore", frozen=True)

    environment: Environment = Environment.development
    database_url: str = "sqlite+aiosqlite:///./accord.db"
    # Seconds a request waits for a database connection before answering 503.
    database_pool_timeout: float = 10.0
    database_pool_size: int = Field(default=10, ge=1, le=200)
    # PostgreSQL: a pooled connection unused for this many seconds is checked with a
    # round trip before a request gets it (service/db/engine.py); 0 checks every time.
    database_ping_idle_seconds: float = Field(default=1.0, ge=0, le=3600)
    # `accord serve`: a connection whose request line and headers are not all in
    # within this many seconds is closed (service/web/http_protocol.py).
    http_head_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Apply migrations when the service starts (development default; production runs
    # `accord db upgrade` as a separate step so two nodes never migrate at once).
    auto_migrate: bool = True

    key_dir: Path = Path(".accord/keys")
    policy_dir: Path = REPO_ROOT / "policies"

    # Staff tokens (API.md "Authentication").
    jwt_issuer: str = "accord-dev"
    jwt_audience: str = "accord-api"
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["EdDSA"])
    # A JWKS file with the staff token verification keys; default: the dev key in key_dir.
    jwt_jwks_file: Path | None = None
    jwt_jwks_url: str | None = None
    jwt_leeway_seconds: int = Field(default=60, ge=0, le=60)
    staff_token_max_lifetime_seconds: int = Field(default=3600, ge=60, le=86400)
    # Survivor access tokens: other audience, other key, bound to one subject.
    survivor_jwt_audience: str = "accord-survivor"
    survivor_jwt_issuer: str = "accord-service"
    survivor_token_max_lifetime_seconds: int = Field(default=86400, ge=60, le=7 * 86400)
    # The single-use code in a survivor access link's URL (/s/{code}): how long it can
    # be exchanged for a session; the session then lasts as long as the link.
    access_link_code_seconds: int = Field(default=900, ge=60, le=86400)
    # The service's public address (scheme and host, no path), such as
    # "https://accord.example.org": access links are returned as absolute URLs, and the
    # survivor pages accept forms only from this origin. Unset: the Host header's.
    public_base_url: str | None = None
    # Where "Leave this page quickly" on the survivor pages goes (an ordinary site).
    pages_exit_url: str = "https://www.google.com/"
    # The time zone the survivor pages show times in (an IANA name).
    pages_time_zone: str = "UTC"
    # How often at most the JWKS URL is fetched again for an unknown `kid`, and how
    # long fetched keys are trusted before a refresh.
    jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    jwks_cache_seconds: float = Field(default=300.0, ge=1)

    # The longest a consent grant may run (expires_at - valid_from).
    consent_max_days: int = Field(default=365, ge=1, le=3650)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    page_size_default: int = Field(default=50, ge=1)
    page_size_max: int = Field(default=200, ge=1, le=1000)

    audit_origin: str = "accord.localhost/audit"
    # How often the service signs and keeps a checkpoint of the audit log (if it grew).
    audit_checkpoint_interval_seconds: float = Field(default=300.0, ge=1.0)
    # Audit exports running at once on each app node: in total and per principal
    # (one more is answered 429 with Retry-After; docs/audit.md "Exports").
    audit_export_max_concurrent: int = Field(default=4, ge=1, le=64)
    audit_export_max_per_principal: int = Field(default=1, ge=1, le=64)
    # Crypto-shredding: delivered referrals keep their ciphertexts this long.
    referral_retention_days: float = Field(default=7.0, ge=0.0, le=365.0)
    # Abandonment: a referral or records-request answer not delivered within this
    # many days expires and is destroyed by the sweep (service/retention.py).
    abandonment_days: float = Field(default=30.0, gt=0.0, le=365.0)
    sweep_interval_seconds: float = Field(default=300.0, ge=1.0)
    # Records requests: a compelled release obliges the holder to tell the survivor
    # within this many days; an emergency release must be reviewed within these hours.
    obligation_notify_days: float = Field(default=5.0, gt=0.0, le=90.0)
    review_due_hours: float = Field(default=72.0, gt=0.0, le=24.0 * 30)
    # How often the running service looks for duties past their date, to announce
    # each once as an `obligation.overdue` or `review.overdue` event.
    overdue_scan_interval_seconds: float = Field(default=60.0, ge=1.0)
    # Collaboration reports (docs/reports.md): a count under this is suppressed (zero
    # included), and the finest calendar period published (coarser ones are sums of it).
    report_threshold: int = Field(default=11, ge=1, le=1000)
    report_granularity: Literal["month", "quarter", "year"] = "quarter"
    # Webhooks (docs/notifications.md): networks a webhook may reach although they
    # are not public (CIDRs, e.g. a receiver on the deployment's private network).
    # Comma-separated in the environment.
    webhook_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The webhook dispatcher (service/events/dispatch.py): inside `accord serve` or only
    # as `accord dispatch`; how often it looks for due deliveries; how many requests it
    # has in flight at most (one per endpoint); an attempt's connect and total
    # timeouts; and how long a claimed delivery is leased to its dispatcher (longer
    # than an attempt can last: a crashed dispatcher's deliveries are due again after it).
    webhook_dispatch_in_serve: bool = True
    # Where `accord serve` runs its dispatcher: in a child process of its own beside
    # the API worker(s), so that they keep their cores (service/events/dispatch_process.py),
    # or in the worker's event loop. "auto": a child on PostgreSQL, in-process on SQLite
    # (served by one process; "on" with SQLite is refused at start).
    webhook_dispatch_process: Literal["auto", "on", "off"] = "auto"
    # Set by `accord serve` for its workers, not by operators: where its dispatcher
    # child serves its metrics (a loopback http URL), which the workers' /metrics
    # shows in place of their own webhook figures (service/web/dispatcher_metrics.py).
    webhook_dispatch_metrics_url: str | None = None
    webhook_dispatch_interval_seconds: float = Field(default=0.5, ge=0.01, le=60.0)
    # At most one dispatch pass per this many seconds: commits of one moment share a
    # run (docs/notifications.md, "Delivery"); 0 sends each commit's events at once.
    webhook_dispatch_coalesce_seconds: float = Field(default=0.1, ge=0.0, le=5.0)
    webhook_dispatch_concurrency: int = Field(default=16, ge=1, le=256)
    webhook_connect_timeout_seconds: float = Field(default=5.0, gt=0.0, le=60.0)
    webhook_timeout_seconds: float = Field(default=15.0, gt=0.0, le=300.0)
    webhook_lease_seconds: float = Field(default=60.0, gt=0.0, le=3600.0)
    # The longest a law enforcement agency may keep a disclosure out of the
    # survivor's accounting with one written request.
    accounting_suspension_max_days: float = Field(default=365.0, gt=0.0, le=3650.0)
    # Rate limits ("N/second|minute|hour|day", the `limits` library's notation) and
    # where their counters live ("memory://" per process; "redis://..." shared).
    rate_limit_records_requests: str = "30/minute"
    rate_limit_access_links: str = "20/hour"
    rate_limit_failed_auth: str = "100/minute"
    rate_limit_storage_url: str = "memory://"
    # Test-only hooks (pause points, fault injection); production refuses them.
    test_hooks: bool = False
    log_level: str = "INFO"

    @field_validator(
        "rate_limit_records_requests", "rate_limit_access_links", "rate_limit_failed_auth"
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            limits.parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit such as '30/minute': {value!r}") from exc
        return value

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlsplit(value.rstrip("/"))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("public_base_url must be an http(s) URL such as https://host")
        if parsed.path or parsed.query or parsed.fragment:
            raise ValueError("public_base_url is a scheme and host only, without a path")
        return f"{parsed.scheme}://{parsed.netloc}"

    @field_validator("webhook_dispatch_metrics_url")
    @classmethod
    def _dispatch_metrics_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlsplit(value)
        try:
            loopback = parsed.hostname is not None and (
                parsed.hostname == "localhost" or ipaddress.ip_address(parsed.hostname).is_loopback
            )
        except ValueError:
            loopback = False
        if parsed.scheme != "http" or not loopback:
            raise ValueError(
                "webhook_dispatch_metrics_url must be an http URL on a loopback address"
            )
        return value

    @field_validator("pages_exit_url")
    @classmethod
    def _exit_url(cls, value: str) -> str:
        parsed = urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("pages_exit_url must be an absolute http(s) URL")
        return value

    @field_validator("pages_time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"not a time zone name: {value!r}") from exc
        return value

    @field_validator("jwt_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        return parse_algorithms(value) if isinstance(value, str) else value

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError: named in the error
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_outside_development(self) -> Settings:
        # Every problem at once, one line each naming the variable to set, so that an
        # operator fixes a configuration in one pass (`accord serve` prints them).
        problems = self.unsafe_settings()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def unsafe_settings(self) -> list[str]:
        """Each combination of values refused here, as "ACCORD_VARIABLE: why"."""
        problems: list[str] = []
        bad_algs = [
            a for a in self.jwt_algorithms if a.lower() == "none" or a.upper().startswith("HS")
        ]
        if bad_algs:
            problems.append(
                f"ACCORD_JWT_ALGORITHMS: jwt_algorithms may not contain {bad_algs}: "
                "only asymmetric algorithms"
            )
        if not self.jwt_algorithms:
            problems.append("ACCORD_JWT_ALGORITHMS: jwt_algorithms must name at least one")
        if self.page_size_default > self.page_size_max:
            problems.append(
                "ACCORD_PAGE_SIZE_DEFAULT: page_size_default may not exceed ACCORD_PAGE_SIZE_MAX"
            )
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            # A lease that ends while its attempt may still run invites a second send.
            problems.append(
                "ACCORD_WEBHOOK_LEASE_SECONDS: webhook_lease_seconds must exceed "
                "ACCORD_WEBHOOK_TIMEOUT_SECONDS"
            )
        if self.environment is not Environment.production:
            return problems
        if self.test_hooks:
            problems.append(
                "ACCORD_TEST_HOOKS: test_hooks cannot be enabled in production; set it to false"
            )
        if self.jwt_jwks_file is None and self.jwt_jwks_url is None:
            problems.append(
                "ACCORD_JWT_JWKS_FILE or ACCORD_JWT_JWKS_URL: production verifies staff "
                "tokens with the identity provider's keys; set one"
            )
        if self.jwt_jwks_url is not None and not self.jwt_jwks_url.startswith("https://"):
            problems.append(
                "ACCORD_JWT_JWKS_URL: production fetches the identity provider's keys "
                "over https only"
            )
        if self.jwt_issuer == "accord-dev":
            problems.append(
                "ACCORD_JWT_ISSUER: production needs its identity provider's issuer, "
                "not the development default accord-dev"
            )
        return problems

    def startup_warnings(self) -> list[str]:
        """Allowed in production, but worth a word at every start (docs/configuration.md
        "Start-up")."""
        if self.environment is not Environment.production:
            return []
        warnings: list[str] = []
        if self.is_sqlite:
            warnings.append(
                "ACCORD_DATABASE_URL: SQLite in production: one process, one machine, "
                "backups by file copy; PostgreSQL for anything larger"
            )
        if self.auto_migrate:
            warnings.append(
                "ACCORD_AUTO_MIGRATE: migrations run at every start; run `accord db "
                "upgrade` as a release step and set ACCORD_AUTO_MIGRATE=false"
            )
        return warnings

    @property
    def generates_dev_keys(self) -> bool:
        """Development and test generate missing keys; production never does."""
        return self.environment is not Environment.production

    @property
    def uses_dev_staff_key(self) -> bool:
        """Staff tokens are verified with the local development key: no JWKS configured
        and not production (production refuses to start without one)."""
        return (
            self.environment is not Environment.production
            and self.jwt_jwks_file is None
            and self.jwt_jwks_url is None
        )

    @property
    def serves_demo_endpoint(self) -> bool:
        """`POST /dev/demo` (`accord demo`) exists only in development with the
        development token key (service/sandbox/router.py)."""
        return self.environment is Environment.development and self.uses_dev_staff_key

    @property
    def pages_cookie_secure(self) -> bool:
        """The survivor pages' cookies are `Secure` in production and whenever the
        public address is https (a browser then never sends them in clear)."""
        return self.environment is Environment.production or (
            self.public_base_url is not None and self.public_base_url.startswith("https://")
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def dispatches_in_child(self) -> bool:
        """`accord serve` runs its webhook dispatcher in a child process (on, or auto
        on PostgreSQL), not in the API worker; never on SQLite (`accord serve` refuses
        "on" there)."""
        if not self.webhook_dispatch_in_serve or self.is_sqlite:
            return False
        return self.webhook_dispatch_process != "off"


def parse_algorithms(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class SettingsRefusedError(Exception):
    """The environment's configuration, refused: `lines` says what to set, one line
    each ("ACCORD_VARIABLE: why")."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _lines(exc: ValidationError) -> tuple[list[str], set[str]]:
    lines: list[str] = []
    fields: set[str] = set()
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["loc"]:
            fields.add(str(error["loc"][0]))
            variable = "ACCORD_" + "_".join(str(part) for part in error["loc"]).upper()
            lines.append(f"{variable}: {message}")
        else:
            lines.extend(message.splitlines())
    return lines, fields


def load_settings() -> Settings:
    """Settings from the environment, or SettingsRefusedError listing every problem.

    Values that fail their own checks stop pydantic before it compares settings with
    each other; so those are set aside (replaced by their defaults) and the rest
    checked again, to name the missing and unsafe settings in the same message."""
    try:
        return Settings()
    except ValidationError as exc:
        lines, fields = _lines(exc)
    if fields:
        defaults = {
            name: Settings.model_fields[name].get_default(call_default_factory=True)
            for name in fields
            if name in Settings.model_fields
        }
        try:
            Settings(**defaults)
        except ValidationError as again:
            lines.extend(line for line in _lines(again)[0] if line not in lines)
    raise SettingsRefusedError(lines)
