"""API keys, operators and per-merchant rate limits: all of their SQL.

Write functions take the sync ``Connection`` of a :meth:`Database.run_write` transaction,
so a change and its audit record commit together.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, select, update
from sqlalchemy.engine import RowMapping

from paymux.domain.access import ApiKey, Operator, RateLimit, Role
from paymux.store.access_tables import api_keys, merchant_rate_limits, operators
from paymux.store.db import Database
from paymux.store.tables import merchants

_K = api_keys.c
_KEY_COLUMNS = (
    api_keys,
    operators.c.role.label("op_role"),
    operators.c.disabled_at.label("op_disabled_at"),
    merchants.c.active.label("merchant_active"),
)


def _key_select() -> Any:
    return select(*_KEY_COLUMNS).select_from(
        api_keys.outerjoin(operators, operators.c.id == _K.operator_id).outerjoin(
            merchants, merchants.c.id == _K.merchant_id
        )
    )


def _key(row: RowMapping | Mapping[str, Any]) -> ApiKey:
    if row["kind"] == "operator":
        holder_active = row["op_disabled_at"] is None
        role = Role(row["op_role"]) if row["op_role"] else None
    else:
        holder_active = bool(row["merchant_active"])
        role = None
    return ApiKey(
        id=row["id"],
        kind=row["kind"],
        merchant_id=row["merchant_id"],
        operator_id=row["operator_id"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=tuple(orjson.loads(row["scopes"])),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        role=role,
        holder_active=holder_active,
    )


def insert_key(conn: Connection, key: ApiKey, key_hash: str, created_by: str | None) -> None:
    conn.execute(
        api_keys.insert().values(
            id=key.id,
            kind=key.kind,
            merchant_id=key.merchant_id,
            operator_id=key.operator_id,
            name=key.name,
            prefix=key.prefix,
            key_hash=key_hash,
            scopes=orjson.dumps(list(key.scopes)).decode(),
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            created_by=created_by,
        )
    )


async def find_by_hash(db: Database, key_hash: str) -> ApiKey | None:
    async with db.read() as conn:
        row = (await conn.execute(_key_select().where(_K.key_hash == key_hash))).mappings().first()
    return _key(row) if row else None


async def find_by_hash_with_limit(
    db: Database, key_hash: str
) -> tuple[ApiKey, RateLimit | None] | None:
    """The key of ``key_hash`` and its merchant's own rate limit (None: the default), in
    ONE statement: authentication reads this only when its cache cannot answer."""
    rl = merchant_rate_limits.c
    stmt = (
        select(*_KEY_COLUMNS, rl.per_second.label("rl_per_second"), rl.burst.label("rl_burst"))
        .select_from(
            api_keys.outerjoin(operators, operators.c.id == _K.operator_id)
            .outerjoin(merchants, merchants.c.id == _K.merchant_id)
            .outerjoin(merchant_rate_limits, rl.merchant_id == _K.merchant_id)
        )
        .where(_K.key_hash == key_hash)
    )
    async with db.read() as conn:
        row = (await conn.execute(stmt)).mappings().first()
    if row is None:
        return None
    if row["rl_per_second"] is None:
        return _key(row), None
    return _key(row), RateLimit(row["rl_per_second"], row["rl_burst"])


async def get_key(db: Database, key_id: str) -> ApiKey | None:
    async with db.read() as conn:
        row = (await conn.execute(_key_select().where(_K.id == key_id))).mappings().first()
    return _key(row) if row else None


def get_key_sync(conn: Connection, key_id: str) -> ApiKey | None:
    stmt = _key_select().where(_K.id == key_id)
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update(of=api_keys)
    row = conn.execute(stmt).mappings().first()
    return _key(row) if row else None


async def list_keys(
    db: Database, *, merchant_id: str | None = None, operator_id: str | None = None
) -> list[ApiKey]:
    stmt = _key_select().order_by(_K.created_at.desc(), _K.id.desc())
    if merchant_id is not None:
        stmt = stmt.where(_K.merchant_id == merchant_id)
    if operator_id is not None:
        stmt = stmt.where(_K.operator_id == operator_id)
    async with db.read() as conn:
        return [_key(r) for r in (await conn.execute(stmt)).mappings()]


async def key_ids_of_merchant(db: Database, merchant_id: str) -> list[str]:
    async with db.read() as conn:
        rows = await conn.execute(select(_K.id).where(_K.merchant_id == merchant_id))
        return [str(r) for r in rows.scalars()]


def revoke(conn: Connection, key_id: str, now: datetime) -> bool:
    result = conn.execute(
        update(api_keys).where(_K.id == key_id, _K.revoked_at.is_(None)).values(revoked_at=now)
    )
    return bool(result.rowcount)


def set_expiry(conn: Connection, key_id: str, expires_at: datetime) -> None:
    conn.execute(
        update(api_keys)
        .where(and_(_K.id == key_id, _K.revoked_at.is_(None)))
        .values(expires_at=expires_at)
    )


# Operators


def _operator(row: RowMapping) -> Operator:
    return Operator(
        id=row["id"],
        name=row["name"],
        role=Role(row["role"]),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
    )


def insert_operator(conn: Connection, op: Operator) -> None:
    conn.execute(
        operators.insert().values(
            id=op.id, name=op.name, role=op.role.value, created_at=op.created_at
        )
    )


async def list_operators(db: Database) -> list[Operator]:
    async with db.read() as conn:
        rows = await conn.execute(select(operators).order_by(operators.c.created_at))
        return [_operator(r) for r in rows.mappings()]


def get_operator_sync(conn: Connection, operator_id: str) -> Operator | None:
    row = conn.execute(select(operators).where(operators.c.id == operator_id)).mappings().first()
    return _operator(row) if row else None


def update_operator(
    conn: Connection, operator_id: str, *, role: Role | None, disabled_at: datetime | None
) -> None:
    values: dict[str, Any] = {}
    if role is not None:
        values["role"] = role.value
    if disabled_at is not None:
        values["disabled_at"] = disabled_at
    if values:
        conn.execute(update(operators).where(operators.c.id == operator_id).values(**values))


# Per-merchant rate limits


async def get_rate_limit(db: Database, merchant_id: str) -> RateLimit | None:
    async with db.read() as conn:
        row = (
            (
                await conn.execute(
                    select(merchant_rate_limits).where(
                        merchant_rate_limits.c.merchant_id == merchant_id
                    )
                )
            )
            .mappings()
            .first()
        )
    return RateLimit(row["per_second"], row["burst"]) if row else None


def get_rate_limit_sync(conn: Connection, merchant_id: str) -> RateLimit | None:
    row = (
        conn.execute(
            select(merchant_rate_limits).where(merchant_rate_limits.c.merchant_id == merchant_id)
        )
        .mappings()
        .first()
    )
    return RateLimit(row["per_second"], row["burst"]) if row else None


def put_rate_limit(conn: Connection, merchant_id: str, limit: RateLimit, now: datetime) -> None:
    t = merchant_rate_limits
    changed = conn.execute(
        update(t)
        .where(t.c.merchant_id == merchant_id)
        .values(per_second=limit.per_second, burst=limit.burst, updated_at=now)
    ).rowcount
    if not changed:
        conn.execute(
            t.insert().values(
                merchant_id=merchant_id,
                per_second=limit.per_second,
                burst=limit.burst,
                updated_at=now,
            )
        )
