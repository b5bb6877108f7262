"""Outbox relay, reconciliation and delivery worker against a real database and Redis.

The database is private to this module (a fresh SQLite file, or a fresh database on the
PostgreSQL server of PAYMUX_TEST_DATABASE_URL), so no running gateway can relay our events.
The receiver is an aiohttp server in the test's event loop that checks signatures with the
public `standardwebhooks` library.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import Connection, select, update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from paymux.api.app import create_app
from paymux.service import webhook_endpoints as svc
from paymux.service.bootstrap import build_gateway, close_gateway
from paymux.service.gateway import Gateway
from paymux.service.merchants import MerchantAuth, create_merchant
from paymux.settings import Settings
from paymux.store.tables import events, webhook_attempts, webhook_deliveries
from paymux.webhooks.relay import reconcile_once, relay_once, schedule_prefix
from paymux.webhooks.schedule import DeliverySchedule
from paymux.webhooks.worker import deliver_one, make_sender
from tests.support import fresh_database_url_async

pytestmark = pytest.mark.timeout(60)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> AsyncIterator[Gateway]:
    tmp = tmp_path_factory.mktemp("relay")
    url = await fresh_database_url_async(tmp)
    settings = Settings(
        data_dir=tmp,
        database_url=url,
        redis_url=redis_url,
        channels_file=tmp / "none.toml",
        fees_file=tmp / "none.toml",
        webhook_allow_http=True,
        webhook_allow_private=True,
        webhook_timeout_seconds=3,
        webhook_retry_schedule=[0, 1, 1],
    )
    gateway = await build_gateway(settings)
    try:
        yield gateway
    finally:
        await close_gateway(gateway)


@pytest_asyncio.fixture(loop_scope="session")
async def schedule(gw: Gateway) -> AsyncIterator[DeliverySchedule]:
    prefix = f"pmxtest-{uuid.uuid4().hex}"
    yield DeliverySchedule(gw.redis, prefix=prefix, lease_seconds=30)
    keys = [k async for k in gw.redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await gw.redis.delete(*keys)


class Receiver:
    """A merchant's endpoint: answers `status`, records what verified with which secret."""

    def __init__(self) -> None:
        self.status = 200
        self.secrets: list[str] = []
        self.received: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        verified = []
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, dict(request.headers))
                verified.append(secret)
            except WebhookVerificationError:
                pass
        self.received.append({"headers": dict(request.headers), "body": body, "verified": verified})
        return web.Response(status=self.status, text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def _merchant(gw: Gateway) -> str:
    row, _ = await create_merchant(gw, "Relay test")
    return str(row["id"])


async def _emit(gw: Gateway, merchant_id: str, event_type: str, n: int = 1) -> list[str]:
    """`n` events committed in one transaction, as a use case emits them."""
    now = gw.clock()

    def write(conn: Connection) -> list[str]:
        return [
            gw.outbox.emit(
                conn,
                merchant_id=merchant_id,
                event_type=event_type,
                obj={"id": f"tr_{uuid.uuid4().hex[:20]}", "object": "transfer", "amount": 100},
                now=now,
            )
            for _ in range(n)
        ]

    return await gw.db.run_write(write)


async def _drain(gw: Gateway, schedule: DeliverySchedule) -> None:
    while await relay_once(gw, schedule, batch_size=7):
        pass


async def _deliveries(gw: Gateway, event_ids: list[str]) -> list[dict[str, Any]]:
    async with gw.db.read() as conn:
        rows = await conn.execute(
            select(webhook_deliveries).where(webhook_deliveries.c.event_id.in_(event_ids))
        )
        return [dict(r) for r in rows.mappings()]


async def test_relay_fans_out_to_subscribed_live_endpoints_only(
    gw: Gateway, schedule: DeliverySchedule
) -> None:
    await _drain(gw, schedule)  # events other tests left behind
    merchant = await _merchant(gw)
    other = await _merchant(gw)
    everything, _ = await svc.create_endpoint(
        gw, merchant, url="http://127.0.0.1:9/a", event_types=["*"], description=None
    )
    only_failed, _ = await svc.create_endpoint(
        gw, merchant, url="http://127.0.0.1:9/b", event_types=["transfer.failed"], description=None
    )
    disabled, _ = await svc.create_endpoint(
        gw, merchant, url="http://127.0.0.1:9/c", event_types=["*"], description=None
    )
    await svc.update_endpoint(
        gw,
        merchant,
        disabled["id"],
        svc.EndpointChanges(fields=frozenset({"enabled"}), enabled=False),
    )
    deleted, _ = await svc.create_endpoint(
        gw, merchant, url="http://127.0.0.1:9/d", event_types=["*"], description=None
    )
    await svc.delete_endpoint(gw, merchant, deleted["id"])
    await svc.create_endpoint(
        gw, other, url="http://127.0.0.1:9/e", event_types=["*"], description=None
    )

    succeeded = await _emit(gw, merchant, "transfer.succeeded", 3)
    failed = await _emit(gw, merchant, "transfer.failed", 2)
    await _drain(gw, schedule)

    rows = await _deliveries(gw, succeeded + failed)
    pairs = sorted((r["event_id"], r["endpoint_id"]) for r in rows)
    want = sorted(
        [(e, everything["id"]) for e in succeeded + failed]
        + [(e, only_failed["id"]) for e in failed]
    )
    assert pairs == want
    assert all(r["status"] == "pending" and r["attempts"] == 0 for r in rows)
    async with gw.db.read() as conn:
        unrelayed = await conn.execute(
            select(events.c.id).where(
                events.c.id.in_(succeeded + failed), events.c.relayed_at.is_(None)
            )
        )
        assert unrelayed.all() == []
    claimed = await schedule.claim_due(now=time.time() + 1, limit=100)
    assert sorted(c.delivery_id for c in claimed) == sorted(r["id"] for r in rows)


async def test_concurrent_relays_take_each_event_once(
    gw: Gateway, schedule: DeliverySchedule
) -> None:
    await _drain(gw, schedule)
    merchant = await _merchant(gw)
    endpoint, _ = await svc.create_endpoint(
        gw, merchant, url="http://127.0.0.1:9/x", event_types=["*"], description=None
    )
    emitted = await _emit(gw, merchant, "balance.topped_up", 40)

    async def relay_until_empty() -> None:
        while await relay_once(gw, schedule, batch_size=5):
            pass

    await asyncio.gather(*(relay_until_empty() for _ in range(4)))
    rows = await _deliveries(gw, emitted)
    assert sorted(r["event_id"] for r in rows) == sorted(emitted)
    assert {r["endpoint_id"] for r in rows} == {endpoint["id"]}
    assert await schedule.pending_count() == len(emitted)


async def test_reconciliation_enqueues_only_overdue_pending(
    gw: Gateway, schedule: DeliverySchedule
) -> None:
    await _drain(gw, schedule)
    merchant = await _merchant(gw)
    await svc.create_endpoint(
        gw, merchant, url="http://127.0.0.1:9/r", event_types=["*"], description=None
    )
    lost_schedule = DeliverySchedule(gw.redis, prefix=f"pmxtest-lost-{uuid.uuid4().hex}")
    emitted = await _emit(gw, merchant, "transfer.succeeded", 4)
    # Relayed into a schedule we then forget: as if the process died before enqueueing.
    await _drain(gw, lost_schedule)
    lost, recent, done, leased = sorted(await _deliveries(gw, emitted), key=lambda r: r["id"])
    old = gw.clock() - timedelta(minutes=5)
    d = webhook_deliveries.c
    async with gw.db.write() as conn:
        for row, values in (
            (lost, {"next_attempt_at": old, "attempts": 2}),
            (done, {"next_attempt_at": old, "status": "succeeded"}),
            (leased, {"next_attempt_at": old}),
        ):
            await conn.execute(update(webhook_deliveries).where(d.id == row["id"]).values(**values))
    await schedule.enqueue(leased["id"], due_at=0)
    in_flight = await schedule.claim_due(now=time.time(), limit=10)
    assert [c.delivery_id for c in in_flight] == [leased["id"]]

    assert await reconcile_once(gw, schedule) >= 2  # lost + leased (+ any other test's leftovers)
    claimed = await schedule.claim_due(now=time.time() + 1, limit=100)
    ids = {c.delivery_id: c.attempt for c in claimed}
    assert ids.get(lost["id"]) == 3  # resumes at the attempt it was due for
    assert recent["id"] not in ids  # not overdue: its enqueue may still be on its way
    assert done["id"] not in ids
    assert leased["id"] not in ids  # still leased to its (live) worker: enqueue was a no-op


async def _attempts(gw: Gateway, delivery_id: str) -> list[dict[str, Any]]:
    async with gw.db.read() as conn:
        rows = await conn.execute(
            select(webhook_attempts)
            .where(webhook_attempts.c.delivery_id == delivery_id)
            .order_by(webhook_attempts.c.id)
        )
        return [dict(r) for r in rows.mappings()]


async def _one_delivery(
    gw: Gateway, schedule: DeliverySchedule, url: str, event_type: str = "transfer.succeeded"
) -> tuple[str, str, str, str]:
    """(merchant, endpoint id, secret, delivery id) for one fresh event."""
    await _drain(gw, schedule)
    merchant = await _merchant(gw)
    endpoint, secret = await svc.create_endpoint(
        gw, merchant, url=url, event_types=["*"], description=None
    )
    emitted = await _emit(gw, merchant, event_type)
    await _drain(gw, schedule)
    (row,) = await _deliveries(gw, emitted)
    return merchant, endpoint["id"], secret, row["id"]


async def _attempt(gw: Gateway, schedule: DeliverySchedule, delivery_id: str) -> None:
    sender = make_sender(gw)
    try:
        await deliver_one(gw, schedule, sender, delivery_id, retries=(0, 1, 1))
    finally:
        await sender.aclose()


async def test_worker_delivers_signed_and_records_the_attempt(
    gw: Gateway, schedule: DeliverySchedule, receiver: Receiver
) -> None:
    _, endpoint_id, secret, delivery_id = await _one_delivery(gw, schedule, receiver.url)
    receiver.secrets = [secret]
    await _attempt(gw, schedule, delivery_id)

    (got,) = receiver.received
    assert got["verified"] == [secret]
    body = orjson.loads(got["body"])
    assert got["headers"]["webhook-id"] == body["id"]
    assert body["type"] == "transfer.succeeded"
    (attempt,) = await _attempts(gw, delivery_id)
    assert attempt["ok"] and attempt["status_code"] == 200 and attempt["attempt"] == 1
    assert attempt["endpoint_id"] == endpoint_id
    (row,) = await _deliveries(gw, [body["id"]])
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("succeeded", 1, None)
    assert await schedule.pending_count() == 0  # acked


async def test_worker_retries_then_gives_up(
    gw: Gateway, schedule: DeliverySchedule, receiver: Receiver
) -> None:
    receiver.status = 503
    _, _, _, delivery_id = await _one_delivery(gw, schedule, receiver.url)
    for expected_status in ("pending", "pending", "failed"):
        claimed = await schedule.claim_due(now=time.time() + 5, limit=10)
        assert [c.delivery_id for c in claimed] == [delivery_id]
        await _attempt(gw, schedule, delivery_id)
        async with gw.db.read() as conn:
            status = (
                await conn.execute(
                    select(webhook_deliveries.c.status).where(
                        webhook_deliveries.c.id == delivery_id
                    )
                )
            ).scalar_one()
        assert status == expected_status
    attempts = await _attempts(gw, delivery_id)
    assert [(a["attempt"], a["ok"], a["status_code"]) for a in attempts] == [
        (1, False, 503),
        (2, False, 503),
        (3, False, 503),
    ]
    assert all(a["error"] == "endpoint answered HTTP 503" for a in attempts)
    assert await schedule.pending_count() == 0


async def test_rotation_signs_with_both_secrets_until_the_old_expires(
    gw: Gateway, schedule: DeliverySchedule, receiver: Receiver
) -> None:
    merchant, endpoint_id, old, first = await _one_delivery(gw, schedule, receiver.url)
    _, new, expires = await svc.rotate_secret(gw, merchant, endpoint_id, overlap_seconds=60)
    assert new != old and expires > gw.clock()
    receiver.secrets = [old, new]
    await _attempt(gw, schedule, first)
    assert receiver.received[-1]["verified"] == [old, new]
    assert len(receiver.received[-1]["headers"]["webhook-signature"].split(" ")) == 2

    _, newest, _ = await svc.rotate_secret(gw, merchant, endpoint_id, overlap_seconds=0)
    receiver.secrets = [old, new, newest]
    emitted = await _emit(gw, merchant, "transfer.failed")
    await _drain(gw, schedule)
    (second,) = await _deliveries(gw, emitted)
    await _attempt(gw, schedule, second["id"])
    assert receiver.received[-1]["verified"] == [newest]


async def test_deleted_endpoint_fails_the_delivery_without_an_attempt(
    gw: Gateway, schedule: DeliverySchedule, receiver: Receiver
) -> None:
    merchant, endpoint_id, _, delivery_id = await _one_delivery(gw, schedule, receiver.url)
    await svc.delete_endpoint(gw, merchant, endpoint_id)
    await _attempt(gw, schedule, delivery_id)
    assert receiver.received == []
    assert await _attempts(gw, delivery_id) == []
    async with gw.db.read() as conn:
        status = (
            await conn.execute(
                select(webhook_deliveries.c.status).where(webhook_deliveries.c.id == delivery_id)
            )
        ).scalar_one()
    assert status == "failed"
    assert await schedule.pending_count() == 0


def test_schedule_prefix_separates_databases_not_passwords() -> None:
    a = schedule_prefix("postgresql+asyncpg://u:one@db:5432/paymux")
    assert a == schedule_prefix("postgresql+asyncpg://u:two@db:5432/paymux")
    assert a != schedule_prefix("postgresql+asyncpg://u:one@db:5432/other")
    assert schedule_prefix("sqlite+aiosqlite:///a.db") != schedule_prefix(
        "sqlite+aiosqlite:///b.db"
    )


async def test_private_and_plain_http_urls_are_refused(gw: Gateway) -> None:
    strict = dataclasses.replace(
        gw,
        settings=gw.settings.model_copy(
            update={"webhook_allow_private": False, "webhook_allow_http": False}
        ),
    )
    merchant_row, key = await create_merchant(strict, "SSRF test")
    for url in (
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "http://93.184.215.14/hook",  # public, but plain http
    ):
        with pytest.raises(svc.UnsafeWebhookURL):
            await svc.create_endpoint(
                strict, merchant_row["id"], url=url, event_types=["*"], description=None
            )

    # Through the HTTP API: a problem document with code unsafe_url, nothing stored.
    app = create_app(strict.settings)
    app.state.gateway = strict
    app.state.merchant_auth = MerchantAuth(strict)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        refused = await client.post(
            "/v1/webhook_endpoints", json={"url": "https://192.168.1.10/hook"}
        )
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "unsafe_url"
        listed = await client.get("/v1/webhook_endpoints")
        assert listed.json()["data"] == []
