"""Every Lua script the gateway runs keeps its keys on one Redis Cluster hash slot, so the
same code runs on a Cluster (docs/SCALING.md). Checked on the commands actually sent while
merchants and operators use their keys, not on a list of key names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis.crc import key_slot

from paymux.domain.access import Principal, Role
from paymux.service import access
from paymux.service.gateway import Gateway
from paymux.service.merchants import create_merchant
from tests.store.store_support import bearer

ADMIN = Principal("key_admin_env", "operator", None, role=Role.admin)


@pytest.fixture
def scripts_sent(gw: Gateway) -> Iterator[list[tuple[str, ...]]]:
    """The keys of every EVALSHA the gateway's Redis client sends during the test."""
    client: Any = gw.redis
    send = client.execute_command
    seen: list[tuple[str, ...]] = []

    async def spy(*args: Any, **options: Any) -> Any:
        if args and str(args[0]).upper() == "EVALSHA":
            numkeys = int(args[2])
            seen.append(tuple(str(k) for k in args[3 : 3 + numkeys]))
        return await send(*args, **options)

    client.execute_command = spy
    try:
        yield seen
    finally:
        client.execute_command = send


async def test_an_operators_top_up_claims_on_one_slot(
    gw: Gateway, api: httpx.AsyncClient, scripts_sent: list[tuple[str, ...]]
) -> None:
    """Regression: an operator key's admission ({operators}) was folded into the claim of
    a top-up record tagged {ops-<merchant>}: two slots in one script (CROSSSLOT)."""
    merchant, merchant_secret = await create_merchant(gw, "slots", ADMIN)
    _, _, secret = await access.create_operator(gw, ADMIN, "slots", Role.operator)
    for _ in range(3):  # the first request loads the key; later ones defer its admission
        resp = await api.post(
            f"/v1/merchants/{merchant['id']}/topups",
            json={"amount": 100_000, "currency": "CNY"},
            headers={**bearer(secret), "Idempotency-Key": uuid.uuid4().hex},
        )
        assert resp.status_code == 201, resp.text
    payee = {"type": "alipay_account", "account": "slots@example.com", "name": "Zhang San"}
    for _ in range(3):  # and a merchant's own transfers, admission folded into the claim
        resp = await api.post(
            "/v1/transfers",
            json={"amount": 1_000, "currency": "CNY", "payee": payee},
            headers={**bearer(merchant_secret), "Idempotency-Key": uuid.uuid4().hex},
        )
        assert resp.status_code == 201, resp.text
    assert any(len(keys) > 1 for keys in scripts_sent)
    crossing = [keys for keys in scripts_sent if len({key_slot(k.encode()) for k in keys}) > 1]
    assert not crossing
