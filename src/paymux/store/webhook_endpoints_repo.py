"""Merchants' webhook endpoints, their signing secrets, and the attempts made to each: the
SQL of the endpoint API (the relay and the delivery worker have webhook_deliveries_repo).

An endpoint is deleted softly (``deleted_at``): deliveries and attempts keep pointing at
it, and every read here sees live endpoints only.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict, cast

from sqlalchemy import and_, or_, select, update

from paymux.store.db import Database
from paymux.store.tables import webhook_attempts, webhook_endpoints, webhook_secrets

_W, _K, _A = webhook_endpoints.c, webhook_secrets.c, webhook_attempts.c


class EndpointRow(TypedDict):
    id: str
    merchant_id: str
    url: str
    event_types: str  # JSON list; ["*"] = all
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


class EndpointPatch(TypedDict, total=False):
    """The columns an update sets (event_types as stored: a JSON list)."""

    url: str
    event_types: str
    description: str | None
    enabled: bool
    updated_at: datetime


class AttemptRow(TypedDict):
    id: int
    delivery_id: str
    endpoint_id: str
    event_id: str
    attempt: int
    ok: bool
    status_code: int | None
    latency_ms: int
    response_excerpt: str | None
    error: str | None
    created_at: datetime


async def insert(db: Database, row: EndpointRow, secret: str) -> None:
    """The endpoint with its first signing secret."""
    async with db.write() as conn:
        await conn.execute(webhook_endpoints.insert().values(**row))
        await conn.execute(
            webhook_secrets.insert().values(
                endpoint_id=row["id"], secret=secret, created_at=row["created_at"]
            )
        )


async def get_live(db: Database, merchant_id: str, endpoint_id: str) -> EndpointRow | None:
    """The endpoint if it is this merchant's and not deleted."""
    async with db.read() as conn:
        found = (
            (
                await conn.execute(
                    select(webhook_endpoints).where(
                        and_(
                            _W.id == endpoint_id,
                            _W.merchant_id == merchant_id,
                            _W.deleted_at.is_(None),
                        )
                    )
                )
            )
            .mappings()
            .first()
        )
    return None if found is None else cast(EndpointRow, dict(found))


async def page(
    db: Database, merchant_id: str, *, limit: int, starting_after: str | None
) -> tuple[list[EndpointRow], bool]:
    """The merchant's live endpoints, newest first; and whether there are more."""
    stmt = (
        select(webhook_endpoints)
        .where(and_(_W.merchant_id == merchant_id, _W.deleted_at.is_(None)))
        .order_by(_W.id.desc())
        .limit(limit + 1)
    )
    if starting_after:
        stmt = stmt.where(_W.id < starting_after)
    async with db.read() as conn:
        rows = [cast(EndpointRow, dict(r)) for r in (await conn.execute(stmt)).mappings()]
    return rows[:limit], len(rows) > limit


async def live_subscriptions(db: Database, merchant_id: str) -> list[tuple[str, str]]:
    """(id, event_types) of the merchant's enabled, live endpoints, by id."""
    async with db.read() as conn:
        rows = await conn.execute(
            select(_W.id, _W.event_types)
            .where(
                and_(_W.merchant_id == merchant_id, _W.enabled.is_(True), _W.deleted_at.is_(None))
            )
            .order_by(_W.id)
        )
        return [(str(i), str(types)) for i, types in rows.all()]


async def update_live(db: Database, endpoint_id: str, patch: EndpointPatch) -> None:
    async with db.write() as conn:
        await conn.execute(
            update(webhook_endpoints)
            .where(and_(_W.id == endpoint_id, _W.deleted_at.is_(None)))
            .values(**patch)
        )


async def soft_delete(db: Database, endpoint_id: str, now: datetime) -> None:
    async with db.write() as conn:
        await conn.execute(
            update(webhook_endpoints)
            .where(and_(_W.id == endpoint_id, _W.deleted_at.is_(None)))
            .values(deleted_at=now, enabled=False, updated_at=now)
        )


async def add_secret(
    db: Database, endpoint_id: str, secret: str, *, now: datetime, others_expire: datetime
) -> None:
    """A new signing secret; the current ones sign until ``others_expire`` at the latest
    (an earlier rotation's overlap is never lengthened, only shortened)."""
    async with db.write() as conn:
        await conn.execute(
            update(webhook_secrets)
            .where(
                and_(
                    _K.endpoint_id == endpoint_id,
                    or_(_K.expires_at.is_(None), _K.expires_at > others_expire),
                )
            )
            .values(expires_at=others_expire)
        )
        await conn.execute(
            webhook_secrets.insert().values(endpoint_id=endpoint_id, secret=secret, created_at=now)
        )


async def attempts_page(
    db: Database, endpoint_id: str, *, limit: int, before_id: int | None
) -> tuple[list[AttemptRow], bool]:
    """Attempts to one endpoint, newest first; and whether there are more."""
    stmt = (
        select(webhook_attempts)
        .where(_A.endpoint_id == endpoint_id)
        .order_by(_A.id.desc())
        .limit(limit + 1)
    )
    if before_id is not None:
        stmt = stmt.where(_A.id < before_id)
    async with db.read() as conn:
        rows = [cast(AttemptRow, dict(r)) for r in (await conn.execute(stmt)).mappings()]
    return rows[:limit], len(rows) > limit
