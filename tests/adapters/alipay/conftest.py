"""Fixtures for the Alipay adapter tests: sandbox keys, an in-process sandbox, a channel
pointed at it, and a tiny notification receiver. Everything binds 127.0.0.1 on port 0."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from paymux_alipay.channel import AlipayChannel, AlipaySettings
from paymux_alipay.keys import SandboxKeys, ensure_keys
from paymux_alipay.sandbox import SANDBOX_KEY, AlipaySandbox, SandboxConfig, build_app


@pytest.fixture(scope="session")
def alipay_keys(tmp_path_factory: pytest.TempPathFactory) -> SandboxKeys:
    return ensure_keys(tmp_path_factory.mktemp("alipay-keys"))


@dataclass
class RunningSandbox:
    url: str
    sandbox: AlipaySandbox
    config: SandboxConfig
    keys: SandboxKeys


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@pytest.fixture
async def alipay_sandbox(alipay_keys: SandboxKeys) -> AsyncIterator[RunningSandbox]:
    config = SandboxConfig(
        port=0,
        data_dir=Path(alipay_keys.app_private_key.parent),
        app_id=alipay_keys.app_id,
        delay_seconds=0.3,
        hang_seconds=1.0,
        notify_schedule=(0.1, 0.2, 0.3),
        seed=7,
        notify_timeout_seconds=2.0,
    )
    app = build_app(config)
    runner, url = await _serve(app)
    yield RunningSandbox(url=url, sandbox=app[SANDBOX_KEY], config=config, keys=alipay_keys)
    await runner.cleanup()


def channel_settings(url: str, keys: SandboxKeys, **overrides: Any) -> AlipaySettings:
    values: dict[str, Any] = {
        "base_url": url,
        "app_id": keys.app_id,
        "app_private_key_file": keys.app_private_key,
        "alipay_public_key_file": keys.alipay_public_key,
        "timeout_seconds": 0.5,
        "connect_timeout_seconds": 0.5,
        "retry_initial_seconds": 0.01,
        "retry_max_seconds": 0.05,
    }
    values.update(overrides)
    return AlipaySettings(**values)


@pytest.fixture
def make_settings(alipay_keys: SandboxKeys) -> Callable[..., AlipaySettings]:
    def make(url: str = "http://alipay.test", **overrides: Any) -> AlipaySettings:
        return channel_settings(url, alipay_keys, **overrides)

    return make


@pytest.fixture
async def alipay_channel(
    alipay_sandbox: RunningSandbox, alipay_keys: SandboxKeys
) -> AsyncIterator[AlipayChannel]:
    channel = AlipayChannel(channel_settings(alipay_sandbox.url, alipay_keys))
    yield channel
    await channel.aclose()


@dataclass
class NotificationReceiver:
    """Records every notification body; answers ``fail`` for the first ``fail_first``."""

    url: str = ""
    bodies: list[bytes] = field(default_factory=list)
    fail_first: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        self.arrived.set()
        if len(self.bodies) <= self.fail_first:
            return web.Response(text="fail")
        return web.Response(text="success")

    async def wait_for(self, count: int, within: float = 5.0) -> None:
        async def enough() -> None:
            while len(self.bodies) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), within)


@pytest.fixture
async def notification_receiver() -> AsyncIterator[NotificationReceiver]:
    receiver = NotificationReceiver()
    app = web.Application()
    app.router.add_post("/alipay/notify", receiver.handle)
    runner, url = await _serve(app)
    receiver.url = f"{url}/alipay/notify"
    yield receiver
    await runner.cleanup()
