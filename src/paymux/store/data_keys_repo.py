"""Data keys for encryption at rest: created once, stored wrapped, re-wrapped on rotation."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text, update

from paymux.sealing import SEALER, Kek, Sealer, SealingError, unwrap, wrap
from paymux.store.access_tables import data_keys
from paymux.store.db import Database
from paymux.store.errors import UniqueViolation

log = logging.getLogger(__name__)

# The first data key has a fixed id, so workers starting together agree on one: the losers
# of the insert race read the winner's key.
FIRST_DATA_KEY = "dek_0001"


@dataclass(frozen=True)
class RewrapReport:
    rewrapped: int
    already_current: int


def _kek_for(keks: list[Kek], kek_id: str) -> Kek:
    for kek in keks:
        if kek.id == kek_id:
            return kek
    raise SealingError(f"data key wrapped by {kek_id}, which is not configured")


async def load_data_keys(
    db: Database, keks: list[Kek], now: datetime, sealer: Sealer = SEALER
) -> None:
    """Unwrap every data key into ``sealer`` (creating the first one if there is none)."""
    for _ in range(2):
        async with db.read() as conn:
            rows = (await conn.execute(select(data_keys))).mappings().all()
        if rows:
            for row in rows:
                dek = unwrap(_kek_for(keks, row["kek_id"]), row["id"], row["wrapped"])
                sealer.add_data_key(row["id"], dek, active=bool(row["active"]))
            return
        dek = os.urandom(32)
        try:
            async with db.write() as conn:
                await conn.execute(
                    data_keys.insert().values(
                        id=FIRST_DATA_KEY,
                        kek_id=keks[0].id,
                        wrapped=wrap(keks[0], FIRST_DATA_KEY, dek),
                        active=1,
                        created_at=now,
                    )
                )
            log.info("created data key %s (wrapped by %s)", FIRST_DATA_KEY, keks[0].id)
        except UniqueViolation:  # db.py translates every driver's unique violation
            pass  # another worker created it first: read theirs
    raise SealingError("could not load or create a data key")


async def rewrap_data_keys(db: Database, keks: list[Kek], now: datetime) -> RewrapReport:
    """Wrap every data key under the current KEK (``keks[0]``). The data keys themselves do
    not change, so no value is re-encrypted and running gateways are not disturbed."""
    current = keks[0]
    done = same = 0
    async with db.write() as conn:
        rows = (await conn.execute(select(data_keys))).mappings().all()
        for row in rows:
            if row["kek_id"] == current.id:
                same += 1
                continue
            dek = unwrap(_kek_for(keks, row["kek_id"]), row["id"], row["wrapped"])
            await conn.execute(
                update(data_keys)
                .where(data_keys.c.id == row["id"], data_keys.c.kek_id == row["kek_id"])
                .values(kek_id=current.id, wrapped=wrap(current, row["id"], dek), rewrapped_at=now)
            )
            done += 1
    return RewrapReport(rewrapped=done, already_current=same)


# Sealed columns that may still hold plaintext written before encryption at rest existed.
_LEGACY = (
    ("transfers", "id", ("payee_account", "payee_name")),
    ("webhook_secrets", "id", ("secret",)),
)


async def seal_plaintext_rows(db: Database, batch: int = 500) -> int:
    """Encrypt values still stored in plaintext (rows from before this feature); returns the
    number of rows sealed. Safe to run while the gateway serves: each row is updated only
    if it still holds the plaintext that was read."""
    from paymux.store.sealed import payee_account_index  # noqa: PLC0415

    sealed_rows = 0
    for table, pk, columns in _LEGACY:
        first = columns[0]
        while True:
            async with db.read() as conn:
                rows = (
                    (
                        await conn.execute(
                            text(
                                f"SELECT {pk}, {', '.join(columns)} FROM {table} "  # noqa: S608
                                f"WHERE {first} NOT LIKE 'pmx1:%' LIMIT :n"
                            ),
                            {"n": batch},
                        )
                    )
                    .mappings()
                    .all()
                )
            if not rows:
                break
            async with db.write() as conn:
                for row in rows:
                    values = {
                        c: SEALER.seal(row[c], f"{table}.{c}") if row[c] is not None else None
                        for c in columns
                    }
                    sets = ", ".join(f"{c} = :new_{c}" for c in columns)
                    params = {f"new_{c}": v for c, v in values.items()}
                    if table == "transfers":
                        sets += ", payee_account_hmac = :hmac"
                        params["hmac"] = payee_account_index(row["payee_account"])
                    await conn.execute(
                        text(
                            f"UPDATE {table} SET {sets} "  # noqa: S608
                            f"WHERE {pk} = :pk AND {first} = :old"
                        ),
                        {**params, "pk": row[pk], "old": row[first]},
                    )
                    sealed_rows += 1
    return sealed_rows
