"""/v1/balance and /v1/balance_transactions for the calling merchant."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from paymux.api.auth import Caller, gateway, merchant_scope
from paymux.api.idempotent import json_response
from paymux.api.openapi import ok
from paymux.api.pagination import Cursor, Limit, page
from paymux.api.responses import BalanceOut, BalanceTransactionList
from paymux.service import balances as svc

router = APIRouter(prefix="/v1", tags=["balance"])


@router.get("/balance", responses=ok(BalanceOut), summary="Available and held balance")
async def get_balance(
    request: Request,
    caller: Caller = Depends(merchant_scope("balance:read")),
    currency: Literal["CNY"] = "CNY",
) -> Response:
    assert caller.merchant_id is not None
    return json_response(200, await svc.balance(gateway(request), caller.merchant_id, currency))


@router.get(
    "/balance_transactions",
    responses=ok(BalanceTransactionList),
    summary="Every ledger entry that touched your balance",
)
async def list_balance_transactions(
    request: Request,
    caller: Caller = Depends(merchant_scope("balance:read")),
    limit: int = Limit,
    cursor: str | None = Cursor,
) -> Response:
    assert caller.merchant_id is not None
    data, more = await svc.balance_transactions(
        gateway(request), caller.merchant_id, limit=limit, starting_after=cursor
    )
    return json_response(200, page(data, more))
