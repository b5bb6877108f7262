"""The store repositories' own SQL, on the configured database: what each writes it reads
back, in the order and pages it promises."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from paymux.domain.fees import FeeKind, FeeRule, FeeScheduleEntry
from paymux.service.gateway import Gateway
from paymux.store import (
    balance_transactions_repo,
    events_repo,
    fee_rules_repo,
    merchants_repo,
    topups_repo,
    webhook_endpoints_repo,
)
from paymux.store.db import WriteTx
from paymux.store.merchants_repo import MerchantRow
from paymux.store.tables import webhook_secrets
from paymux.store.topups_repo import TopupRow
from paymux.store.webhook_endpoints_repo import EndpointRow
from tests.store.store_support import new_funded_merchant, topup

AT = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)


def _merchant(name: str) -> MerchantRow:
    token = uuid.uuid4().hex
    return MerchantRow(
        id="mer_" + token[:20],
        name=name,
        key_hash=token + token,
        key_hint="sk_test…",
        active=True,
        created_at=AT,
    )


async def test_merchants_repo_lists_what_it_inserted_by_id(gw: Gateway) -> None:
    rows = [_merchant("repo b"), _merchant("repo a")]
    for row in rows:

        def write(tx: WriteTx, row: MerchantRow = row) -> None:
            merchants_repo.insert(tx, row)

        await gw.db.run_write(write)

    listed = await merchants_repo.list_all(gw.db)

    ids = [m["id"] for m in listed]
    assert ids == sorted(ids)
    mine = {m["id"]: m for m in listed if m["id"] in {r["id"] for r in rows}}
    for row in rows:
        assert mine[row["id"]] == row
        assert await merchants_repo.exists(gw.db, row["id"])
        assert await merchants_repo.name_of(gw.db, row["id"]) == row["name"]
    assert not await merchants_repo.exists(gw.db, "mer_nobody")
    assert await merchants_repo.name_of(gw.db, "mer_nobody") is None


async def test_fee_rules_repo_round_trips_a_rule_exactly(gw: Gateway) -> None:
    merchant = await new_funded_merchant(gw, 0, "fee repo")
    entry = FeeScheduleEntry(
        kind=FeeKind.price,
        channel="alipay",
        payee_type="bank_card",
        rule=FeeRule(bps=Decimal("12.5"), fixed=7, minimum=3, maximum=None),
        effective_at=AT,
        merchant_id=merchant,
    )

    version = await gw.db.run_write(lambda tx: fee_rules_repo.insert(tx, entry, AT))

    stored = [e for e in await fee_rules_repo.load_all(gw.db) if e.version == version]
    assert len(stored) == 1
    got = stored[0]
    assert got.rule == entry.rule and got.rule.bps == Decimal("12.5")
    assert (got.kind, got.channel, got.payee_type, got.merchant_id) == (
        FeeKind.price,
        "alipay",
        "bank_card",
        merchant,
    )
    assert got.effective_at == AT
    versions = [e.version for e in await fee_rules_repo.load_all(gw.db)]
    assert versions == sorted(versions)


async def test_topups_repo_finds_a_topup_by_its_idempotency_key(gw: Gateway) -> None:
    merchant = await new_funded_merchant(gw, 0, "topup repo")
    row = TopupRow(
        id="tu_" + uuid.uuid4().hex[:20],
        merchant_id=merchant,
        idempotency_key="k-1",
        request_fingerprint="f" * 64,
        amount=12_345,
        currency="CNY",
        description="float",
        created_at=AT,
    )
    await gw.db.run_write(lambda tx: topups_repo.insert(tx, row))

    assert await topups_repo.by_idempotency_key(gw.db, merchant, "k-1") == row
    assert await topups_repo.by_idempotency_key(gw.db, merchant, "k-2") is None
    other = await new_funded_merchant(gw, 0, "topup repo other")
    assert await topups_repo.by_idempotency_key(gw.db, other, "k-1") is None


async def test_balance_transactions_repo_pages_newest_first(gw: Gateway) -> None:
    merchant = await new_funded_merchant(gw, 0, "balance transactions repo")
    for amount in (100, 200, 300):
        await topup(gw, merchant, amount)

    first, more = await balance_transactions_repo.page(
        gw.db, merchant, limit=2, starting_after=None
    )
    rest, more_after = await balance_transactions_repo.page(
        gw.db, merchant, limit=2, starting_after=first[-1].entry_id
    )

    assert more and not more_after
    assert [t.available_change for t in first + rest] == [300, 200, 100]
    assert all(t.held_change == 0 and t.topup_id and t.transfer_id is None for t in first)
    ids = [t.entry_id for t in first + rest]
    assert ids == sorted(ids, reverse=True)


def _endpoint(merchant_id: str, url: str) -> EndpointRow:
    return EndpointRow(
        id="we_" + uuid.uuid4().hex[:20],
        merchant_id=merchant_id,
        url=url,
        event_types='["*"]',
        description=None,
        enabled=True,
        created_at=AT,
        updated_at=AT,
        deleted_at=None,
    )


async def test_webhook_endpoints_repo_reads_live_endpoints_only(gw: Gateway) -> None:
    merchant = await new_funded_merchant(gw, 0, "endpoint repo")
    kept, gone, disabled = (_endpoint(merchant, f"https://hooks.example.com/{n}") for n in range(3))
    for row in (kept, gone, disabled):
        await webhook_endpoints_repo.insert(gw.db, row, "whsec_" + uuid.uuid4().hex)
    await webhook_endpoints_repo.update_live(gw.db, disabled["id"], {"enabled": False})
    await webhook_endpoints_repo.soft_delete(gw.db, gone["id"], AT)
    # A deleted endpoint is not changed any more.
    await webhook_endpoints_repo.update_live(gw.db, gone["id"], {"url": "https://x.example"})

    assert await webhook_endpoints_repo.get_live(gw.db, merchant, kept["id"]) == kept
    assert await webhook_endpoints_repo.get_live(gw.db, merchant, gone["id"]) is None
    assert await webhook_endpoints_repo.get_live(gw.db, "mer_other", kept["id"]) is None
    first, more = await webhook_endpoints_repo.page(gw.db, merchant, limit=1, starting_after=None)
    rest, more_after = await webhook_endpoints_repo.page(
        gw.db, merchant, limit=1, starting_after=first[0]["id"]
    )
    assert more and not more_after
    assert {r["id"] for r in first + rest} == {kept["id"], disabled["id"]}
    assert await webhook_endpoints_repo.live_subscriptions(gw.db, merchant) == [
        (kept["id"], '["*"]')
    ]


async def test_webhook_endpoints_repo_never_lengthens_a_rotated_secret(gw: Gateway) -> None:
    merchant = await new_funded_merchant(gw, 0, "secret repo")
    row = _endpoint(merchant, "https://hooks.example.com/rotate")
    await webhook_endpoints_repo.insert(gw.db, row, "whsec_first")
    soon, later = AT + timedelta(minutes=5), AT + timedelta(hours=1)

    await webhook_endpoints_repo.add_secret(gw.db, row["id"], "whsec_b", now=AT, others_expire=soon)
    await webhook_endpoints_repo.add_secret(
        gw.db, row["id"], "whsec_c", now=AT, others_expire=later
    )

    k = webhook_secrets.c
    async with gw.db.read() as conn:
        rows = (
            await conn.execute(
                select(k.secret, k.expires_at).where(k.endpoint_id == row["id"]).order_by(k.id)
            )
        ).all()
    expiries = [(secret, at and at.astimezone(UTC)) for secret, at in rows]
    assert expiries == [("whsec_first", soon), ("whsec_b", later), ("whsec_c", None)]


async def test_events_repo_pages_by_type_with_deliveries(gw: Gateway) -> None:
    merchant = await new_funded_merchant(gw, 0, "events repo")
    for amount in (100, 200):
        await topup(gw, merchant, amount)

    page, more = await events_repo.page(
        gw.db, merchant, event_type="balance.topped_up", limit=1, starting_after=None
    )
    older, _ = await events_repo.page(
        gw.db, merchant, event_type=None, limit=5, starting_after=page[0]["id"]
    )
    none, _ = await events_repo.page(
        gw.db, merchant, event_type="transfer.failed", limit=5, starting_after=None
    )

    assert more and len(older) == 1 and none == []
    assert older[0]["id"] < page[0]["id"]
    found = await events_repo.with_deliveries(gw.db, merchant, page[0]["id"])
    assert found is not None and found[0] == page[0] and found[1] == []
    assert await events_repo.with_deliveries(gw.db, "mer_other", page[0]["id"]) is None
