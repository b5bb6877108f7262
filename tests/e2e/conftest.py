"""End-to-end fixtures: the real gateway, both sandboxes, Redis and a database, over HTTP.

Everything runs as separate processes started by the same launcher `make run` uses
(`paymux.devstack.Stack`); nothing of ours is mocked.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from paymux.devstack import Stack, free_port
from tests.support import fresh_database_url

FAST_SANDBOX = [
    "--delay-seconds",
    "1.0",
    "--hang-seconds",
    "6",
    "--notify-schedule",
    "0.3,0.5,1,1,2,2",
]

# Payees confirm only when their openid says so ("confirm"): the other tests expect WeChat
# transfers to complete on their own, as in the pre-authorised mode (免确认收款授权).
FAST_WECHAT_SANDBOX = [*FAST_SANDBOX, "--confirmation", "preauthorized"]


def make_stack(tmp: Any, redis_url: str, **gateway_env: str) -> Stack:
    env = {
        "PAYMUX_SYNC_INTERVAL_SECONDS": "0.2",
        "PAYMUX_SYNC_FIRST_DELAY_SECONDS": "0.3",
        "PAYMUX_SYNC_MAX_DELAY_SECONDS": "2",
        "PAYMUX_CHANNEL_CALL_TIMEOUT_SECONDS": "8",
        "PAYMUX_PENDING_RECOVERY_AGE_SECONDS": "30",
        "PAYMUX_WEBHOOK_ALLOW_HTTP": "true",
        "PAYMUX_WEBHOOK_ALLOW_PRIVATE": "true",
        "PAYMUX_LOG_LEVEL": "warning",
        "PAYMUX_DATABASE_POOL_SIZE": "5",
        # Every stack of a session shares one Redis and one client address (127.0.0.1):
        # tests that send wrong keys on purpose must not lock later tests out. The limit
        # itself is tested in tests/store/test_store_access.py.
        "PAYMUX_AUTH_FAILURE_LIMIT": "100000",
    }
    env.update(gateway_env)
    timeouts = {
        "timeout_seconds": 2.0,
        "retry_attempts": 3,
        "retry_initial_seconds": 0.05,
    }
    return Stack(
        data_dir=tmp,
        database_url=fresh_database_url(tmp),
        redis_url=redis_url,
        gateway_port=free_port(),
        sandbox_ports={"alipay": free_port(), "wechat": free_port()},
        sandbox_args={"alipay": FAST_SANDBOX, "wechat": FAST_WECHAT_SANDBOX},
        gateway_env=env,
        channel_overrides={"alipay": dict(timeouts), "wechat": dict(timeouts)},
        admin_key="ak_test_" + uuid.uuid4().hex,
        quiet=True,
        # `paymux serve`, able to crash at a hook point (PAYMUX_FAULT_INJECTION=crash_<point>).
        gateway_argv=[sys.executable, "-m", "tests.crash_gateway"],
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    s = make_stack(tmp_path_factory.mktemp("e2e"), redis_url)
    try:
        s.start_sandboxes()
        s.start_gateway()
        s.wait_gateway()
        yield s
    finally:
        s.stop_all()


@dataclass
class Api:
    """A merchant's (or the operator's) HTTP client against the running gateway."""

    client: httpx.Client
    merchant_id: str | None = None

    def transfer(self, body: dict[str, Any], key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Idempotency-Key": key or uuid.uuid4().hex}
        return self.client.post("/v1/transfers", json=body, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)


def admin_client(stack: Stack) -> httpx.Client:
    return httpx.Client(
        base_url=stack.gateway_url,
        timeout=30,
        headers={"Authorization": f"Bearer {stack.admin_key}"},
    )


def new_merchant(stack: Stack, funds: int = 10_000_000, name: str = "Test merchant") -> Api:
    admin = admin_client(stack)
    created = admin.post("/v1/merchants", json={"name": name})
    assert created.status_code == 201, created.text
    body = created.json()
    if funds:
        topup = admin.post(
            f"/v1/merchants/{body['id']}/topups",
            json={"amount": funds, "currency": "CNY"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert topup.status_code == 201, topup.text
    client = httpx.Client(
        base_url=stack.gateway_url,
        timeout=30,
        headers={"Authorization": f"Bearer {body['secret_key']}"},
    )
    return Api(client=client, merchant_id=body["id"])


@pytest.fixture
def merchant(stack: Stack) -> Api:
    return new_merchant(stack)


@pytest.fixture
def admin(stack: Stack) -> Iterator[httpx.Client]:
    with admin_client(stack) as client:
        yield client
