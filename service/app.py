"""create_app(settings): routers, middleware, handlers, lifespan. Nothing at import time."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from service.audit.readiness import startup_audit_check
from service.audit.router import router as audit_router
from service.audit.tree import checkpoint_loop
from service.auth.link_misuse import LinkMisuseRecorder
from service.auth.setup import build_token_verifier
from service.clock import Clock, SystemClock
from service.collaborations.router import router as collaborations_router
from service.consents.router import router as consents_router
from service.db import migrate
from service.disclosures.router import router as disclosures_router
from service.events.dispatch import DispatchConfig, dispatch_loop
from service.events.router import router as events_router
from service.events.webhooks_router import router as webhooks_router
from service.keyring import load_keyring
from service.operations.router import router as operations_router
from service.organizations import principals as org_principals
from service.organizations import service as org_service
from service.organizations.principals_router import router as principals_router
from service.organizations.router import router as organizations_router
from service.pages import site as pages_site
from service.pages.router import router as pages_router
from service.policy.router import router as policy_router
from service.policy.setup import load_policies
from service.records_requests.overdue import overdue_loop
from service.records_requests.router import router as records_requests_router
from service.referrals.router import router as referrals_router
from service.reports.router import router as reports_router
from service.retention import sweep_loop
from service.settings import Environment, Settings
from service.storage import make_engine, make_sessionmaker
from service.subjects import access_links
from service.subjects.router import links_router as access_links_router
from service.subjects.router import router as subjects_router
from service.web import docs_pages, error_handlers, openapi
from service.web.middleware import RequestGuard
from service.web.observability import Metrics, configure_logging
from service.web.pagination import CursorCodec
from service.web.ratelimit import RateLimits

log = logging.getLogger("accord.app")


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.environment is not Environment.test:
            configure_logging(settings.log_level)
        for warning in settings.startup_warnings():  # allowed, but said at every start
            log.warning(warning, extra={"event": "app.setting_warning"})
        keyring = load_keyring(settings)
        # Policies first: an invalid policy set stops the service before it serves anything.
        policy_engine, vocabulary = load_policies(settings)
        engine = make_engine(settings)
        if settings.auto_migrate:
            await migrate.upgrade(engine)
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.keyring = keyring
        app.state.cursors = CursorCodec(keyring.cursor_secret)
        app.state.token_verifier = build_token_verifier(settings, keyring, clock=app.state.clock)
        app.state.active_sector = org_service.active_sector  # read by service/auth/dependencies.py
        app.state.staff_standing = org_principals.standing  # read by service/auth/dependencies.py
        app.state.policy_engine = policy_engine
        app.state.vocabulary = vocabulary
        # The survivor pages: catalogs compiled, plain-language names checked.
        app.state.pages = pages_site.load_site(settings, policy_engine.taxonomy)
        app.state.access_link_live = access_links.token_live  # read by service/auth/dependencies.py
        checkpoints = asyncio.create_task(
            checkpoint_loop(
                app.state.sessionmaker,
                signer=keyring.checkpoint,
                origin=settings.audit_origin,
                clock=app.state.clock,
                interval=settings.audit_checkpoint_interval_seconds,
            )
        )
        sweeper = asyncio.create_task(
            sweep_loop(
                app.state.sessionmaker,
                retention=timedelta(days=settings.referral_retention_days),
                clock=app.state.clock,
                interval=settings.sweep_interval_seconds,
                abandon_after=timedelta(days=settings.abandonment_days),
            )
        )
        overdue = asyncio.create_task(
            overdue_loop(
                app.state.sessionmaker,
                clock=app.state.clock,
                interval=settings.overdue_scan_interval_seconds,
            )
        )
        loops = [checkpoints, sweeper, overdue]
        if settings.webhook_dispatch_in_serve:  # else `accord dispatch` runs apart
            metrics.webhook_dispatcher_up.set(1)
            loops.append(
                asyncio.create_task(
                    dispatch_loop(
                        app.state.sessionmaker,
                        signer=keyring.webhook,
                        secrets_key=keyring.webhook_secrets_key,
                        config=DispatchConfig.from_settings(settings),
                        clock=app.state.clock,
                        metrics=metrics,
                    )
                )
            )
        # Everything built so far lives as long as the process: move it out of the
        # collector's generations, so that a full collection walks only what requests
        # create (measured: an 80 ms pause every few hundred deliveries without this,
        # under 1 ms with it; the p99 latency of bench/deliver.py). Not in tests, which
        # start hundreds of apps (a full collection each would slow the suite).
        freeze = settings.environment is not Environment.test
        if freeze:
            gc.collect()
            gc.freeze()
        # The audit log's protections, said in the log at every start (issue 22,
        # item 11); /readyz refuses readiness while they are down.
        await startup_audit_check(app.state.sessionmaker)
        log.info("started", extra={"event": "app.started"})
        try:
            yield
        finally:
            if freeze:
                gc.unfreeze()
            for task in loops:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await engine.dispose()

    app = FastAPI(
        title="Accord",
        version="1",
        summary="Privacy-preserving referrals, consent and records requests",
        lifespan=lifespan,
        # Served by service/web/docs_pages.py from vendored assets (no CDN).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    app.state.rate_limits = RateLimits(settings)
    app.state.metrics = metrics
    error_handlers.install(app)
    docs_pages.install(app)
    openapi.install(app)
    pages_site.install(app)
    for router in (
        operations_router,
        organizations_router,
        principals_router,
        collaborations_router,
        subjects_router,
        access_links_router,
        pages_router,
        policy_router,
        disclosures_router,
        audit_router,
        consents_router,
        referrals_router,
        records_requests_router,
        reports_router,
        events_router,
        webhooks_router,
    ):
        app.include_router(router)
    if settings.serves_demo_endpoint:  # development only: `accord demo`
        from service.sandbox.router import router as sandbox_router

        app.include_router(sandbox_router)
    if settings.test_hooks:
        from service.operations.bench_hooks import router as bench_router

        app.include_router(bench_router)
    # Inside the guard: a refused use of a survivor's access link is audited after
    # its request's transaction ended (service/auth/link_misuse.py).
    app.add_middleware(LinkMisuseRecorder, record=access_links.record_misuse)
    app.add_middleware(
        RequestGuard, max_body_bytes=settings.max_body_bytes, metrics=metrics, root=app
    )
    return app
