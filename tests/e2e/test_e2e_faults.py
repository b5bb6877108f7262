"""The retry contract over real HTTP when a gateway dies mid-request or Redis goes away.

A merchant's client retries with the same key and body; it must get, within a bounded
time, the original outcome or a retryable 409/503 with Retry-After, never a 500 and never a
second transfer (docs/RELIABILITY.md).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from paymux.devstack import free_port, wait_http
from paymux.redis_embedded import EmbeddedRedis
from tests.crash_gateway import CRASH_EXIT_CODE
from tests.e2e.conftest import Api, make_stack, new_merchant
from tests.e2e.test_e2e_transfers import body, payee, sandbox_orders, wait_status
from tests.faultproxy import FaultProxy
from tests.support import fresh_database_url

RETRYABLE = {409, 503}


def retry_until_answered(
    api: Api, request: dict[str, Any], key: str, *, give_up_after: float
) -> tuple[httpx.Response, float, list[int]]:
    """Behave like a merchant's client: same key and body on no answer, 409 or 503."""
    started = time.monotonic()
    seen: list[int] = []
    while time.monotonic() - started < give_up_after:
        try:
            resp = api.transfer(request, key=key, timeout=10)
        except httpx.HTTPError:
            seen.append(0)
            time.sleep(0.2)
            continue
        seen.append(resp.status_code)
        if resp.status_code not in RETRYABLE:
            return resp, time.monotonic() - started, seen
        assert resp.headers.get("retry-after"), resp.text
        time.sleep(0.2)
    raise AssertionError(f"no answer for key {key} after {give_up_after}s: {seen[-10:]}")


def test_a_retry_after_the_gateway_died_mid_request_gets_the_original_transfer(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> None:
    stack = make_stack(tmp_path_factory.mktemp("crash-lease"), redis_url)
    try:
        stack.start_sandboxes()
        # This gateway dies (like kill -9) after the pending row commits, holding the key.
        proc = stack.start_gateway(PAYMUX_FAULT_INJECTION="crash_after_pending")
        stack.wait_gateway()
        # A second replica on the same database and Redis, as behind a load balancer.
        other_port = free_port()
        other = stack._popen(
            "gateway-2",
            [sys.executable, "-m", "paymux", "serve"],
            {**stack.gateway_environment(), "PAYMUX_PORT": str(other_port)},
        )
        wait_http(f"http://127.0.0.1:{other_port}/readyz", proc=other)
        api = new_merchant(stack)
        replica = Api(
            client=httpx.Client(
                base_url=f"http://127.0.0.1:{other_port}",
                timeout=30,
                headers={"Authorization": api.client.headers["Authorization"]},
            )
        )
        key = uuid.uuid4().hex
        request = body(payee("alipay_account", "lease@example.com"), amount=4321)
        with pytest.raises(httpx.HTTPError):
            api.transfer(request, key=key)
        assert proc.wait(10) == CRASH_EXIT_CODE
        # The old in-flight lock held the key for 60 s (409 all along, then a 500 on
        # SQLite); the lease frees it within PAYMUX_IDEMPOTENCY_LOCK_SECONDS (5 s). The
        # bound below only keeps a broken build from hanging the suite.
        resp, answered_after, seen = retry_until_answered(replica, request, key, give_up_after=45)
        print(f"retry on the other replica after kill -9 answered in {answered_after:.1f}s: {seen}")
        assert resp.status_code == 201, resp.text
        assert 500 not in seen
        transfer = resp.json()
        listed = replica.get("/v1/transfers", params={"limit": 100}).json()["data"]
        assert [t["id"] for t in listed] == [transfer["id"]]
        # A restarted gateway recovers the pending transfer (same reference); a replay then
        # answers its current state.
        stack.start_gateway()
        deadline = time.monotonic() + 60
        while transfer["status"] != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.3)
            transfer = replica.transfer(request, key=key).json()
        assert transfer["status"] == "succeeded", transfer
        assert len(sandbox_orders(stack, "alipay", transfer["channel_reference"])) == 1
    finally:
        stack.stop_all()


def test_redis_down_is_503_with_retry_after_and_heals(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("redis-outage")
    port = free_port()
    redis = EmbeddedRedis(tmp / "redis", port=port, persistence=False)
    stack = make_stack(tmp, redis.start())
    try:
        stack.start_sandboxes()
        stack.start_gateway()
        stack.wait_gateway()
        api = new_merchant(stack)
        redis.stop()
        key = uuid.uuid4().hex
        request = body(payee("wechat_openid", "o_redis_outage"), amount=2222)
        down = api.transfer(request, key=key)
        assert down.status_code == 503, down.text
        assert down.headers["content-type"] == "application/problem+json"
        assert down.json()["code"] == "service_unavailable"
        assert int(down.headers["retry-after"]) >= 1
        ready = api.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"] != "ok"
        assert ready.json()["checks"]["database"] == "ok"
        assert api.get("/healthz").status_code == 200
        assert api.get("/v1/transfers").json()["data"] == []  # nothing half-written
        redis = EmbeddedRedis(tmp / "redis", port=port, persistence=False)
        redis.start()
        resp, _, seen = retry_until_answered(api, request, key, give_up_after=30)
        assert resp.status_code == 201, resp.text
        assert 500 not in seen
        assert [t["id"] for t in api.get("/v1/transfers").json()["data"]] == [resp.json()["id"]]
    finally:
        stack.stop_all()
        redis.stop()


@pytest.mark.skipif(
    not os.environ.get("PAYMUX_TEST_DATABASE_URL"),
    reason="PostgreSQL outages: runs in the PostgreSQL pass (SQLite is a local file)",
)
def test_postgresql_blackholed_then_cut_answers_503_fast_and_heals(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> None:
    tmp = tmp_path_factory.mktemp("pg-outage")
    real = make_url(fresh_database_url(tmp))
    proxy = FaultProxy(real.host or "127.0.0.1", real.port or 5432)
    proxy.start()
    stack = make_stack(
        tmp,
        redis_url,
        PAYMUX_DATABASE_CONNECT_TIMEOUT_SECONDS="1",
        PAYMUX_DATABASE_STATEMENT_TIMEOUT_SECONDS="2",
        PAYMUX_DATABASE_POOL_TIMEOUT_SECONDS="1",
    )
    stack.database_url = real.set(port=proxy.port).render_as_string(hide_password=False)
    try:
        stack.start_sandboxes()
        stack.start_gateway()
        stack.wait_gateway()
        api = new_merchant(stack)
        assert api.transfer(body(payee("alipay_account", "pg-ok@example.com"))).status_code == 201
        keys: dict[str, dict[str, Any]] = {}
        for mode in ("blackhole", "cut"):
            proxy.set_mode(mode)
            key = uuid.uuid4().hex
            keys[key] = body(payee("alipay_account", f"pg-{mode}@example.com"), amount=3333)
            started = time.monotonic()
            down = api.transfer(keys[key], key=key, timeout=60)
            took = time.monotonic() - started
            ready = api.get("/readyz", timeout=60)
            print(f"PostgreSQL {mode}: 503 after {took:.1f}s")
            assert down.status_code == 503, down.text
            assert down.json()["code"] == "service_unavailable"
            assert down.headers["retry-after"]
            assert ready.status_code == 503 and ready.json()["checks"]["database"] != "ok"
            assert ready.json()["checks"]["redis"] == "ok"
            assert api.get("/healthz").status_code == 200
        proxy.set_mode("pass")
        for key, request in keys.items():
            resp, _, seen = retry_until_answered(api, request, key, give_up_after=60)
            assert resp.status_code == 201, resp.text
            assert 500 not in seen
        listed = api.get("/v1/transfers", params={"limit": 100}).json()["data"]
        assert len(listed) == 3  # one per key, nothing doubled or half-written
        assert {t["amount"] for t in listed} == {1234, 3333}
    finally:
        stack.stop_all()
        proxy.stop()


def test_a_dead_channel_opens_its_circuit_parks_transfers_and_sends_each_once_later(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> None:
    stack = make_stack(
        tmp_path_factory.mktemp("circuit"),
        redis_url,
        PAYMUX_CIRCUIT_FAILURE_THRESHOLD="2",
        PAYMUX_CIRCUIT_OPEN_SECONDS="2",
    )
    try:
        stack.start_sandboxes()
        stack.start_gateway()
        stack.wait_gateway()
        api = new_merchant(stack)
        admin = httpx.Client(
            base_url=stack.gateway_url,
            timeout=30,
            headers={"Authorization": f"Bearer {stack.admin_key}"},
        )
        stack.stop("sandbox-alipay")  # connections refused from now on
        ids = []
        for n in range(2):  # no answer twice: the circuit opens
            t = api.transfer(body(payee("alipay_account", f"cut{n}@example.com"))).json()
            assert t["status"] == "processing", t
            ids.append(t["id"])
        assert api.get("/readyz").json()["checks"]["channels"]["alipay"] == "open"
        metrics = admin.get("/metrics").text
        assert 'paymux_channel_circuit_state{channel="alipay"} 2.0' in metrics
        parked = api.transfer(body(payee("alipay_account", "parked@example.com")))
        assert parked.status_code == 201, parked.text
        view = parked.json()
        assert view["status"] == "pending"
        assert view["status_reason"] == "queued_for_send"
        assert view["channel_circuit"] == "open"
        ids.append(view["id"])
        wechat = api.transfer(body(payee("wechat_openid", "o_other_channel"))).json()
        assert wechat["status"] == "succeeded"  # one channel's circuit is its own
        stack.start_sandbox("alipay")
        for transfer_id in ids:
            done = wait_status(api, transfer_id, "succeeded", timeout=60)
            assert len(sandbox_orders(stack, "alipay", done["channel_reference"])) == 1
        assert api.get("/readyz").json()["checks"]["channels"]["alipay"] == "closed"
    finally:
        stack.stop_all()
