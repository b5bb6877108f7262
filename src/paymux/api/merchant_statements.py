"""GET /v1/statements?date=YYYY-MM-DD[&format=csv]: a merchant's statement of one business day.

Merchant key: its own statement. Admin key: ``merchant_id`` is required.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from paymux.api.auth import Caller, gateway, merchant_or_operator
from paymux.api.idempotent import json_response
from paymux.api.responses import StatementOut
from paymux.service import statements as svc
from paymux.service.errors import InvalidRequest, NotFound
from paymux.service.merchants import merchant_exists
from paymux.service.reports import parse_business_day
from paymux.service.views import iso

router = APIRouter(prefix="/v1/statements", tags=["statements"])


def statement_view(s: svc.Statement) -> dict[str, Any]:
    balance = s.opening
    movements = []
    for m in s.movements:
        balance += m.amount
        movements.append(
            {
                "entry_id": m.entry_id,
                "type": svc.MOVEMENT_TYPES.get(m.kind, m.kind),
                "transfer_id": m.transfer_id,
                "topup_id": m.topup_id,
                "amount": m.amount,
                "balance_after": balance,
                "created_at": iso(m.created_at),
            }
        )
    return {
        "object": "statement",
        "merchant_id": s.merchant_id,
        "date": s.day.isoformat(),
        "currency": s.currency,
        "opening_balance": s.opening,
        "movements": movements,
        "movement_total": sum(m.amount for m in s.movements),
        "closing_balance": s.closing,
        "ledger_closing_balance": s.ledger_closing,
        "balanced": s.balanced,
        "fees": [
            {
                "entry_id": f.entry_id,
                "transfer_id": f.transfer_id,
                "fee": f.fee,
                "created_at": iso(f.created_at),
            }
            for f in s.fees
        ],
        "fee_total": sum(f.fee for f in s.fees),
        "ledger_digest": (
            {"day": s.digest.day, "digest": s.digest.digest, "entries": s.digest.entries}
            if s.digest
            else None
        ),
    }


CSV_COLUMNS = (
    "type",
    "entry_id",
    "transfer_id",
    "topup_id",
    "amount",
    "balance_after",
    "created_at",
)


def statement_csv(view: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(
        ["# merchant", view["merchant_id"], "date", view["date"], "currency", view["currency"]]
    )
    digest = view["ledger_digest"]
    w.writerow(["# ledger_digest", digest["digest"] if digest else "not sealed yet"])
    w.writerow(
        ["type", "entry_id", "transfer_id", "topup_id", "amount", "balance_after", "created_at"]
    )
    w.writerow(["opening", "", "", "", "", view["opening_balance"], ""])
    for m in view["movements"]:
        w.writerow(
            [
                m["type"],
                m["entry_id"],
                m["transfer_id"] or "",
                m["topup_id"] or "",
                m["amount"],
                m["balance_after"],
                m["created_at"],
            ]
        )
    w.writerow(["closing", "", "", "", view["movement_total"], view["closing_balance"], ""])
    w.writerow(["fees_settled", "", "", "", view["fee_total"], "", ""])
    return out.getvalue()


@router.get(
    "",
    responses={
        200: {
            "model": StatementOut,
            "description": "OK",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
    summary="A merchant's statement of one business day (JSON or CSV)",
)
async def get_statement(
    request: Request,
    caller: Caller = Depends(merchant_or_operator("balance:read")),
    date_: str = Query(..., alias="date", max_length=10, description="Business day, YYYY-MM-DD"),
    merchant_id: str | None = Query(None, max_length=40),
    currency: str = Query("CNY", min_length=3, max_length=3),
    fmt: Literal["json", "csv"] | None = Query(None, alias="format"),
) -> Response:
    gw = gateway(request)
    day = parse_business_day(date_, "date")
    if caller.is_admin:
        if merchant_id is None:
            raise InvalidRequest("operators must name a merchant_id")
        if not await merchant_exists(gw, merchant_id):
            raise NotFound(f"no merchant {merchant_id}")
        scope = merchant_id
    else:
        if merchant_id is not None and merchant_id != caller.merchant_id:
            raise NotFound(f"no merchant {merchant_id}")
        assert caller.merchant_id is not None
        scope = caller.merchant_id
    if currency != "CNY":
        raise InvalidRequest("only CNY statements exist")
    view = statement_view(await svc.merchant_statement(gw, scope, day, currency))
    if fmt == "csv":
        return Response(statement_csv(view), media_type="text/csv; charset=utf-8")
    return json_response(200, view)
