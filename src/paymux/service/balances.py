"""Top-ups, balances and the merchant's balance transactions (views of the journal)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from paymux.domain.ids import new_id
from paymux.domain.ledger import merchant_available, topup_entry
from paymux.service.errors import IdempotencyKeyReused, NotFound
from paymux.service.gateway import Gateway
from paymux.service.merchants import merchant_exists
from paymux.service.views import iso
from paymux.store import audit_repo, balance_transactions_repo, topups_repo
from paymux.store import ledger_repo as ledger
from paymux.store.audit_repo import AuditDraft
from paymux.store.db import WriteTx
from paymux.store.errors import UniqueViolation
from paymux.store.topups_repo import TopupRow


def topup_view(row: TopupRow) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "topup",
        "merchant_id": row["merchant_id"],
        "amount": row["amount"],
        "currency": row["currency"],
        "description": row["description"],
        "created_at": iso(row["created_at"]),
    }


@dataclass(frozen=True)
class TopupResult:
    row: TopupRow
    replayed: bool


async def create_topup(
    gw: Gateway,
    merchant_id: str,
    *,
    amount: int,
    currency: str,
    description: str | None,
    idempotency_key: str,
    fingerprint: str,
    audit: AuditDraft | None = None,
) -> TopupResult:
    if not await merchant_exists(gw, merchant_id):
        raise NotFound(f"no merchant {merchant_id}")
    now = gw.clock()
    row = TopupRow(
        id=new_id("tu"),
        merchant_id=merchant_id,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        amount=amount,
        currency=currency,
        description=description,
        created_at=now,
    )
    entry = topup_entry(merchant_id, amount, currency)

    def write(conn: WriteTx) -> None:
        topups_repo.insert(conn, row)
        ledger.post(conn, entry, now=now, merchant_id=merchant_id, topup_id=row["id"])
        gw.outbox.emit(
            conn,
            merchant_id=merchant_id,
            event_type="balance.topped_up",
            obj=topup_view(row),
            now=now,
        )
        if audit is not None:  # recorded in the same transaction as the credit
            audit_repo.append(conn, replace(audit, object_id=row["id"], after=topup_view(row)), now)

    try:
        await gw.db.run_write(write)
    except UniqueViolation:
        found = await topups_repo.by_idempotency_key(gw.db, merchant_id, idempotency_key)
        if found is None:
            raise
        if found["request_fingerprint"] != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request body"
            ) from None
        return TopupResult(found, replayed=True)
    gw.outbox.notify_committed()
    return TopupResult(row, replayed=False)


async def balance(gw: Gateway, merchant_id: str, currency: str) -> dict[str, Any]:
    avail = merchant_available(merchant_id, currency)
    async with gw.db.read() as conn:
        found = await gw.ledger.balances(conn, [avail.key])
        held = await gw.ledger.held_by_merchant(conn, merchant_id)
    return {
        "object": "balance",
        "currency": currency,
        "available": found.get(avail.key, 0),
        "held": held.get((merchant_id, currency), 0),
    }


async def balance_transactions(
    gw: Gateway, merchant_id: str, *, limit: int, starting_after: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """Each journal entry that touched the merchant, with its effect on their accounts."""
    page, more = await balance_transactions_repo.page(
        gw.db, merchant_id, limit=limit, starting_after=starting_after
    )
    data = [
        {
            "id": t.entry_id,
            "object": "balance_transaction",
            "type": t.kind,
            "currency": t.currency,
            "available_change": t.available_change,
            "held_change": t.held_change,
            "source": t.transfer_id or t.topup_id,
            "source_type": "transfer" if t.transfer_id else "topup",
            "created_at": iso(t.created_at),
        }
        for t in page
    ]
    return data, more
