"""Top-ups, balances and the merchant's balance transactions (views of the journal)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, and_, select

from paymux.domain.ids import new_id
from paymux.domain.ledger import merchant_available, topup_entry
from paymux.service.errors import IdempotencyKeyReused, NotFound
from paymux.service.gateway import Gateway
from paymux.service.merchants import merchant_exists
from paymux.service.views import iso
from paymux.store import audit_repo
from paymux.store import ledger_repo as ledger
from paymux.store.audit_repo import AuditDraft
from paymux.store.errors import UniqueViolation
from paymux.store.tables import journal_entries, postings, topups


def topup_view(row: Any) -> dict[str, Any]:
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
    row: dict[str, Any]
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
    row: dict[str, Any] = {
        "id": new_id("tu"),
        "merchant_id": merchant_id,
        "idempotency_key": idempotency_key,
        "request_fingerprint": fingerprint,
        "amount": amount,
        "currency": currency,
        "description": description,
        "created_at": now,
    }
    entry = topup_entry(merchant_id, amount, currency)

    def write(conn: Connection) -> None:
        conn.execute(topups.insert().values(**row))
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
        async with gw.db.read() as conn:
            found = (
                (
                    await conn.execute(
                        select(topups).where(
                            topups.c.merchant_id == merchant_id,
                            topups.c.idempotency_key == idempotency_key,
                        )
                    )
                )
                .mappings()
                .first()
            )
        if found is None:
            raise
        if found["request_fingerprint"] != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request body"
            ) from None
        return TopupResult(dict(found), replayed=True)
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
    stmt = (
        select(journal_entries)
        .where(journal_entries.c.merchant_id == merchant_id)
        .order_by(journal_entries.c.id.desc())
        .limit(limit + 1)
    )
    if starting_after:
        stmt = stmt.where(journal_entries.c.id < starting_after)
    async with gw.db.read() as conn:
        entries = [dict(r) for r in (await conn.execute(stmt)).mappings()]
        page = entries[:limit]
        effects: dict[str, dict[str, int]] = {e["id"]: {} for e in page}
        if page:
            rows = await conn.execute(
                select(postings.c.entry_id, postings.c.account_key, postings.c.amount).where(
                    and_(
                        postings.c.entry_id.in_(list(effects)),
                        postings.c.account_key.like(f"merchant_%:{merchant_id}:%"),
                    )
                )
            )
            for entry_id, key, amount in rows.all():
                effects[entry_id][key.split(":", 1)[0]] = int(amount)
    data = []
    for e in page:
        eff = effects[e["id"]]
        data.append(
            {
                "id": e["id"],
                "object": "balance_transaction",
                "type": e["kind"],
                "currency": e["currency"],
                "available_change": eff.get("merchant_available", 0),
                "held_change": eff.get("merchant_held", 0),
                "source": e["transfer_id"] or e["topup_id"],
                "source_type": "transfer" if e["transfer_id"] else "topup",
                "created_at": iso(e["created_at"]),
            }
        )
    return data, len(entries) > limit
