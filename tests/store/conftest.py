"""Store fixtures: one real Gateway in-process over a real database (SQLite file, or the
PostgreSQL of PAYMUX_TEST_DATABASE_URL), with a scripted fake of the outside channels.

Tests share the gateway for the session and isolate themselves with fresh merchants (and,
where a report spans every merchant, a period of their own); a test that moves the clock
uses the ``clock`` fixture, which puts it back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from paymux.api.app import create_app
from paymux.service.bootstrap import build_gateway, close_gateway
from paymux.service.gateway import Gateway, utcnow
from paymux.service.merchants import MerchantAuth
from paymux.settings import Settings
from tests.store.store_support import (
    ADMIN_KEY,
    FEES_TOML,
    fake_channels,
)
from tests.support import fresh_database_url


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="session")
def store_database_url(store_dir: Path) -> Iterator[str]:
    # A database of its own: SQLite file, or a fresh one on the CI PostgreSQL.
    yield fresh_database_url(store_dir)


@pytest.fixture(scope="session")
def store_settings(store_dir: Path, store_database_url: str, redis_url: str) -> Settings:
    fees = store_dir / "fees.toml"
    fees.write_text(FEES_TOML)
    return Settings(
        data_dir=store_dir,
        database_url=store_database_url,
        redis_url=redis_url,
        admin_key=ADMIN_KEY,
        channels_file=store_dir / "no-channels.toml",
        enabled_channels=[],
        fees_file=fees,
        sync_enabled=False,
        webhook_workers_enabled=False,
    )


@pytest.fixture(scope="session")
async def gw(store_settings: Settings) -> AsyncIterator[Gateway]:
    gateway = await build_gateway(store_settings)
    gateway.channels = fake_channels()
    try:
        yield gateway
    finally:
        await close_gateway(gateway)


@pytest.fixture
def clock(gw: Gateway) -> Iterator[Callable[[datetime], None]]:
    """``clock(t)`` makes the gateway's time ``t`` (aware) until the test ends."""

    def set_clock(at: datetime) -> None:
        assert at.tzinfo is not None
        gw.clock = lambda: at

    try:
        yield set_clock
    finally:
        gw.clock = utcnow


@pytest.fixture(scope="session")
async def api(gw: Gateway, store_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real FastAPI app in-process over the same gateway (no lifespan: the gateway is
    already built, and background loops stay off so tests decide when outcomes land)."""
    app = create_app(store_settings)
    app.state.gateway = gw
    app.state.merchant_auth = MerchantAuth(gw)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://paymux.test") as client:
        yield client
