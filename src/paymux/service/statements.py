"""Merchant statements: the merchant's own 对账 against Paymux for one business day.

Opening available balance, every movement of it (top-up, hold, release, return) with its
transfer, the fees settled that day, and the closing balance. ``opening + movements =
closing`` holds by construction and is checked against the ledger independently (the sum
of every posting to the account before the day's end); the day's ledger digest is printed
once the day is sealed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from paymux.service.gateway import Gateway
from paymux.service.ledger_digests import digest_of_day
from paymux.service.reconciliation import business_window
from paymux.store import statement_repo as repo
from paymux.store.ledger_digest_repo import StoredDigest

MOVEMENT_TYPES = {"topup": "topup", "hold": "hold", "release": "release", "reverse": "return"}


@dataclass(frozen=True)
class Statement:
    merchant_id: str
    currency: str
    day: date
    opening: int
    movements: list[repo.Movement]
    fees: list[repo.SettledFee]
    closing: int
    ledger_closing: int  # the ledger's own answer, computed independently
    digest: StoredDigest | None

    @property
    def balanced(self) -> bool:
        return (
            self.opening + sum(m.amount for m in self.movements)
            == self.closing
            == (self.ledger_closing)
        )


async def merchant_statement(
    gw: Gateway, merchant_id: str, day: date, currency: str = "CNY"
) -> Statement:
    tz = ZoneInfo(gw.settings.business_timezone)
    start, end = business_window(day, tz)
    async with gw.db.read() as conn:
        opening = await repo.available_before(conn, merchant_id, currency, start)
        movements = await repo.available_movements(conn, merchant_id, currency, start, end)
        fees = await repo.settled_fees(conn, merchant_id, currency, start, end)
        ledger_closing = await repo.available_before(conn, merchant_id, currency, end)
    closing = opening + sum(m.amount for m in movements)
    return Statement(
        merchant_id,
        currency,
        day,
        opening,
        movements,
        fees,
        closing,
        ledger_closing,
        await digest_of_day(gw, day),
    )
