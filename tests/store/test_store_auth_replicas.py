"""Merchant authentication across gateway replicas: two app instances share one database
and one Redis (a private one, so it can be flushed). A key change made through one takes
effect on the other's very next request; a cached key costs no SQL statement; Redis losing
its data sends authentication back to the database, never to "allow"."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis

from paymux.api.app import create_app
from paymux.channels.base import Outcome
from paymux.domain.access import Principal, Role
from paymux.redis_embedded import EmbeddedRedis
from paymux.service import access
from paymux.service.bootstrap import build_gateway, close_gateway
from paymux.service.gateway import Gateway, utcnow
from paymux.service.merchants import MerchantAuth, create_merchant
from paymux.service.transfers import get_transfer
from paymux.settings import Settings
from tests.store.store_support import bearer, fake_channels, topup, transfer

_ACCESS_TABLES = r"\b(api_keys|operators|merchant_rate_limits)\b"
ADMIN = Principal("key_admin_env", "operator", None, role=Role.admin)


@dataclass
class Replica:
    gw: Gateway
    api: httpx.AsyncClient


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("replica-redis"), persistence=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def replicas(store_settings: Settings, private_redis: str) -> AsyncIterator[list[Replica]]:
    settings = store_settings.model_copy(update={"redis_url": private_redis})
    built: list[Replica] = []
    try:
        for _ in range(2):
            gw = await build_gateway(settings)
            gw.channels = fake_channels()
            app = create_app(settings)
            app.state.gateway = gw
            app.state.merchant_auth = MerchantAuth(gw)
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://paymux.test"
            )
            built.append(Replica(gw, client))
        yield built
    finally:
        for replica in built:
            await replica.api.aclose()
            await close_gateway(replica.gw)


@pytest.fixture
def clocks(replicas: list[Replica]) -> Iterator[Callable[[datetime], None]]:
    def set_clock(at: datetime) -> None:
        for replica in replicas:
            replica.gw.clock = lambda: at

    try:
        yield set_clock
    finally:
        for replica in replicas:
            replica.gw.clock = utcnow


async def _merchant(gw: Gateway) -> tuple[str, str]:
    row, secret = await create_merchant(gw, "replica test", ADMIN)
    return str(row["id"]), secret


async def _key_id(replica: Replica, secret: str) -> str:
    listed = await replica.api.get("/v1/api_keys", headers=bearer(secret))
    assert listed.status_code == 200, listed.text
    keys = listed.json()["data"]
    assert len(keys) == 1
    return str(keys[0]["id"])


async def _status(replica: Replica, secret: str) -> int:
    return (await replica.api.get("/v1/transfers", headers=bearer(secret))).status_code


async def test_a_revoked_key_is_refused_by_the_other_replica_on_its_next_request(
    replicas: list[Replica],
) -> None:
    a, b = replicas
    _, secret = await _merchant(a.gw)
    key_id = await _key_id(a, secret)
    assert await _status(a, secret) == 200 and await _status(b, secret) == 200  # both cached
    revoked = await a.api.post(f"/v1/api_keys/{key_id}/revoke", headers=bearer(secret))
    assert revoked.status_code == 200, revoked.text
    refused = await b.api.get("/v1/transfers", headers=bearer(secret))
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert await _status(a, secret) == 401


async def test_a_rolled_key_works_on_both_replicas_until_its_overlap_ends(
    replicas: list[Replica], clocks: Callable[[datetime], None]
) -> None:
    a, b = replicas
    _, old_secret = await _merchant(a.gw)
    key_id = await _key_id(a, old_secret)
    assert await _status(b, old_secret) == 200  # cached on b before the roll
    rolled = await a.api.post(
        f"/v1/api_keys/{key_id}/roll", headers=bearer(old_secret), json={"overlap_seconds": 600}
    )
    assert rolled.status_code == 200, rolled.text
    new_secret = rolled.json()["new"]["secret"]
    ends = datetime.fromisoformat(rolled.json()["old"]["expires_at"])
    clocks(ends - timedelta(seconds=1))
    for replica in replicas:
        assert await _status(replica, old_secret) == 200
        assert await _status(replica, new_secret) == 200
    clocks(ends)
    for replica in replicas:
        assert await _status(replica, old_secret) == 401
        assert await _status(replica, new_secret) == 200


async def test_after_redis_loses_its_data_a_revocation_still_takes_effect(
    replicas: list[Replica], private_redis: str
) -> None:
    """Regression: versions were a counter, so after a flush the first change counted up to
    a version a replica still had cached, and the revoked key kept working on it."""
    a, b = replicas
    merchant_id, secret = await _merchant(a.gw)
    key_id = await _key_id(a, secret)
    limited = await a.api.put(
        f"/v1/merchants/{merchant_id}/rate_limit",
        headers=bearer(a.gw.settings.admin_key.get_secret_value()),  # type: ignore[union-attr]
        json={"per_second": 50, "burst": 100},
    )
    assert limited.status_code == 200, limited.text  # a change: the key's version moves
    assert await _status(b, secret) == 200  # b caches the key at that version
    redis = Redis.from_url(private_redis)
    try:
        await redis.flushall()
    finally:
        await redis.aclose()
    await access.revoke_key(a.gw, ADMIN, key_id, merchant_id=None)
    assert await _status(b, secret) == 401
    assert await _status(a, secret) == 401


async def test_after_a_flush_a_cached_key_is_read_again_from_the_database(
    replicas: list[Replica], private_redis: str
) -> None:
    a, _ = replicas
    _, secret = await _merchant(a.gw)
    assert await _status(a, secret) == 200
    before = a.gw.db.counters.statements
    assert await _status(a, secret) == 200
    cached_cost = a.gw.db.counters.statements - before
    redis = Redis.from_url(private_redis)
    try:
        await redis.flushall()
    finally:
        await redis.aclose()
    before = a.gw.db.counters.statements
    assert await _status(a, secret) == 200  # valid in the database: still served
    assert a.gw.db.counters.statements - before > cached_cost  # the key was read again
    before = a.gw.db.counters.statements
    assert await _status(a, secret) == 200
    assert a.gw.db.counters.statements - before == cached_cost  # and is cached again


async def test_a_merchant_reading_a_transfer_costs_only_the_read_itself(
    replicas: list[Replica],
) -> None:
    a, b = replicas
    merchant_id, secret = await _merchant(a.gw)
    await topup(a.gw, merchant_id, 100_000)
    created = await transfer(a.gw, merchant_id, 1_000, Outcome.SUCCEEDED)
    tid = created.transfer.id
    await a.gw.call_log.flush(a.gw.db)  # its buffered write would land inside a count below
    before = a.gw.db.counters.statements
    await get_transfer(a.gw, tid, merchant_id)
    read_itself = a.gw.db.counters.statements - before
    assert read_itself >= 1
    for replica in (a, b):
        first = await replica.api.get(f"/v1/transfers/{tid}", headers=bearer(secret))
        assert first.status_code == 200  # a key this replica has not seen: read once
        seen: list[str] = []
        every: list[str] = []

        def record(statement: str) -> None:
            seen.append(statement)
            every.append(statement)

        # Every statement, whichever driver runs it (the read itself may bypass SQLAlchemy).
        watchers = replica.gw.db.counters.watchers
        watchers.append(record)
        try:
            for _ in range(3):
                before = replica.gw.db.counters.statements
                seen.clear()
                again = await replica.api.get(f"/v1/transfers/{tid}", headers=bearer(secret))
                assert again.status_code == 200
                assert replica.gw.db.counters.statements - before == read_itself, seen
        finally:
            watchers.remove(record)
        assert every and not [s for s in every if re.search(_ACCESS_TABLES, s)]
