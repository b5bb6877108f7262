"""The sandboxes' persistent order book: every order and the money it moved, kept on disk.

A real channel remembers what it paid across restarts, so the sandboxes do too: each change
to an order appends one JSON line (the order's whole record) to ``orders.jsonl`` under the
sandbox's data dir; on start the last line per reference wins. Statements (对账单) are
generated from the records' *movements*: a payment and the channel's fee when an order is
paid, a refund when a paid order comes back.

Shared by both sandboxes (like :mod:`paymux.channels.sandbox_rules`); the channel-specific
snapshot of an order lives in each record's ``state``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
BOOK_FILE: Final = "orders.jsonl"
# The prefunded balance of the sandbox's account before its first movement (fen).
OPENING_BALANCE: Final = 10_000_000_000

PAYMENT: Final = "payment"
REFUND: Final = "refund"
FEE: Final = "fee"


def shanghai_text(at: datetime | None = None) -> str:
    return (at or datetime.now(SHANGHAI)).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class FeeRule:
    """The channel's own charge per transfer: amount * bps / 10000 (half up) + fixed, clamped."""

    bps: Decimal
    fixed: int = 0
    maximum: int | None = None

    def fee(self, amount: int) -> int:
        fen = int((Decimal(amount) * self.bps / 10_000).quantize(Decimal(1), ROUND_HALF_UP))
        fen += self.fixed
        return min(fen, self.maximum) if self.maximum is not None else fen


class SandboxBook:
    """Records by reference, appended to ``<data_dir>/orders.jsonl`` on every change."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / BOOK_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict[str, Any]] = {}
        self._seq = 0
        self._lock = threading.Lock()
        if self.path.is_file():
            with self.path.open(encoding="utf-8") as fh:
                for raw in fh:
                    if not raw.strip():
                        continue
                    try:
                        record = json.loads(raw)
                    except ValueError:
                        continue  # a line torn by a crash mid-write: the previous one stands
                    self.records[record["reference"]] = record
                    self._seq = max(self._seq, int(record.get("seq", 0)))

    def put(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            record["seq"] = self._seq
            self.records[record["reference"]] = record
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")

    def next_flow_no(self, prefix: str) -> str:
        with self._lock:
            self._seq += 1
            return f"{prefix}{self._seq:012d}"

    # --- movements -----------------------------------------------------------------------

    def record_status(
        self,
        record: dict[str, Any],
        *,
        paid: bool,
        refunded: bool,
        fee: int,
        flow_prefix: str,
        at: str | None = None,
    ) -> None:
        """Add the movements a status implies that the record lacks (never removes one)."""
        movements: list[dict[str, Any]] = record.setdefault("movements", [])
        kinds = {m["kind"] for m in movements}
        now = at or shanghai_text()
        if (paid or refunded) and PAYMENT not in kinds:
            movements.append(self._movement(PAYMENT, record["amount"], now, flow_prefix))
            if fee > 0:
                movements.append(self._movement(FEE, fee, now, flow_prefix))
        if refunded and REFUND not in kinds:
            movements.append(self._movement(REFUND, record["amount"], now, flow_prefix))

    def retamper_amount(self, record: dict[str, Any], amount: int) -> None:
        """The channel's book now says ``amount`` (a silent change: its lines follow)."""
        record["amount"] = amount
        for movement in record.get("movements", []):
            if movement["kind"] in (PAYMENT, REFUND):
                movement["amount"] = amount

    def _movement(self, kind: str, amount: int, at: str, prefix: str) -> dict[str, Any]:
        return {"kind": kind, "amount": amount, "at": at, "flow_no": self.next_flow_no(prefix)}

    def day_lines(self, day: str) -> Iterator[tuple[dict[str, Any], dict[str, Any], int]]:
        """(record, movement, balance after it) of every movement booked on ``day``, in order."""
        everything = sorted(
            (
                (m["at"], m["flow_no"], r, m)
                for r in self.records.values()
                for m in r.get("movements", [])
            ),
            key=lambda item: (item[0], item[1]),
        )
        balance = OPENING_BALANCE
        for at, _flow, record, movement in everything:
            balance += movement["amount"] if movement["kind"] == REFUND else -movement["amount"]
            if at[:10] == day:
                yield record, movement, balance
            elif at[:10] > day:
                return
