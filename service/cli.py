"""The `accord` command: serve, migrate, issue development tokens, create organizations,
seed a demonstration federation, manage keys."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.dev_tokens import DevTokensUnavailableError, issue_dev_token
from service.auth.principals import Principal, Role
from service.clock import SystemClock
from service.db import migrate
from service.keyring import load_keyring
from service.preflight import missing_keys, require_organization, settings_or_exit
from service.sectors import Sector
from service.settings import Settings
from service.storage import make_engine, make_sessionmaker

T = TypeVar("T")

app = typer.Typer(
    help="Accord: privacy-preserving referrals, consent and records requests.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
token_app = typer.Typer(
    help="Development tokens signed by the local dev key.", no_args_is_help=True
)
org_app = typer.Typer(
    help="Organizations (bootstrap; the API does the rest).", no_args_is_help=True
)
keys_app = typer.Typer(help="The service's own keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(org_app, name="org")
app.add_typer(keys_app, name="keys")

# Acts for command-line bootstrap actions; recorded as the creator of what it makes.
CLI_PRINCIPAL = Principal(
    subject="accord-cli",
    org_id=uuid.UUID(int=0),
    sector=Sector.oversight,
    roles=frozenset({Role.platform_admin}),
)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[
        int, typer.Option(help="Worker processes (PostgreSQL only; SQLite is served by one)")
    ] = 1,
) -> None:
    """Start the service (migrates first in development)."""
    import uvicorn

    from service.events import dispatch_process
    from service.web import serving
    from service.web.observability import configure_logging

    settings = settings_or_exit()
    missing = missing_keys(settings)
    if missing:
        typer.echo("accord: refusing to start:", err=True)
        for line in missing:
            typer.echo(f"  - {line}", err=True)
        raise typer.Exit(2)
    if workers > 1 and settings.is_sqlite:
        # Each process would hold its own writer connection, and SQLite's busy
        # handler would then serialize them by sleeping and retrying (DESIGN.md
        # section 10: p99 of a second and more, measured with bench/deliver.py).
        raise typer.BadParameter(
            "SQLite is served by one process, which serializes its writes; "
            "use PostgreSQL (ACCORD_DATABASE_URL) for several workers",
            param_hint="--workers",
        )
    refusal = dispatch_process.sqlite_refusal(settings)
    if refusal is not None:
        typer.echo(f"accord: refusing to start:\n  - {refusal}", err=True)
        raise typer.Exit(2)
    configure_logging(settings.log_level)  # JSON from the first line on
    # On PostgreSQL the webhook dispatcher runs in a child process beside the workers.
    with dispatch_process.dispatcher_beside(settings):
        if workers > 1:
            # Each worker on its own SO_REUSEPORT socket (service/web/serving.py).
            serving.serve_workers(host, port, workers)
            return
        uvicorn.run(
            serving.APP,
            host=host,
            port=port,
            log_config=serving.log_config(settings.log_level),
            **serving.UVICORN_OPTIONS,
        )


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    settings = settings_or_exit()

    async def run() -> None:
        engine = make_engine(settings)
        try:
            await migrate.upgrade(engine, revision)
            typer.echo(f"database at {await migrate.current_revision(engine)}")
        finally:
            await engine.dispose()

    asyncio.run(run())


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION ("base" for an empty schema)."""
    settings = settings_or_exit()

    async def run() -> None:
        engine = make_engine(settings)
        try:
            await migrate.downgrade(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(run())


@db_app.command("current")
def db_current() -> None:
    """Print the database's revision and the head revision."""
    settings = settings_or_exit()

    async def run() -> None:
        engine = make_engine(settings)
        try:
            typer.echo(
                f"current {await migrate.current_revision(engine)} head {migrate.head_revision()}"
            )
        finally:
            await engine.dispose()

    asyncio.run(run())


@keys_app.command("init")
def keys_init() -> None:
    """Create any missing service keys (checkpoint, receipt, survivor token, cursor) in
    ACCORD_KEY_DIR, and the development staff token key when no JWKS is configured."""
    settings = settings_or_exit()
    load_keyring(settings, create=True)
    typer.echo(f"keys ready in {settings.key_dir}")


def _parse_roles(values: list[str]) -> list[Role]:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    known = {role.value: role for role in Role}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise typer.BadParameter(
            f"unknown role(s) {unknown}; choose from {', '.join(known)}"
            if unknown
            else "name at least one role"
        )
    return [known[name] for name in names]


@token_app.command("issue")
def token_issue(
    org: Annotated[uuid.UUID, typer.Option(help="The organization id the token acts for")],
    roles: Annotated[
        list[str], typer.Option(help="Roles, comma-separated or repeated: caseworker,supervisor")
    ],
    sub: Annotated[str, typer.Option(help="The principal's name (the token subject)")],
    lifetime: Annotated[
        int | None, typer.Option(help="Seconds (default and maximum: the configured cap)")
    ] = None,
) -> None:
    """Print a development staff token signed by the local dev key, for an
    organization that exists in the service's database."""
    settings = settings_or_exit()
    parsed = _parse_roles(roles)
    try:
        if not settings.uses_dev_staff_key:
            raise DevTokensUnavailableError(
                "development tokens are only available outside production and when no "
                "ACCORD_JWT_JWKS_FILE or ACCORD_JWT_JWKS_URL is configured"
            )
        require_organization(settings, org)
        token = issue_dev_token(
            settings,
            clock=SystemClock(),
            org_id=org,
            roles=parsed,
            sub=sub,
            lifetime_seconds=lifetime,
        )
    except (DevTokensUnavailableError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(token)


def _with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one unit of work in one transaction (migrating first in development)."""

    async def run() -> T:
        engine = make_engine(settings)
        try:
            if settings.auto_migrate:
                await migrate.upgrade(engine)
            async with make_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(run())


@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Option(help="Display name")],
    sector: Annotated[Sector, typer.Option(help="The organization's sector")],
    jurisdiction: Annotated[str | None, typer.Option(help="Jurisdiction")] = None,
) -> None:
    """Create an organization and print it as JSON (bootstrap for a new deployment)."""
    from service.organizations import service as org_service
    from service.organizations.schemas import OrganizationCreate

    settings = settings_or_exit()
    data = OrganizationCreate(name=name, sector=sector, jurisdiction=jurisdiction)

    async def work(session: AsyncSession) -> dict[str, str | None]:
        org = await org_service.create(
            session, principal=CLI_PRINCIPAL, data=data, clock=SystemClock()
        )
        return {"id": str(org.id), "name": org.name, "sector": org.sector}

    typer.echo(json.dumps(_with_session(settings, work), indent=2))


@app.command()
def sweep() -> None:
    """Crypto-shred now: destroy the ciphertexts and sealed keys of referrals past
    their retention, withdrawn or declined, and of records-request answers past
    their retention; what an expired consent can no longer release; and referrals
    and answers never delivered within ACCORD_ABANDONMENT_DAYS, which expire (the
    running service does this every
    ACCORD_SWEEP_INTERVAL_SECONDS). Prints the referral and request ids shredded."""
    from datetime import timedelta

    from service.retention import run_sweep

    settings = settings_or_exit()

    async def run() -> list[uuid.UUID]:
        engine = make_engine(settings)
        try:
            if settings.auto_migrate:
                await migrate.upgrade(engine)
            return await run_sweep(
                make_sessionmaker(engine),
                retention=timedelta(days=settings.referral_retention_days),
                clock=SystemClock(),
                abandon_after=timedelta(days=settings.abandonment_days),
            )
        finally:
            await engine.dispose()

    shredded = asyncio.run(run())
    typer.echo(json.dumps({"shredded": [str(i) for i in shredded]}, indent=2))


@app.command()
def dispatch(
    once: Annotated[
        bool, typer.Option(help="Deliver what is due now, then exit (default: run until stopped)")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics on 127.0.0.1 at this port (default: none)"),
    ] = None,
    parent_pid: Annotated[
        int | None,
        typer.Option(hidden=True, help="Set by `accord serve`: stop when this parent is gone"),
    ] = None,
) -> None:
    """Deliver webhooks (for deployments that run the dispatcher apart from `accord serve`:
    set ACCORD_WEBHOOK_DISPATCH_IN_SERVE=false there). Several may run against one
    PostgreSQL; on SQLite only one process may dispatch, and `accord serve` counts."""
    from service.events import dispatch_process
    from service.events.dispatch import DispatchConfig, Dispatcher
    from service.web.observability import Metrics, configure_logging

    settings = settings_or_exit()
    configure_logging(settings.log_level)
    keyring = load_keyring(settings)
    metrics = Metrics()
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)

    async def run() -> None:
        engine = make_engine(settings)
        try:
            if settings.auto_migrate:
                await migrate.upgrade(engine)
            async with Dispatcher(
                make_sessionmaker(engine),
                signer=keyring.webhook,
                secrets_key=keyring.webhook_secrets_key,
                config=DispatchConfig.from_settings(settings),
                clock=SystemClock(),
                metrics=metrics,
            ) as dispatcher:
                # SIGTERM stops it between two database operations; requests in flight
                # are abandoned and their deliveries sent again after the lease.
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, dispatcher.stop)
                watch = None
                if parent_pid is None:
                    typer.echo("dispatching", err=True)
                else:  # `accord serve`'s child: its stderr is JSON lines
                    watch = asyncio.create_task(
                        dispatch_process.watch_parent(parent_pid, dispatcher.stop)
                    )
                    dispatch_process.log.info(
                        "dispatching", extra={"event": "webhook.dispatcher_ready"}
                    )
                metrics.webhook_dispatcher_up.set(1)
                try:
                    if once:
                        await dispatcher.run_until_idle()
                    else:
                        await dispatcher.serve()
                finally:
                    if watch is not None:
                        watch.cancel()
        finally:
            await engine.dispose()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        # uvloop where it is installed, as uvicorn uses for the API: a run's requests
        # and transactions are mostly event-loop turns (profiled with py-spy).
        try:
            import uvloop
        except ImportError:  # pragma: no cover - installed with the service on CPython
            asyncio.run(run())
        else:
            uvloop.run(run())


@app.command()
def demo(
    url: Annotated[
        str,
        typer.Option(envvar="ACCORD_URL", help="The running service (started with `accord serve`)"),
    ] = "http://127.0.0.1:8000",
    story: Annotated[
        bool, typer.Option(help="Then run the demo scenario end to end, step by step")
    ] = False,
    output: Annotated[
        Path, typer.Option(help="Where to write the tokens and ids as JSON (0600)")
    ] = Path("demo.json"),
    key_dir: Annotated[
        Path, typer.Option(help="Where the demo organizations' keys are kept (0700)")
    ] = Path(".accord/demo-keys"),
) -> None:
    """Get the running service's demonstration federation (five organizations in one
    task force; created on the first run, found again after) ready to use: keys made
    on this machine and registered, every organization accepting referrals, and a
    fresh development token for each principal, printed and written to demo.json.
    The service must run in development (docs/configuration.md "The sandbox")."""
    from service.sandbox.remote import SandboxError
    from service.sandbox.setup import describe, prepare, write_summary

    try:
        sandbox = prepare(url, key_dir=key_dir)
        write_summary(sandbox, path=output, key_dir=key_dir)
    except SandboxError as exc:
        typer.echo(f"accord demo: {exc}", err=True)
        raise typer.Exit(2) from exc
    for line in describe(sandbox):
        typer.echo(line)
    typer.echo(f"Written to {output} (0600); the organizations' keys are in {key_dir} (0700).")
    if story:
        from service.sandbox.story import run_story

        typer.echo("")
        try:
            run_story(sandbox, say=typer.echo)
        except SandboxError as exc:
            typer.echo(f"accord demo --story: {exc}", err=True)
            raise typer.Exit(1) from exc


@app.command()
def report(
    collab_id: Annotated[uuid.UUID, typer.Argument(help="The collaboration")],
    period: Annotated[str, typer.Option(help="YYYY, YYYY-Qn or YYYY-MM (UTC), ended")],
    token: Annotated[str, typer.Option(envvar="ACCORD_TOKEN", help="A staff token")],
    url: Annotated[
        str, typer.Option(envvar="ACCORD_URL", help="The running service")
    ] = "http://127.0.0.1:8000",
    csv: Annotated[bool, typer.Option("--csv", help="CSV instead of JSON")] = False,
    breakdown: Annotated[
        bool, typer.Option(help="Also every month or quarter within it, as published")
    ] = False,
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
) -> None:
    """A collaboration's report with small counts suppressed (docs/reports.md),
    fetched from the running service; a progress bar on stderr with --breakdown."""
    from service.reports.cli import ReportCommandError, run_report

    try:
        run_report(
            url=url,
            token=token,
            collab_id=collab_id,
            period_text=period,
            as_csv=csv,
            breakdown=breakdown,
            output=output,
        )
    except ReportCommandError as exc:
        typer.echo(f"accord report: {exc}", err=True)
        raise typer.Exit(2) from exc


def main() -> None:
    app()
