"""The retry contract (docs/RELIABILITY.md) in-process, on the real database and Redis.

A request retried with the same key and body gets the original outcome or a retryable
error (409/503 with Retry-After), never a 500 and never a second transfer: whatever the
driver raises, whichever dependency is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, insert, select

from paymux.channels.base import ChannelResult, TransferOrder
from paymux.devstack import free_port
from paymux.domain.circuit import CircuitPolicy, CircuitState
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType
from paymux.service.bootstrap import make_redis
from paymux.service.circuits import ChannelCircuits
from paymux.service.errors import IdempotencyKeyReused
from paymux.service.gateway import Gateway
from paymux.service.merchants import create_merchant
from paymux.service.sync import _due, resolve_one
from paymux.service.transfers import NewTransfer, apply_result, create_transfer
from paymux.settings import Settings
from paymux.store.db import Database, Timeouts
from paymux.store.errors import UniqueViolation
from paymux.store.idempotency import IdempotencyStore
from paymux.store.tables import merchants, transfers
from tests.store.store_support import bearer, merchant_balances, topup


def _body(amount: int = 1500, outcome: str = "succeeded") -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "CNY",
        "payee": {"type": "alipay_account", "account": "payee@example.com", "name": "Zhang San"},
        "description": outcome,  # the scripted channel answers this outcome
    }


async def _merchant(gw: Gateway, funds: int = 1_000_000) -> tuple[str, dict[str, str]]:
    row, secret = await create_merchant(gw, "retry contract")
    await topup(gw, row["id"], funds)
    return str(row["id"]), bearer(secret)


async def _count_transfers(gw: Gateway, merchant_id: str) -> int:
    async with gw.db.read() as conn:
        stmt = select(func.count()).select_from(transfers)
        return int(
            (await conn.execute(stmt.where(transfers.c.merchant_id == merchant_id))).scalar_one()
        )


async def _post(
    api: httpx.AsyncClient, auth: dict[str, str], key: str, body: dict[str, Any]
) -> httpx.Response:
    return await api.post("/v1/transfers", json=body, headers={**auth, "Idempotency-Key": key})


# --- break 1: the unique (merchant, key) is the final authority, whatever the driver ----------


async def test_retry_after_the_redis_record_is_lost_answers_the_original(
    gw: Gateway, api: httpx.AsyncClient
) -> None:
    merchant_id, auth = await _merchant(gw)
    key = uuid.uuid4().hex
    first = await _post(api, auth, key, _body())
    assert first.status_code == 201, first.text
    # The record is gone (TTL, Redis data loss, an expired in-flight lease after a crash).
    await gw.redis.delete(gw.idempotency.record_key(merchant_id, key))
    again = await _post(api, auth, key, _body())
    assert again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "succeeded"
    assert again.headers["idempotent-replayed"] == "true"
    assert await _count_transfers(gw, merchant_id) == 1
    # Lost again, and a different body under the key: 422, not a second transfer.
    await gw.redis.delete(gw.idempotency.record_key(merchant_id, key))
    other = await _post(api, auth, key, _body(amount=999))
    assert other.status_code == 422, other.text
    assert other.json()["code"] == "idempotency_key_reused"
    assert await _count_transfers(gw, merchant_id) == 1


async def test_a_second_create_with_the_key_returns_the_first_on_every_write_path(
    gw: Gateway,
) -> None:
    """The service's create path (raw sqlite3 on SQLite, one autocommit statement on
    PostgreSQL) and the top-up path (SQLAlchemy) both meet the unique key as one error."""
    merchant_id, _ = await _merchant(gw)
    req = NewTransfer(
        amount=100,
        currency="CNY",
        payee_type="alipay_account",
        payee_account="payee@example.com",
        payee_name=None,
        channel=None,
        description="succeeded",
    )
    first = await create_transfer(gw, merchant_id, "k-dup", "fp-1", req)
    second = await create_transfer(gw, merchant_id, "k-dup", "fp-1", req)
    assert second.replayed and second.transfer.id == first.transfer.id
    with pytest.raises(IdempotencyKeyReused):
        await create_transfer(gw, merchant_id, "k-dup", "fp-2", req)
    assert await _count_transfers(gw, merchant_id) == 1


async def test_unique_violations_are_one_store_error_in_every_scope(gw: Gateway) -> None:
    merchant_id, _ = await _merchant(gw, funds=1)
    async with gw.db.read() as conn:
        existing = (
            (await conn.execute(select(merchants).where(merchants.c.id == merchant_id)))
            .mappings()
            .one()
        )
    row = {**dict(existing), "key_hash": uuid.uuid4().hex}
    stmt = insert(merchants).values(**row)
    with pytest.raises(UniqueViolation):
        await gw.db.run_write(lambda conn: conn.execute(stmt))
    with pytest.raises(UniqueViolation):
        async with gw.db.write() as conn:
            await conn.execute(stmt)
    if not gw.db.is_sqlite:  # the bare asyncpg connection of PostgreSQL's fast path
        dup = (merchant_id, "dup", uuid.uuid4().hex, "x", True, existing["created_at"])

        async def raw_pg(conn: Any) -> None:
            await conn.execute(
                "INSERT INTO merchants (id, name, key_hash, key_hint, active, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                *dup,
            )

        with pytest.raises(UniqueViolation):
            await gw.db.run_on_driver(raw_pg)
    if gw.db.is_sqlite:  # the bare driver of the SQLite fast path
        sql = (
            "INSERT INTO merchants (id, name, key_hash, key_hint, active, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
        )
        params = (merchant_id, "dup", uuid.uuid4().hex, "x", 1, "2026-01-01 00:00:00.000000")

        def raw(conn: Any) -> None:
            conn.connection.driver_connection.execute(sql, params)

        with pytest.raises(UniqueViolation):
            await gw.db.run_write(raw)


# --- a replay answers the transfer's current state, not a stale snapshot ----------------------


async def test_replay_of_a_processing_snapshot_answers_the_current_state(
    gw: Gateway, api: httpx.AsyncClient
) -> None:
    _, auth = await _merchant(gw)
    key = uuid.uuid4().hex
    first = await _post(api, auth, key, _body(outcome="processing"))
    assert first.status_code == 201 and first.json()["status"] == "processing", first.text
    again = await _post(api, auth, key, _body(outcome="processing"))
    assert again.json()["status"] == "processing"
    await apply_result(gw, first.json()["id"], ChannelResult(Outcome.SUCCEEDED), source="test")
    later = await _post(api, auth, key, _body(outcome="processing"))
    assert later.status_code == 201
    assert later.headers["idempotent-replayed"] == "true"
    assert later.json()["id"] == first.json()["id"]
    assert later.json()["status"] == "succeeded"


# --- break 3: outages answer 503 with Retry-After, nothing half-written -----------------------


@contextlib.contextmanager
def swapped(gw: Gateway, **attrs: Any) -> Iterator[None]:
    saved = {name: getattr(gw, name) for name in attrs}
    for name, value in attrs.items():
        setattr(gw, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(gw, name, value)


@contextlib.asynccontextmanager
async def blackhole() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never answers (a frozen or cut-off peer)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for w in held:
            w.close()
        server.close()


def _dead_redis(port: int) -> IdempotencyStore:
    settings = Settings(redis_command_timeout_seconds=0.5, redis_connect_timeout_seconds=0.5)
    return IdempotencyStore(make_redis(f"redis://127.0.0.1:{port}", settings))


def _assert_unavailable(resp: httpx.Response) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["code"] == "service_unavailable"
    assert int(resp.headers["retry-after"]) >= 1


@pytest.mark.parametrize("fault", ["refused", "blackholed"])
async def test_redis_outage_is_503_and_moves_no_money(
    gw: Gateway, api: httpx.AsyncClient, fault: str
) -> None:
    merchant_id, auth = await _merchant(gw)
    async with blackhole() as hole:
        port = free_port() if fault == "refused" else hole
        with swapped(gw, idempotency=_dead_redis(port)):
            resp = await _post(api, auth, uuid.uuid4().hex, _body())
    _assert_unavailable(resp)
    assert await _count_transfers(gw, merchant_id) == 0


@pytest.mark.parametrize("fault", ["refused", "blackholed"])
async def test_database_outage_is_503(gw: Gateway, api: httpx.AsyncClient, fault: str) -> None:
    merchant_id, auth = await _merchant(gw)
    await _post(api, auth, uuid.uuid4().hex, _body())  # the merchant's key is now cached
    async with blackhole() as hole:
        port = free_port() if fault == "refused" else hole
        dead = Database(
            f"postgresql+asyncpg://postgres@127.0.0.1:{port}/paymux",
            timeouts=Timeouts(connect=0.5, statement=0.5, pool=0.5),
        )
        key = uuid.uuid4().hex
        try:
            with swapped(gw, db=dead):
                resp = await _post(api, auth, key, _body())
                ready = await api.get("/readyz")
                live = await api.get("/healthz")
        finally:
            await dead.dispose()
    _assert_unavailable(resp)
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] != "ok"
    assert ready.json()["checks"]["redis"] == "ok"
    assert live.status_code == 200
    # The key was released: the same request now succeeds, once.
    again = await _post(api, auth, key, _body())
    assert again.status_code == 201, again.text
    assert await _count_transfers(gw, merchant_id) == 2


async def test_readyz_reports_each_dependency_and_channel(
    gw: Gateway, api: httpx.AsyncClient
) -> None:
    ok = await api.get("/readyz")
    assert ok.status_code == 200
    checks = ok.json()["checks"]
    assert checks["database"] == "ok" and checks["redis"] == "ok"
    assert checks["channels"] == {"alipay": "closed", "wechat": "closed"}
    async with blackhole() as hole:
        with swapped(gw, redis=Redis(host="127.0.0.1", port=hole, socket_timeout=30)):
            slow = await api.get("/readyz")  # its own time limit, not the socket's
    assert slow.status_code == 503
    assert slow.json()["checks"]["redis"] == "timeout"
    assert slow.headers["retry-after"]


# --- the per-channel circuit breaker parks transfers, and they are sent once later -----------


class FlakyChannel:
    """A fake of the outside channel that can be down (no answer) or up (dedupes on the
    reference, like Alipay's out_biz_no)."""

    name = "alipay"
    account_id = "fake"
    payee_types = frozenset({PayeeType.ALIPAY_ACCOUNT, PayeeType.BANK_CARD})

    def __init__(self) -> None:
        self.up = False
        self.calls: list[str] = []
        self.orders: set[str] = set()

    async def send(self, order: TransferOrder) -> ChannelResult:
        self.calls.append(order.reference)
        if not self.up:
            return ChannelResult(Outcome.PROCESSING)  # no answer seen
        self.orders.add(order.reference)
        return ChannelResult(Outcome.SUCCEEDED, f"O{order.reference}", raw_status="SUCCESS")

    async def query(self, order: TransferOrder) -> ChannelResult:
        if not self.up:
            return ChannelResult(Outcome.PROCESSING)
        if order.reference not in self.orders:
            return ChannelResult(Outcome.NOT_FOUND, raw_status="ORDER_NOT_EXIST")
        return ChannelResult(Outcome.SUCCEEDED, f"O{order.reference}", raw_status="SUCCESS")

    def parse_notification(self, headers: Any, body: bytes) -> Any:
        raise NotImplementedError

    def notification_ack(self, ok: bool) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


async def test_open_circuit_parks_new_transfers_and_the_sync_loop_sends_each_once(
    gw: Gateway, api: httpx.AsyncClient, clock: Callable[[datetime], None]
) -> None:
    merchant_id, auth = await _merchant(gw)
    channel = FlakyChannel()
    ticks = [0.0]
    circuits = ChannelCircuits(CircuitPolicy(failure_threshold=2, open_seconds=5), lambda: ticks[0])
    with swapped(gw, circuits=circuits, channels={**gw.channels, "alipay": channel}):
        for _ in range(2):  # two calls with no answer: the circuit opens
            sent = await _post(api, auth, uuid.uuid4().hex, _body())
            assert sent.json()["status"] == "processing"
        assert circuits.state("alipay") is CircuitState.open
        assert len(channel.calls) == 2
        ready = (await api.get("/readyz")).json()["checks"]["channels"]
        assert ready["alipay"] == "open" and ready["wechat"] == "closed"

        key = uuid.uuid4().hex
        parked = await _post(api, auth, key, _body())
        assert parked.status_code == 201, parked.text
        view = parked.json()
        assert view["status"] == "pending"
        assert view["status_reason"] == "queued_for_send"
        assert view["channel_circuit"] == "open"
        assert len(channel.calls) == 2  # answered at once, not sent
        detail = (await api.get(f"/v1/transfers/{view['id']}", headers=auth)).json()
        assert detail["channel_circuit"] == "open"
        _available, held = await merchant_balances(gw, merchant_id)
        assert held == 3 * (1500 + view["fee"])  # parked, but held like any other

        now = datetime.now(UTC)
        clock(now)
        assert view["id"] not in [t.id for t in await _due(gw, now, now)]
        # The channel comes back; once open_seconds pass, the parked send is the probe.
        channel.up = True
        ticks[0] = 5.0
        later = now + timedelta(seconds=6)
        clock(later)
        due = [t for t in await _due(gw, later, later) if t.id == view["id"]]
        assert len(due) == 1
        await resolve_one(gw, due[0])
        assert circuits.state("alipay") is CircuitState.closed
        assert channel.calls.count(view["channel_reference"]) == 1
        replay = await _post(api, auth, key, _body())
        assert replay.json()["status"] == "succeeded"
        assert "status_reason" not in replay.json()
        # Once sent, never again: it is no longer due.
        assert view["id"] not in [t.id for t in await _due(gw, later, later)]
