"""Deterministic simulation of the core: ``python -m tests.simulation.run --seeds 50 --ops 2000``.

The real service layer (create transfer, apply outcome, sync loop and crash recovery,
channel notifications, top-ups), the real ledger and a real SQLite database file are driven
in-process against simulated channels (:mod:`tests.simulation.world`) on an injected clock.
One seeded ``random.Random`` chooses every operation and every fault: lost requests and
answers, query timeouts, duplicate, stale, reordered and forged notifications, and crashes
before a send, after the channel acted, inside a transaction and between any two steps. A
crash drops the whole Gateway (all in-memory state) and starts a new one over the same
database, which runs start-up recovery, as `paymux serve` would.

After every operation :class:`tests.simulation.invariants.Checker` checks the invariants;
at the end faults stop, time runs on until everything is settled, and every key must have
been answered with exactly one transfer whose state is what the channel did.

Not simulated: the Redis idempotency layer, which sits above the service (the HTTP
routes) and is proven by the Redis and end-to-end tests and by the chaos suite; here the
database's unique (merchant, key) is the only line of defence, which is the harder case.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import Connection

from paymux.domain.batches import item_idempotency_key
from paymux.domain.circuit import CircuitPolicy
from paymux.service.balances import create_topup
from paymux.service.batches import NewItem, _Limits, _new_transfer, batch_pass, create_batch
from paymux.service.bootstrap import resolve_keks
from paymux.service.circuits import ChannelCircuits, transfers_parked
from paymux.service.errors import (
    IdempotencyKeyReused,
    InsufficientFundsError,
    TransferNotCancelable,
)
from paymux.service.feebook import FeeBook
from paymux.service.gateway import Gateway, utcnow
from paymux.service.merchants import create_merchant
from paymux.service.notifications import handle_notification
from paymux.service.outbox import Outbox
from paymux.service.sync import sync_once
from paymux.service.transfers import NewTransfer, cancel_transfer, create_transfer
from paymux.settings import Settings
from paymux.store.data_keys_repo import load_data_keys
from paymux.store.db import Database
from paymux.store.idempotency import IdempotencyStore
from paymux.store.ledger_repo import LedgerRepo
from paymux.store.migrate import upgrade
from tests.simulation.invariants import ChannelOrderFacts, Checker, in_flight
from tests.simulation.world import Faults, Queued, SimulatedCrash, World, sim_channels

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
MERCHANTS = 3
INITIAL_FUNDS = 3_000_000

FEES = """
rounding = "half_up"
[[price]]
channel = "alipay"
payee_type = "alipay_account"
bps = "60"
minimum = 100
maximum = 2500
effective_at = 2024-01-01T00:00:00+08:00
[[price]]
channel = "alipay"
payee_type = "bank_card"
bps = "10"
fixed = 200
effective_at = 2024-01-01T00:00:00+08:00
[[price]]
channel = "wechat"
payee_type = "wechat_openid"
bps = "55"
fixed = 1
effective_at = 2024-01-01T00:00:00+08:00
[[cost]]
channel = "alipay"
payee_type = "alipay_account"
fixed = 30
effective_at = 2024-01-01T00:00:00+08:00
[[cost]]
channel = "alipay"
payee_type = "bank_card"
bps = "5"
fixed = 100
effective_at = 2024-01-01T00:00:00+08:00
[[cost]]
channel = "wechat"
payee_type = "wechat_openid"
bps = "10"
effective_at = 2024-01-01T00:00:00+08:00
"""

PAYEES = {
    "alipay_account": [
        "zhang.san@example.com",
        "li.si@example.com",
        "fail.payee@example.com",
        "delay.payee@example.com",
        "return.payee@example.com",
    ],
    "bank_card": ["6222020200112230000", "6222020200112234004", "6222020200112237007"],
    "wechat_openid": [
        "o4GgauInH_RCEdvrrNGrntXDu001",
        "o4GgauInH_fail_rrNGrntXDu002",
        "o4GgauInH_delay_rNGrntXDu003",
        "o4GgauInH_return_NGrntXDu004",
        "o4GgauInH_confirm_GrntXDu005",
    ],
}

# Operation mix (weights).
OPS: list[tuple[str, int]] = [
    ("create", 30),
    ("retry", 10),
    ("reuse_key", 2),
    ("notify", 20),
    ("stale_notify", 4),
    ("forged_notify", 1),
    ("sync", 12),
    ("tick", 15),
    ("topup", 3),
    ("cancel", 4),
    ("batch", 2),
    ("batch_retry", 1),
    ("batch_pass", 5),
    ("channel_outage", 1),
    ("crash", 3),
]


class Violation(AssertionError):
    pass


class SerialLimits(_Limits):
    """One batch item at a time across all channels: the order of events is the seed's."""

    def __init__(self, gw: Gateway) -> None:
        super().__init__(gw)
        self.one = asyncio.Semaphore(1)

    def sem(self, channel: str) -> asyncio.Semaphore:
        return self.one


class CrashingOutbox(Outbox):
    """The real outbox, with a chance of the process dying while a transaction is open
    (after some of its statements ran): the database must roll all of it back."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    def emit(self, conn: Connection, **kw: Any) -> str:
        self.world.check_alive()
        if self.world.chance(self.world.faults.crash_in_commit):
            raise self.world.die("inside a transaction, before it committed")
        return super().emit(conn, **kw)


@dataclass
class Request:
    merchant: str
    body: NewTransfer
    fingerprint: str
    answer: str | None = None  # the transfer id a reply carried
    refused: bool = False  # answered 402: nothing stored, the key is free again


@dataclass
class BatchRequest:
    merchant: str
    items: list[NewItem]
    aon: bool  # all_or_nothing
    answer: str | None = None
    refused: bool = False


@dataclass
class Model:
    merchants: list[str] = field(default_factory=list)
    topups: dict[str, int] = field(default_factory=dict)
    requests: dict[str, Request] = field(default_factory=dict)
    batches: dict[str, BatchRequest] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1


@dataclass
class Outcome:
    seed: int
    ops: int
    ok: bool
    message: str
    counts: dict[str, int]
    seconds: float


class Simulation:
    def __init__(self, seed: int, ops: int, workdir: Path, template: Path) -> None:
        self.seed = seed
        self.ops = ops
        self.world = World(seed, START)
        self.rng = self.world.rng
        self.model = Model()
        self.path = workdir / f"sim-{seed}.db"
        shutil.copyfile(template, self.path)
        self.url = f"sqlite+aiosqlite:///{self.path}"
        fees = workdir / "fees.toml"
        self.settings = Settings(
            data_dir=workdir,
            database_url=self.url,
            redis_url="redis://127.0.0.1:9/0",
            channels_file=workdir / "no-channels.toml",
            fees_file=fees,
            sync_enabled=False,
            webhook_workers_enabled=False,
            sync_first_delay_seconds=1.0,
            sync_max_delay_seconds=60.0,
            sync_concurrency=1,  # one at a time: the order of events is the seed's
            pending_recovery_age_seconds=30.0,
            channel_call_timeout_seconds=30.0,
            batch_default_concurrency=1,  # one item at a time: the order is the seed's
            batch_default_rate_per_second=0,  # no pacing (it sleeps in real time)
            batch_claim_seconds=60.0,
        )
        self.checker = Checker(str(self.path))
        self.gw: Gateway | None = None
        self.step_no = 0
        self.lives = 0
        self.item_seq = 0

    # --- gateway lives ----------------------------------------------------------------------

    async def start_life(self) -> Gateway:
        db = Database(self.url)
        await load_data_keys(db, resolve_keks(self.settings), utcnow())  # payee data is sealed
        feebook = FeeBook(db, self.settings.fee_config())
        await feebook.reload()
        # Never contacted: the Redis idempotency layer is above the service (see the module doc).
        redis = Redis.from_url(self.settings.redis_url or "")
        self.lives += 1
        return Gateway(
            settings=self.settings,
            db=db,
            redis=redis,
            idempotency=IdempotencyStore(redis),
            channels=dict(sim_channels(self.world)),  # type: ignore[arg-type]
            feebook=feebook,
            outbox=CrashingOutbox(self.world),
            clock=self.world.clock,
            # The breakers on the simulated clock too (a new life starts them closed).
            circuits=ChannelCircuits(CircuitPolicy(), clock=lambda: self.world.now.timestamp()),  # noqa: PLW0108 - now changes
        )

    async def crash(self) -> None:
        """Everything in memory is gone: tasks, caches, the Gateway. The database stays."""
        self.model.count("crashes")
        me = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not me]
        for t in others:
            t.cancel()
        for t in others:
            with contextlib.suppress(BaseException):
                await t
        if self.gw is not None:
            await self.gw.db.dispose()
            await self.gw.redis.aclose()
        self.gw = None
        self.world.dead = False

    async def ensure_life(self) -> Gateway:
        """A running gateway; a new one runs start-up recovery, and may crash doing it."""
        while self.gw is None:
            gw = await self.start_life()
            self.gw = gw
            try:
                await sync_once(gw, recover_all_pending=True)
                await batch_pass(gw, SerialLimits(gw), reclaim_all=True)  # as run_batch_loop starts
                if self.world.dead:
                    raise SimulatedCrash("died in a batch item")
            except SimulatedCrash:
                await self.crash()
        return self.gw

    # --- operations ---------------------------------------------------------------------------

    async def setup(self) -> None:
        gw = await self.ensure_life()
        saved, self.world.faults = self.world.faults, Faults.none()
        for i in range(MERCHANTS):
            row, _ = await create_merchant(gw, f"sim merchant {i}")
            self.model.merchants.append(row["id"])
            await self.topup(row["id"], INITIAL_FUNDS)
        self.world.faults = saved

    async def topup(self, merchant: str, amount: int) -> None:
        assert self.gw is not None
        key = f"topup-{len(self.model.topups)}-{self.rng.randrange(10**9)}"
        await create_topup(
            self.gw,
            merchant,
            amount=amount,
            currency="CNY",
            description=None,
            idempotency_key=key,
            fingerprint=key,
        )
        self.model.topups[merchant] = self.model.topups.get(merchant, 0) + amount

    def new_request(self) -> tuple[str, Request]:
        rng = self.rng
        payee_type = rng.choice(sorted(PAYEES))
        body = NewTransfer(
            amount=rng.choice([1, 99, 100, 2_50, 10_000, rng.randrange(1, 60_000)]),
            currency="CNY",
            payee_type=payee_type,
            payee_account=rng.choice(PAYEES[payee_type]),
            payee_name="Zhang San",
            channel=None,
            description="simulated payout",
        )
        key = f"key-{len(self.model.requests)}"
        req = Request(rng.choice(self.model.merchants), body, f"fp-{key}")
        self.model.requests[key] = req
        return key, req

    async def send_request(self, key: str, req: Request, *, fingerprint: str | None = None) -> None:
        assert self.gw is not None
        body = req.body
        if fingerprint is not None:
            body = NewTransfer(**{**body.__dict__, "amount": body.amount + 1})
        try:
            created = await create_transfer(
                self.gw, req.merchant, key, fingerprint or req.fingerprint, body
            )
        except InsufficientFundsError:
            if fingerprint is not None:
                return
            if req.answer is not None:
                raise Violation(f"key {key} answered {req.answer} before, now 402") from None
            req.refused = True
            self.model.count("refused_402")
            return
        except IdempotencyKeyReused:
            if fingerprint is None:
                raise Violation(f"key {key} with its own body answered 'key reused'") from None
            self.model.count("key_reused_422")
            return
        if fingerprint is not None:
            raise Violation(f"key {key} reused with another body made {created.transfer.id}")
        tid = created.transfer.id
        if req.answer is not None and req.answer != tid:
            raise Violation(f"key {key} answered {req.answer} before, now {tid}")
        if created.replayed:
            self.model.count("replayed")
        req.answer, req.refused = tid, False

    async def deliver(self, q: Queued, *, requeue: bool) -> None:
        assert self.gw is not None
        headers = {"x-sim-signature": "forged" if q.forged else "valid"}
        try:
            ack = await handle_notification(self.gw, q.channel, headers, q.body)
        except SimulatedCrash:
            if requeue:  # the channel saw no answer: it sends again later
                self.world.queue(q.channel, q.body, delay=self.rng.uniform(1, 30))
            raise
        assert ack is not None
        if q.forged:
            if ack.status_code == 200:
                raise Violation("a forged notification was acknowledged")
            return
        if ack.status_code != 200:
            raise Violation(f"a genuine notification was refused: {q.body!r}")
        if requeue:
            self.world.delivered.append(q)

    async def operate(self, op: str) -> None:
        rng, world, model = self.rng, self.world, self.model
        model.count(op)
        if op == "create":
            key, req = self.new_request()
            await self.send_request(key, req)
        elif op == "retry" and model.requests:
            key = rng.choice(list(model.requests))
            await self.send_request(key, model.requests[key])
        elif op == "reuse_key":
            answered = [k for k, r in model.requests.items() if r.answer]
            if answered:
                key = rng.choice(answered)
                await self.send_request(key, model.requests[key], fingerprint=f"other-{key}")
        elif op == "notify":
            q = world.take_due()
            if q is not None:
                await self.deliver(q, requeue=True)
        elif op == "stale_notify" and world.delivered:
            await self.deliver(rng.choice(world.delivered), requeue=False)
        elif op == "forged_notify" and world.orders:
            order = rng.choice(list(world.orders.values()))
            body = (
                f'{{"reference": "{order.reference}", "outcome": "failed", "order_id": '
                f'"{order.order_id}", "amount": {order.amount}, "currency": "CNY"}}'
            ).encode()
            await self.deliver(Queued(world.now, 0, order.channel, body, True), requeue=False)
        elif op == "sync":
            assert self.gw is not None
            await sync_once(self.gw)
        elif op == "tick":
            world.advance(rng.choice([0.3, 1.0, 2.0, 5.0, 15.0, 45.0]))
        elif op == "topup":
            await self.topup(rng.choice(model.merchants), rng.choice([50_000, 500_000]))
        elif op == "crash":
            await self.crash()
        elif op == "cancel":
            await self.cancel()
        elif op == "batch":
            await self.new_batch()
        elif op == "batch_retry" and model.batches:
            await self.send_batch(rng.choice(sorted(model.batches)))
        elif op == "channel_outage":  # the circuit breakers open, park, probe, close
            channel = rng.choice(["alipay", "wechat"])
            world.outage_until[channel] = world.now + timedelta(seconds=rng.uniform(5, 90))
        elif op == "batch_pass":
            assert self.gw is not None
            await batch_pass(self.gw, SerialLimits(self.gw))

    def new_item(self) -> NewItem:
        rng = self.rng
        payee_type = rng.choice(sorted(PAYEES))
        body: dict[str, Any] = {
            "amount": rng.choice([1, 100, 5_000, rng.randrange(1, 60_000)]),
            "currency": "CNY",
            "payee": {
                "type": payee_type,
                "account": rng.choice(PAYEES[payee_type]),
                "name": "Zhang San",
            },
            "description": "simulated batch item",
        }
        self.item_seq += 1
        return NewItem(f"item-{self.item_seq}", _new_transfer(body), body)

    async def new_batch(self) -> None:
        key = f"batch-{len(self.model.batches)}"
        items = [self.new_item() for _ in range(self.rng.randint(1, 8))]
        merchant = self.rng.choice(self.model.merchants)
        self.model.batches[key] = BatchRequest(merchant, items, self.rng.random() < 0.3)
        await self.send_batch(key)

    async def send_batch(self, key: str) -> None:
        assert self.gw is not None
        req = self.model.batches[key]
        try:
            accepted = await create_batch(
                self.gw, req.merchant, key, f"fp-{key}", req.items, all_or_nothing=req.aon
            )
        except InsufficientFundsError:
            if req.answer is not None:
                raise Violation(f"batch {key} answered {req.answer} before, now 402") from None
            req.refused = True
            self.model.count("batch_refused_402")
            return
        if req.answer is not None and accepted.batch.id != req.answer:
            raise Violation(f"batch {key} answered {req.answer} before, now {accepted.batch.id}")
        req.answer, req.refused = accepted.batch.id, False
        self.model.count("batch_replayed" if accepted.replayed else "batch_accepted")

    def batch_checks(self) -> list[str]:
        """Every accepted batch completed once, each item with one transfer of its amount."""
        problems: list[str] = []
        q = self.checker.conn.execute
        by_key = {(t.merchant_id, t.idempotency_key): tid for tid, t in self.checker.facts.items()}
        for key, req in self.model.batches.items():
            if req.answer is None:
                if not req.refused:
                    problems.append(f"batch {key} never answered")
                continue
            status = q("SELECT status FROM transfer_batches WHERE id = ?", (req.answer,)).fetchone()
            completed = q(
                "SELECT COUNT(*) FROM events WHERE object_id = ? AND type = ?",
                (req.answer, "transfer_batch.completed"),
            ).fetchone()[0]
            if status is None or status[0] != "completed" or completed != 1:
                problems.append(f"batch {key}: status {status}, {completed} completed events")
            rows = q(
                "SELECT reference, state, transfer_id, amount FROM transfer_batch_items"
                " WHERE batch_id = ?",
                (req.answer,),
            ).fetchall()
            if len(rows) != len(req.items):
                problems.append(f"batch {key}: {len(rows)} items of {len(req.items)}")
            for reference, state, tid, amount in rows:
                mine = by_key.get((req.merchant, item_idempotency_key(reference)))
                t = self.checker.facts.get(mine or "")
                if state == "submitted" and (t is None or t.amount != amount or tid != mine):
                    problems.append(f"batch {key} item {reference}: transfer {tid} vs {mine}")
                if state not in ("submitted", "failed", "canceled"):
                    problems.append(f"batch {key} item {reference} still {state}")
        return problems

    async def cancel(self) -> None:
        """A merchant cancels a transfer (mostly ones waiting for their payee)."""
        assert self.gw is not None
        facts = self.checker.facts
        waiting = [t for t, f in facts.items() if f.status == "requires_confirmation"]
        pool = waiting if waiting and self.rng.random() < 0.8 else list(facts)
        if not pool:
            return
        tid = self.rng.choice(sorted(pool))
        try:
            row = await cancel_transfer(self.gw, facts[tid].merchant_id, tid)
        except TransferNotCancelable as exc:
            if exc.extra.get("transfer_status") == "canceled":
                raise Violation(f"cancel of {tid} refused although it is canceled") from None
            self.model.count("cancel_refused_409")
            return
        if row.status != "canceled":
            raise Violation(f"cancel of {tid} answered {row.status} without refusing")
        self.model.count("canceled")

    # --- checks -------------------------------------------------------------------------------

    def order_of(self, reference: str) -> ChannelOrderFacts | None:
        o = self.world.by_ref.get(reference)
        if o is None:
            return None
        made = self.world.creations[(o.channel, reference)]
        return ChannelOrderFacts(o.channel, reference, o.amount, o.status.value, made)

    def check(self, where: str) -> None:
        touched, self.world.touched = self.world.touched, set()
        problems = self.checker.step(self.model.topups, self.order_of, touched, self.world.now)
        problems += self.world.violations
        if problems:
            raise Violation(f"{where}: " + "; ".join(problems[:8]))

    async def ledger_check(self) -> None:
        gw = await self.ensure_life()
        async with gw.db.read() as conn:
            problems = await LedgerRepo.check(conn)
        if problems:
            raise Violation("paymux ledger check: " + "; ".join(problems[:8]))

    # --- the run ------------------------------------------------------------------------------

    async def run(self) -> None:
        random.seed(self.seed)  # the sync loop's backoff jitter draws from the global RNG
        await self.setup()
        self.check("after set-up")
        names = [n for n, _ in OPS]
        weights = [w for _, w in OPS]
        for self.step_no in range(1, self.ops + 1):
            op = self.rng.choices(names, weights)[0]
            try:
                await self.ensure_life()
                await self.operate(op)
                if self.world.dead:  # a crash some gather(return_exceptions=True) swallowed
                    raise SimulatedCrash("died inside a gathered task")
            except SimulatedCrash:
                await self.crash()
            self.check(f"step {self.step_no} ({op})")
            if self.step_no % 250 == 0:
                await self.ledger_check()
        await self.settle()

    async def settle(self) -> None:
        """Faults stop; time runs on; merchants retry every key they got no answer for."""
        world, model = self.world, self.model
        world.faults = Faults.none()
        world.outage_until.clear()
        world.drop_duplicates()  # the run delivered plenty; here they would only cost time
        gw = await self.ensure_life()
        for _ in range(400):
            for key, req in model.requests.items():
                if req.answer is None and not req.refused:
                    await self.send_request(key, req)
            while (q := world.take_due()) is not None:
                await self.deliver(q, requeue=True)
            await self.drain(lambda: sync_once(gw), "sync loop")
            await self.drain(lambda: batch_pass(gw, SerialLimits(gw)), "batch worker")
            for key in sorted(model.batches):
                if model.batches[key].answer is None and not model.batches[key].refused:
                    await self.send_batch(key)
            self.check("settling")
            busy = [t for t in self.checker.facts.values() if in_flight(t.status)]
            waiting = any(
                o.status.value in ("processing", "requires_confirmation")
                for o in world.orders.values()
            )
            returns_due = any(
                o.returns_at and o.returns_at > world.now for o in world.orders.values()
            )
            if not busy and not world.inbox and not waiting and not returns_due:
                break
            world.advance(60)
        else:
            raise Violation("did not settle")
        self.final_checks()
        await self.ledger_check()

    async def drain(self, one_pass: Callable[[], Awaitable[int]], what: str) -> None:
        """Passes until one finds nothing to do; a pass that always works is a livelock."""
        for _ in range(200):
            if await one_pass() <= 0:  # nothing done (the batch worker says -1: no batches)
                return
        raise Violation(f"the {what} never runs out of work (200 busy passes at one instant)")

    def final_checks(self) -> None:
        problems = self.checker.full(
            self.model.topups, self.order_of, list(self.world.by_ref), self.world.now
        )
        facts = self.checker.facts
        per_key: dict[tuple[str, str], list[str]] = {}
        for tid, t in facts.items():
            per_key.setdefault((t.merchant_id, t.idempotency_key), []).append(tid)
            if in_flight(t.status):
                problems.append(f"transfer {tid} still {t.status} after settling")
        for tid, t in facts.items():
            order = self.order_of(t.reference)
            if order is None:
                if t.status != "canceled":  # a queued batch item is canceled unsent
                    problems.append(f"transfer {tid} is {t.status} but the channel has no order")
            elif order.status != t.status:
                problems.append(f"transfer {tid} is {t.status}, the channel says {order.status}")
        for key, req in self.model.requests.items():
            found = per_key.get((req.merchant, key), [])
            if req.refused and not found:
                continue
            if len(found) != 1 or found[0] != req.answer:
                problems.append(f"key {key}: answered {req.answer}, transfers {found}")
        problems += self.batch_checks()
        if problems:
            raise Violation("after settling: " + "; ".join(problems[:8]))

    async def close(self) -> None:
        if self.gw is not None:
            await self.gw.db.dispose()
            await self.gw.redis.aclose()
        self.checker.close()


async def make_template(workdir: Path) -> Path:
    """A migrated empty database, copied for each seed (migrating once saves seconds)."""
    path = workdir / "template.db"
    (workdir / "fees.toml").write_text(FEES)
    if not path.exists():
        db = Database(f"sqlite+aiosqlite:///{path}")
        await upgrade(db.engine)
        await db.dispose()
    return path


def _parked() -> float:
    """Transfers parked by an open channel circuit so far in this process (a metric)."""
    return sum(transfers_parked.labels(ch)._value.get() for ch in ("alipay", "wechat"))


def replay_command(seed: int, ops: int) -> str:
    return f"make simulate SEED={seed} OPS={ops}"


async def run_seed(seed: int, ops: int, workdir: Path) -> Outcome:
    template = await make_template(workdir)
    sim = Simulation(seed, ops, workdir, template)
    parked_before = _parked()
    began = time.monotonic()
    ok, message = True, "ok"
    try:
        await sim.run()
    except Violation as exc:
        ok, message = False, str(exc)
    except Exception as exc:  # an error escaping the service is itself a finding
        ok = False
        message = f"step {sim.step_no}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    finally:
        await sim.close()
        with contextlib.suppress(OSError):
            for suffix in ("", "-wal", "-shm"):
                os.unlink(f"{sim.path}{suffix}")
    counts = dict(sim.model.counts)
    counts["transfers"] = len(sim.checker.facts)
    counts["channel_orders"] = len(sim.world.orders)
    counts["lives"] = sim.lives
    counts["parked_by_open_circuit"] = int(_parked() - parked_before)
    return Outcome(seed, ops, ok, message, counts, time.monotonic() - began)


def _scratch() -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="paymux-sim-", dir=base))


def _run_in_worker(seed: int, ops: int, base: Path) -> Outcome:
    # One work directory per worker process, kept across its seeds (as a sequential run keeps
    # one): the migrated template is built once per process, not once per seed (~0.5 s of
    # CPU, as much as a 50-operation seed). ``run_many`` removes ``base`` at the end.
    workdir = base / f"worker-{os.getpid()}"
    workdir.mkdir(exist_ok=True)
    return asyncio.run(run_seed(seed, ops, workdir))


def run_many(seeds: list[int], ops: int, *, jobs: int = 1, quiet: bool = False) -> list[Outcome]:
    """Run ``seeds`` (in ``jobs`` processes); prints a dot per passing seed."""

    def report(result: Outcome) -> None:
        if not result.ok:
            print(f"\nFAILED seed {result.seed}: {result.message}", file=sys.stderr)
            print(f"reproduce with: {replay_command(result.seed, ops)}", file=sys.stderr)
        elif not quiet:
            print(".", end="", flush=True)

    results: list[Outcome] = []
    if jobs > 1:
        base = _scratch()
        try:
            with ProcessPoolExecutor(jobs) as pool:
                futures = [pool.submit(_run_in_worker, seed, ops, base) for seed in seeds]
                for done in as_completed(futures):
                    report(done.result())
                    results.append(done.result())
                    if not quiet and len(results) % 50 == 0:
                        failed = sum(not r.ok for r in results)
                        print(f" {len(results)} seeds, {failed} failed", flush=True)
        finally:
            shutil.rmtree(base, ignore_errors=True)
        return sorted(results, key=lambda r: r.seed)
    workdir = _scratch()
    try:
        for seed in seeds:
            result = asyncio.run(run_seed(seed, ops, workdir))
            report(result)
            results.append(result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=50, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=None, help="default: random")
    parser.add_argument("--seed", type=int, default=None, help="replay exactly this seed")
    parser.add_argument("--ops", type=int, default=2000, help="operations per seed")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in this many processes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # the gateway's logs would be noise here
    if args.seed is not None:
        seeds = [args.seed]
    else:
        first = args.first_seed if args.first_seed is not None else random.randrange(10**6)
        seeds = list(range(first, first + args.seeds))
    print(f"simulation: seeds {seeds[0]}..{seeds[-1]} ({len(seeds)}), {args.ops} ops each")
    began = time.monotonic()
    results = run_many(seeds, args.ops, jobs=max(1, args.jobs))
    failed = [r for r in results if not r.ok]
    totals: dict[str, int] = {}
    for r in results:
        for k, v in r.counts.items():
            totals[k] = totals.get(k, 0) + v
    print()
    took = time.monotonic() - began
    print(f"{len(results) - len(failed)}/{len(results)} seeds passed in {took:.0f}s")
    print("totals: " + ", ".join(f"{k}={v}" for k, v in sorted(totals.items())))
    for r in failed:
        print(f"FAILED seed {r.seed}: {replay_command(r.seed, r.ops)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
