"""Idempotency over real HTTP: one key, one transfer, one channel order, whatever the race."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from paymux.devstack import Stack
from tests.e2e.conftest import Api, new_merchant
from tests.e2e.test_e2e_transfers import body, payee, sandbox_orders


def test_fifty_concurrent_posts_one_key(stack: Stack, merchant: Api) -> None:
    key = f"race-{uuid.uuid4().hex}"
    # "delay" keeps the first request in flight a little, so the race is real.
    request = body(payee("alipay_account", "alice@example.com"), amount=777)
    auth = merchant.client.headers["Authorization"]

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=stack.gateway_url, timeout=30, headers={"Authorization": auth}
        ) as client:
            return await asyncio.gather(
                *(
                    client.post("/v1/transfers", json=request, headers={"Idempotency-Key": key})
                    for _ in range(50)
                )
            )

    responses = asyncio.run(fire())
    statuses = sorted({r.status_code for r in responses})
    assert set(statuses) <= {201, 409}, statuses
    created = [r.json() for r in responses if r.status_code == 201]
    assert created
    assert len({t["id"] for t in created}) == 1
    for r in responses:
        if r.status_code == 409:
            assert r.json()["code"] == "idempotency_request_in_flight"
    transfer = created[0]
    listed = merchant.get("/v1/transfers", params={"limit": 100}).json()["data"]
    assert [t["id"] for t in listed if t["amount"] == 777] == [transfer["id"]]
    assert len(sandbox_orders(stack, "alipay", transfer["channel_reference"])) == 1
    # Balance was held exactly once.
    txns = merchant.get("/v1/balance_transactions", params={"limit": 100}).json()["data"]
    assert len([t for t in txns if t["source"] == transfer["id"] and t["type"] == "hold"]) == 1


def test_replay_and_reuse(merchant: Api) -> None:
    key = f"k-{uuid.uuid4().hex}"
    first = merchant.transfer(body(payee("alipay_account", "bob@example.com")), key=key)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    again = merchant.transfer(body(payee("alipay_account", "bob@example.com")), key=key)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    other = merchant.transfer(body(payee("alipay_account", "bob@example.com"), amount=999), key=key)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


def test_keys_are_scoped_per_merchant(stack: Stack, merchant: Api) -> None:
    other = new_merchant(stack, name="Scoped")
    key = f"shared-{uuid.uuid4().hex}"
    a = merchant.transfer(body(payee("alipay_account", "c@example.com")), key=key).json()
    b = other.transfer(body(payee("alipay_account", "c@example.com")), key=key).json()
    assert a["id"] != b["id"]
