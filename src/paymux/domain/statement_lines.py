"""One line of a channel's account-flow statement (对账单), in Paymux's terms.

Adapters parse their channel's file into these; reconciliation
(:mod:`paymux.domain.reconciliation`) matches them against the ledger.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StatementLineKind(enum.StrEnum):
    """What one line of a channel's account-flow statement moved."""

    PAYMENT = "payment"  # money paid out for a transfer (支出)
    REFUND = "refund"  # money that came back for a transfer (bank bounce 退票 / 退回)
    FEE = "fee"  # the channel's own charge for a transfer (手续费 / 收费)
    OTHER = "other"  # anything else on the account (top-ups, withdrawals...): not ours


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One detail line of a channel statement, mapped into Paymux's terms."""

    line_no: int  # 1-based position among the detail lines, for evidence
    kind: StatementLineKind
    reference: str | None  # our channel reference (商户订单号 / 业务凭证号), if the line has one
    channel_order_id: str | None  # the channel's order or business id
    amount: int  # fen, always positive: the direction is in ``kind``
    currency: str
    booked_at: str  # the channel's own timestamp text (Asia/Shanghai)
