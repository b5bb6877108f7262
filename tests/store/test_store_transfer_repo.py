"""The transfer repository: its fast path and its plain SQLAlchemy path write the same rows.

Each database has a fast path for the transfer's hot writes (SQLite: statements run on the
bare sqlite3 connection; PostgreSQL: the create as one CTE statement). The same sequence of
operations (creates, a refused hold, a duplicate key, every kind of status move with its
ledger entry and event, park/claim/requeue, a stale guess, a cancel) runs once through
``TransferRepo(fast=True)`` and once through ``TransferRepo(fast=False)``, for two fresh
merchants, and every stored row of transfers, journal entries, postings, events and the
merchant's cached balances is compared as the database holds it (raw, not read back through
the column types). Only what is inherently different is normalised: the generated ids (and
the channel references derived from them), the merchant, postings' serial ids, and the
sealed payee values' random nonces (compared opened).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from paymux.channels.base import ChannelResult, Outcome
from paymux.domain.fees import FeeQuote, Rounding
from paymux.domain.ids import channel_reference, new_id
from paymux.domain.ledger import InsufficientFunds
from paymux.domain.transfers import Transfer
from paymux.sealing import SEALER
from paymux.service.gateway import Gateway
from paymux.service.merchants import create_merchant
from paymux.service.transfers import NewTransfer, new_pending, plan_for
from paymux.store.errors import UniqueViolation
from paymux.store.sealed import PAYEE_ACCOUNT
from paymux.store.tables import transfers
from paymux.store.transfer_repo import TransferRepo
from tests.store.store_support import bearer, new_funded_merchant, topup

T0 = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
FUNDS = 100_000


def test_transfer_fields_are_the_table_columns() -> None:
    assert [f.name for f in dataclasses.fields(Transfer)] == [c.name for c in transfers.columns]


class _Ids:
    """new_id, remembering what it made (in order) so two runs can be lined up."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def __call__(self, prefix: str) -> str:
        value = new_id(prefix)
        self.made.append(value)
        return value


def _new(merchant: str, ids: _Ids, key: str, amount: int, **extra: Any) -> Transfer:
    req = NewTransfer(
        amount=amount,
        currency="CNY",
        payee_type="alipay_account",
        payee_account="same@example.com",
        payee_name="Zhang San",
        channel=None,
        description=f"repo test {key}",
        metadata={"order": key, "n": amount},
    )
    fq = FeeQuote(
        fee=150, channel_cost=60, price_version=3, cost_version=None, rounding=Rounding.half_up
    )
    return new_pending(
        transfer_id=ids("tr"),
        merchant_id=merchant,
        idempotency_key=key,
        fingerprint="fp-" + key,
        req=req,
        channel="alipay",
        fq=fq,
        now=T0,
        **({"next_sync_at": None} | extra),
    )


async def _run(gw: Gateway, repo: TransferRepo, merchant: str, ids: _Ids) -> None:
    """Everything the repository writes, in one fixed order."""

    def plan(outcome: Outcome, at: datetime, **result: Any) -> Callable[..., Any]:
        return plan_for(gw, ChannelResult(outcome, **result), now=at, source="test")

    t1 = _new(merchant, ids, "k1", 10_000)
    t2 = _new(merchant, ids, "k2", 20_000)
    t3 = _new(merchant, ids, "k3", 5_000)
    t4 = _new(merchant, ids, "k4", 7_000, next_sync_at=T0 + timedelta(seconds=30))
    for t in (t1, t2, t3, t4):
        await repo.create_pending(t)
    with pytest.raises(InsufficientFunds):  # nothing of it may be written
        await repo.create_pending(_new(merchant, ids, "k-big", FUNDS))
    with pytest.raises(UniqueViolation):  # the unique (merchant, key) decides
        await repo.create_pending(dataclasses.replace(_new(merchant, ids, "k1", 1), id=ids("tr")))

    at = T0 + timedelta(seconds=1, microseconds=1)
    moved = await repo.move(t1.id, plan(Outcome.PROCESSING, at, channel_order_id="C1"), known=t1)
    assert moved.transfer.status == "processing" and len(moved.steps) == 1
    at += timedelta(seconds=2)
    await repo.move(t1.id, plan(Outcome.SUCCEEDED, at))  # settle
    at += timedelta(minutes=5)
    await repo.move(t1.id, plan(Outcome.RETURNED, at))  # reverse
    await repo.move(
        t2.id,
        plan(Outcome.FAILED, at, failure_code="PAYEE_NOT_EXIST", failure_message="no payee"),
    )  # release
    assert (await repo.move(t2.id, plan(Outcome.SUCCEEDED, at))).steps == ()  # no-op
    # A bounce seen before the success: settle, then reverse, in one move.
    confirm = {"package_info": "abc", "mchid": "1"}
    await repo.move(t3.id, plan(Outcome.REQUIRES_CONFIRMATION, at, next_action=confirm))
    # A stale guess (t3 is no longer pending): planned again from a locked read.
    stale = await repo.move(t3.id, plan(Outcome.CANCELED, at, raw_status="CANCELLED"), known=t3)
    assert stale.transfer.status == "canceled"
    # The sync loop's queue.
    assert await repo.claim(t4, at + timedelta(seconds=10))
    assert not await repo.claim(t4, at + timedelta(seconds=10))  # its claim moved on
    await repo.requeue(t4, at + timedelta(seconds=20))
    parked = await repo.park(t4, at + timedelta(seconds=40))
    assert parked.next_sync_at == at + timedelta(seconds=40)
    await repo.move(t4.id, plan(Outcome.RETURNED, at + timedelta(seconds=41)))


def _stored(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else repr(value)


async def _rows(gw: Gateway, merchant: str) -> dict[str, list[dict[str, str]]]:
    """Every row the runs wrote for ``merchant``, as stored (text for SQLite timestamps)."""
    queries = {
        "transfers": "SELECT * FROM transfers WHERE merchant_id = :m ORDER BY id",
        # (the merchant's funding top-up is not the repository's: left out)
        "journal_entries": (
            "SELECT * FROM journal_entries"
            " WHERE merchant_id = :m AND transfer_id IS NOT NULL ORDER BY id"
        ),
        "postings": (
            "SELECT p.entry_id, p.account_key, p.amount FROM postings p"
            " JOIN journal_entries j ON j.id = p.entry_id"
            " WHERE j.merchant_id = :m AND j.transfer_id IS NOT NULL"
            " ORDER BY p.entry_id, p.account_key"
        ),
        "events": (
            "SELECT * FROM events WHERE merchant_id = :m AND type LIKE 'transfer.%' ORDER BY id"
        ),
        "accounts": "SELECT * FROM accounts WHERE owner = :m ORDER BY key",
    }
    out: dict[str, list[dict[str, str]]] = {}
    async with gw.db.read() as conn:
        for table, sql in queries.items():
            rows = [dict(r) for r in (await conn.execute(text(sql), {"m": merchant})).mappings()]
            if table == "transfers":  # sealed with a random nonce: compare what they hold
                for row in rows:
                    row["payee_account"] = SEALER.open(row["payee_account"], PAYEE_ACCOUNT)
                    row["payee_name"] = SEALER.open(row["payee_name"], "transfers.payee_name")
            out[table] = [{k: _stored(v) for k, v in r.items()} for r in rows]
    return out


def _normalised(rows: dict[str, Any], merchant: str, ids: _Ids) -> str:
    flat = repr(rows)
    # Numbered in the order they were made, counting only ids that were written: a path
    # may draw ids for an attempt that wrote nothing (PostgreSQL's one-statement move
    # binds them before its guard finds a stale guess), which is no difference in rows.
    written = [made for made in ids.made if made in flat]
    for n, made in enumerate(written):
        flat = flat.replace(made, f"<id{n}>")
        if made.startswith("tr_"):
            flat = flat.replace(channel_reference(made), f"<ref{n}>")
    return flat.replace(merchant, "<merchant>")


async def test_fast_and_generic_paths_write_identical_rows(gw: Gateway) -> None:
    results = []
    for fast in (True, False):
        merchant = await new_funded_merchant(gw, FUNDS, name=f"repo fast={fast}")
        ids = _Ids()
        await _run(gw, TransferRepo(gw.db, fast=fast, ids=ids), merchant, ids)
        rows = await _rows(gw, merchant)
        assert len(rows["transfers"]) == 4 and len(rows["events"]) == 8
        results.append(_normalised(rows, merchant, ids))
    fast_rows, generic_rows = results
    assert fast_rows == generic_rows


async def test_fast_and_generic_paths_read_the_same_transfer(gw: Gateway) -> None:
    """The fast read of one transfer (SQLite: the event loop's inline reader; PostgreSQL:
    the bare asyncpg connection) and SQLAlchemy's read give the same domain value, in every
    state the repository writes (sealed payee fields, timestamps, JSON next action)."""
    merchant = await new_funded_merchant(gw, FUNDS, name="repo reads")
    ids = _Ids()
    await _run(gw, TransferRepo(gw.db, ids=ids), merchant, ids)
    fast, generic = TransferRepo(gw.db), TransferRepo(gw.db, fast=False)
    made = [i for i in ids.made if i.startswith("tr_")]
    found = [await fast.get(tid) for tid in made]
    assert len([t for t in found if t is not None]) == 4  # (the refused ones were never written)
    for tid, via_fast in zip(made, found, strict=True):
        assert via_fast == await generic.get(tid)
        assert await fast.get(tid, merchant) == via_fast
        assert await fast.get(tid, "mer_someone_else") is None
    assert await fast.get("tr_missing") is None


async def test_get_transfer_costs_one_statement(gw: Gateway, api: httpx.AsyncClient) -> None:
    """GET /v1/transfers/{id} is one SQL statement (no BEGIN around it) on either database."""
    row, secret = await create_merchant(gw, "repo read test")
    await topup(gw, row["id"], 100_000)
    auth = bearer(secret)
    body = {
        "amount": 1_000,
        "currency": "CNY",
        "payee": {"type": "alipay_account", "account": "one@example.com"},
        "description": "succeeded",
    }
    created = await api.post(
        "/v1/transfers", json=body, headers={**auth, "Idempotency-Key": uuid.uuid4().hex}
    )
    assert created.status_code == 201, created.text
    path = f"/v1/transfers/{created.json()['id']}"
    assert (await api.get(path, headers=auth)).status_code == 200  # the key is now cached
    before = gw.db.counters.snapshot()
    shown = await api.get(path, headers=auth)
    after = gw.db.counters.snapshot()
    assert shown.status_code == 200 and shown.json()["status"] == "succeeded"
    assert after["sql_statements"] - before["sql_statements"] == 1
    assert after["sql_transactions"] == before["sql_transactions"]
