"""Shared helpers for the WeChat adapter tests (imported by name; not a test module)."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from paymux_wechat.channel import WechatChannel, create_channel
from paymux_wechat.keys import SandboxKeys
from paymux_wechat.sandbox import SandboxConfig, build_app
from paymux_wechat.signing import load_private_key, signature_headers

from paymux.channels.base import TransferOrder
from paymux.domain.payees import PayeeType

_references = itertools.count(1)
_run_tag = secrets.token_hex(4).upper()


def new_reference(prefix: str = "T") -> str:
    """A fresh out_bill_no (alphanumeric, <= 32 chars)."""
    return f"{prefix}{_run_tag}{next(_references):06d}"


def order_for(openid: str, amount: int = 1234, **extra: Any) -> TransferOrder:
    return TransferOrder(
        reference=extra.pop("reference", None) or new_reference(),
        amount=amount,
        currency="CNY",
        payee_type=PayeeType.WECHAT_OPENID,
        payee_account=openid,
        **extra,
    )


def signed_response(
    keys: SandboxKeys,
    status: int,
    payload: Mapping[str, Any],
    *,
    tamper: bool = False,
    serial: str | None = None,
) -> httpx.Response:
    """An httpx.Response signed like WeChat (optionally with a signature over other bytes)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = signature_headers(
        load_private_key(keys.platform_private_key_file),
        serial=serial or keys.platform_public_key_id,
        body=body + (b"x" if tamper else b""),
    )
    headers["Content-Type"] = "application/json"
    return httpx.Response(status, content=body, headers=headers)


def channel_for(keys: SandboxKeys, base_url: str, **overrides: Any) -> WechatChannel:
    settings = keys.channel_settings(
        base_url,
        **{
            "timeout_seconds": 2.0,
            "connect_timeout_seconds": 0.5,
            "retry_initial_seconds": 0.01,
            "retry_max_seconds": 0.05,
            **overrides,
        },
    )
    return create_channel(settings)


def fast_config(data_dir: Path, **overrides: Any) -> SandboxConfig:
    values: dict[str, Any] = {
        "port": 0,
        "data_dir": data_dir,
        "delay_seconds": 0.3,
        "hang_seconds": 1.0,
        "notify_schedule": (0.1, 0.1, 0.1, 0.1),
        "notify_timeout_seconds": 1.0,
        "seed": 7,
        # Existing tests expect bills to complete on their own; confirmation tests pass
        # confirmation="required" (or use a "confirm" openid).
        "confirmation": "preauthorized",
    }
    values.update(overrides)
    return SandboxConfig(**values)


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve an aiohttp app on 127.0.0.1 and a free port; yields its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await asyncio.wait_for(runner.cleanup(), timeout=10)


@asynccontextmanager
async def running_sandbox(config: SandboxConfig) -> AsyncIterator[tuple[str, web.Application]]:
    app = build_app(config)
    async with serve(app) as base_url:
        yield base_url, app


@dataclass
class Receiver:
    """A tiny callback receiver answering a scripted sequence of status codes."""

    statuses: list[int]
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 204
        return web.Response(status=status)

    async def wait_for(self, count: int, within: float = 5.0) -> None:
        await wait_until(lambda: len(self.received) >= count, within)


@asynccontextmanager
async def running_receiver(statuses: Iterable[int] = ()) -> AsyncIterator[Receiver]:
    receiver = Receiver(list(statuses))
    app = web.Application()
    app.router.add_post("/wechat/notify", receiver.handle)
    async with serve(app) as base_url:
        receiver.url = f"{base_url}/wechat/notify"
        yield receiver


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``predicate`` (state lives in other tasks and servers) for at most ``within`` s."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polling foreign state, bounded
            await asyncio.sleep(0.02)
