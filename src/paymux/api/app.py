"""The FastAPI application and its lifecycle (gateway wiring and background loops)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import FastAPI

from paymux import __version__
from paymux.api import (
    balances,
    callbacks,
    guards,
    internal,
    merchants,
    openapi,
    ops,
    problems,
    transfers,
)
from paymux.service.access import Authenticator, gw_gate
from paymux.service.batches import run_batch_loop
from paymux.service.bootstrap import build_gateway, close_gateway
from paymux.service.gateway import Gateway
from paymux.service.sync import run_sync_loop
from paymux.settings import Settings
from paymux.webhooks.relay import run_relay
from paymux.webhooks.worker import run_delivery_worker

log = logging.getLogger(__name__)

Loop = Callable[[Gateway, asyncio.Event], Coroutine[Any, Any, None]]


def background_loops(settings: Settings) -> list[Loop]:
    loops: list[Loop] = []
    if settings.sync_enabled:
        loops.append(run_sync_loop)
    if settings.webhook_workers_enabled:
        loops += [run_relay, run_delivery_worker]
    if settings.batch_enabled:
        loops.append(run_batch_loop)
    if settings.reconciliation_enabled:
        from paymux.service.reconciliation_schedule import run_reconciliation_scheduler  # noqa: PLC0415

        loops.append(run_reconciliation_scheduler)
    return loops


def create_served_app() -> FastAPI:
    """What ``paymux serve`` runs in each worker: the app, with the garbage collector
    tuned for a long-lived process once startup is done (paymux/gc_tuning.py). Tests
    build :func:`create_app`, which leaves the test process's collector alone."""
    return create_app(tune_gc=True)


def create_app(settings: Settings | None = None, *, tune_gc: bool = False) -> FastAPI:
    settings = settings or Settings()
    if not logging.getLogger().handlers:  # a uvicorn worker process: nobody configured it
        from paymux import logs  # noqa: PLC0415

        logs.configure(settings.log_level)
    from paymux import tracing  # noqa: PLC0415 - own line, as logs

    tracing.setup_from_environment()  # before the channels' HTTP clients are made

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gw = await build_gateway(settings, migrate=settings.auto_migrate)
        app.state.gateway = gw
        app.state.merchant_auth = Authenticator(gw)
        await gw_gate(gw).load_scripts()  # even the first request is one round trip
        if tune_gc:
            from paymux.gc_tuning import tune_for_serving  # noqa: PLC0415

            tune_for_serving()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(loop(gw, stop)) for loop in background_loops(settings)]
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                try:
                    await asyncio.wait_for(task, timeout=10)
                except (TimeoutError, asyncio.CancelledError):
                    task.cancel()
            await close_gateway(gw)

    app = FastAPI(
        title="Paymux",
        version=__version__,
        summary="One transfer API over Alipay and WeChat Pay, with an exact ledger.",
        lifespan=lifespan,
    )
    problems.install(app)
    openapi.install(app)
    guards.install(app)  # inside the request-id middleware, so its refusals carry an id too
    from paymux.api.request_ids import RequestIdMiddleware  # noqa: PLC0415 - own line

    app.add_middleware(RequestIdMiddleware)
    from paymux.api import reports  # noqa: PLC0415 - own line, apart from the shared tuple

    app.include_router(reports.router)
    for module in (transfers, balances, merchants, callbacks, ops, internal):
        app.include_router(module.router)
    from paymux.api import events, webhooks  # noqa: PLC0415 - own line, as reports

    app.include_router(webhooks.router)
    app.include_router(events.router)
    from paymux.api import access, ratelimit_headers  # noqa: PLC0415 - own line, as reports

    app.include_router(access.router)
    app.add_middleware(ratelimit_headers.RateLimitHeaders)
    from paymux.api import batches  # noqa: PLC0415 - own line, as reports

    app.include_router(batches.router)

    from paymux.api import merchant_statements, reconciliation  # noqa: PLC0415 - as reports

    app.include_router(reconciliation.router)
    app.include_router(merchant_statements.router)
    from paymux.api import dashboard  # noqa: PLC0415 - own line, as reports

    app.include_router(dashboard.router)
    return app
