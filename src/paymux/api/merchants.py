"""Operator endpoints: merchants and their top-ups (admin key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from paymux.api.auth import Caller, gateway, operator_role
from paymux.api.bodies import body_schema, read_model
from paymux.api.idempotent import idempotency_key_header, json_response, run_idempotent
from paymux.api.openapi import ok
from paymux.api.responses import BalanceOut, MerchantCreated, MerchantList, TopupOut
from paymux.api.schemas import MerchantCreate, TopupCreate
from paymux.domain.access import Role
from paymux.service import balances as bal
from paymux.service import merchants as svc
from paymux.service.access import audit_draft

router = APIRouter(prefix="/v1/merchants", tags=["operators"])


@router.post(
    "",
    status_code=201,
    openapi_extra=body_schema(MerchantCreate),
    responses=ok(MerchantCreated, 201),
    summary="Create a merchant; its secret key is shown once",
)
async def create_merchant(
    request: Request, caller: Caller = Depends(operator_role(Role.admin))
) -> Response:
    body, _data = await read_model(request, MerchantCreate)
    row, secret = await svc.create_merchant(gateway(request), body.name, caller.principal)
    return json_response(201, {**svc.merchant_view(row), "secret_key": secret})


@router.get("", responses=ok(MerchantList), summary="List merchants")
async def list_merchants(
    request: Request, _: Caller = Depends(operator_role(Role.viewer))
) -> Response:
    rows = await svc.list_merchants(gateway(request))
    return json_response(
        200,
        {
            "object": "list",
            "data": [svc.merchant_view(r) for r in rows],
            "has_more": False,
            "next_cursor": None,
        },
    )


@router.post(
    "/{merchant_id}/topups",
    status_code=201,
    openapi_extra=body_schema(TopupCreate),
    responses=ok(TopupOut, 201),
    summary="Credit a merchant's prefunded balance (requires Idempotency-Key)",
)
async def create_topup(
    merchant_id: str,
    request: Request,
    caller: Caller = Depends(operator_role(Role.operator, money_moving=True)),
    key: str = Depends(idempotency_key_header),
) -> Response:
    gw = gateway(request)
    body, _data = await read_model(request, TopupCreate)

    async def handler(fp: str) -> tuple[int, dict[str, Any], bool]:
        result = await bal.create_topup(
            gw,
            merchant_id,
            amount=body.amount,
            currency=body.currency,
            description=body.description,
            idempotency_key=key,
            fingerprint=fp,
            audit=audit_draft(caller.principal, "topup.create", "topup", None, merchant_id),
        )
        return 201, bal.topup_view(result.row), result.replayed

    return await run_idempotent(
        gw, f"ops-{merchant_id}", key, body.model_dump(mode="json"), handler
    )


@router.get(
    "/{merchant_id}/balance", responses=ok(BalanceOut), summary="A merchant's balance (operators)"
)
async def merchant_balance(
    merchant_id: str, request: Request, _: Caller = Depends(operator_role(Role.viewer))
) -> Response:
    gw = gateway(request)
    if not await svc.merchant_exists(gw, merchant_id):
        from paymux.service.errors import NotFound  # noqa: PLC0415

        raise NotFound(f"no merchant {merchant_id}")
    return json_response(200, await bal.balance(gw, merchant_id, "CNY"))
