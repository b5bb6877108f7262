"""Merchants; their first API key is created with them (stored as SHA-256, shown once)."""

from __future__ import annotations

from typing import Any

from paymux.domain.access import ALL_SCOPES, ApiKey, Principal
from paymux.domain.ids import new_id
from paymux.domain.ledger import merchant_available
from paymux.domain.money import SUPPORTED_CURRENCIES
from paymux.request_context import current_request_id
from paymux.service.access import Authenticator, audit_draft, hash_key, key_prefix, new_secret
from paymux.service.gateway import Gateway
from paymux.service.views import iso
from paymux.store import audit_repo, keys_repo, merchants_repo
from paymux.store.db import WriteTx
from paymux.store.ledger_repo import ensure_accounts
from paymux.store.merchants_repo import MerchantRow


def merchant_view(row: MerchantRow) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "merchant",
        "name": row["name"],
        "key_hint": row["key_hint"],
        "created_at": iso(row["created_at"]),
    }


async def create_merchant(
    gw: Gateway, name: str, actor: Principal | None = None
) -> tuple[MerchantRow, str]:
    secret = new_secret("merchant")
    now = gw.clock()
    rid = current_request_id()  # read here: write() runs on the writer thread
    row = MerchantRow(
        id=new_id("mer"),
        name=name,
        key_hash=hash_key(secret),
        key_hint=secret[:7] + "…",  # the first key's; api_keys holds every key
        active=True,
        created_at=now,
    )
    # Only `available` keeps a cached balance row; `held` is derived (see ledger_repo).
    refs = [merchant_available(row["id"], currency) for currency in sorted(SUPPORTED_CURRENCIES)]

    key = ApiKey(
        id=new_id("key"),
        kind="merchant",
        merchant_id=row["id"],
        operator_id=None,
        name="default",
        prefix=key_prefix(secret),
        scopes=(ALL_SCOPES,),
        created_at=now,
    )

    def write(conn: WriteTx) -> None:
        merchants_repo.insert(conn, row)
        ensure_accounts(conn, refs)
        keys_repo.insert_key(conn, key, row["key_hash"], actor.key_id if actor else None)
        audit_repo.append(
            conn,
            audit_draft(
                actor,
                "merchant.create",
                "merchant",
                row["id"],
                row["id"],
                after={"name": name, "first_key_id": key.id},
                request_id=rid,
            ),
            now,
        )

    await gw.db.run_write(write)
    return row, secret


async def list_merchants(gw: Gateway) -> list[MerchantRow]:
    return await merchants_repo.list_all(gw.db)


async def merchant_exists(gw: Gateway, merchant_id: str) -> bool:
    return await merchants_repo.exists(gw.db, merchant_id)


async def merchant_name(gw: Gateway, merchant_id: str) -> str | None:
    return await merchants_repo.name_of(gw.db, merchant_id)


# The authenticator now covers merchant and operator keys (service/access.py).
MerchantAuth = Authenticator
