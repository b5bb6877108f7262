"""/v1/transfers: create (idempotent), quote, read, list."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from paymux import tracing
from paymux.api.auth import Caller, gateway, merchant_or_operator, merchant_scope
from paymux.api.bodies import body_schema, read_model
from paymux.api.idempotent import (
    idempotency_key,
    idempotency_key_header,
    json_response,
    run_idempotent,
)
from paymux.api.openapi import IDEMPOTENCY_HEADER, ok
from paymux.api.pagination import Cursor, Limit, page
from paymux.api.responses import QuoteOut, TransferList, TransferOut
from paymux.api.schemas import DateTime, TransferCreate
from paymux.domain.circuit import CircuitState
from paymux.domain.failures import FailureCode
from paymux.domain.states import TransferStatus, is_final
from paymux.domain.transfers import Transfer
from paymux.service import transfers as svc
from paymux.service.gateway import Gateway
from paymux.service.views import transfer_view
from paymux.store.idempotency import StoredResponse

router = APIRouter(prefix="/v1/transfers", tags=["transfers"])


def detail(gw: Gateway, t: Transfer, *, operator: bool = False) -> dict[str, Any]:
    """The transfer as the API shows it: its view plus, while it waits on its channel, why."""
    view = transfer_view(t, operator=operator)
    if t.status is TransferStatus.pending and t.next_sync_at is not None:
        # Written and held, not yet sent: the sync loop sends it under its own reference
        # (its channel's circuit was open, or a crash interrupted its send).
        view["status_reason"] = "queued_for_send"
    if not is_final(t.status):
        state = gw.circuits.state(t.channel)
        if state is not CircuitState.closed:
            view["channel_circuit"] = state.value
    return view


def _new(body: TransferCreate) -> svc.NewTransfer:
    return svc.NewTransfer(
        amount=body.amount,
        currency=body.currency,
        payee_type=body.payee.type,
        payee_account=body.payee.account,
        payee_name=body.payee.name,
        channel=body.channel,
        description=body.description,
        metadata=body.metadata or {},
    )


@router.post(
    "",
    status_code=201,
    openapi_extra=body_schema(TransferCreate),
    responses=ok(TransferOut, 201, "Created (or the stored response of a replay)"),
    summary="Create a transfer (requires Idempotency-Key)",
)
async def create_transfer(
    request: Request,
    caller: Caller = Depends(merchant_scope("transfers:write", money_moving=True)),
    key: str = Depends(idempotency_key_header),
) -> Response:
    gw = gateway(request)
    body, _ = await read_model(request, TransferCreate)
    merchant_id = caller.merchant_id
    assert merchant_id is not None

    async def handler(fp: str) -> tuple[int, dict[str, Any], bool]:
        with tracing.span("transfer.create", merchant_id=merchant_id):
            created = await svc.create_transfer(gw, merchant_id, key, fp, _new(body))
        return 201, detail(gw, created.transfer), created.replayed

    async def current(stored: StoredResponse) -> Response | None:
        # A stored answer of a final state is the answer; a snapshot taken before the
        # outcome (pending, processing, ...) is replaced by the transfer's current state.
        snapshot = orjson.loads(stored.body) if stored.status_code == 201 else None
        if not isinstance(snapshot, dict) or is_final(snapshot.get("status", "pending")):
            return None
        t = await svc.get_transfer(gw, str(snapshot["id"]), merchant_id)
        return json_response(201, detail(gw, t), replayed=True)

    return await run_idempotent(
        gw, merchant_id, key, body.model_dump(mode="json"), handler, refresh=current
    )


@router.post(
    "/quote",
    openapi_extra=body_schema(TransferCreate),
    responses=ok(QuoteOut),
    summary="The fee a transfer would cost, without moving money",
)
async def quote_transfer(
    request: Request, caller: Caller = Depends(merchant_scope("transfers:write"))
) -> Response:
    gw = gateway(request)
    body, _ = await read_model(request, TransferCreate)
    assert caller.merchant_id is not None
    channel, fq = await svc.quote_for(gw, caller.merchant_id, _new(body), gw.clock())
    return json_response(
        200,
        {
            "object": "quote",
            "amount": body.amount,
            "currency": body.currency,
            "channel": channel,
            "fee": fq.fee,
            "total": body.amount + fq.fee,
            "rounding": fq.rounding.value,
        },
    )


@router.post(
    "/{transfer_id}/cancel",
    summary="Cancel a transfer waiting for the payee's confirmation (Idempotency-Key optional)",
    responses={
        **ok(TransferOut),
        409: {"description": "transfer_not_cancelable, with transfer_status"},
    },
    openapi_extra={"parameters": [{**IDEMPOTENCY_HEADER, "required": False}]},
)
async def cancel_transfer(
    transfer_id: str,
    request: Request,
    caller: Caller = Depends(merchant_scope("transfers:write", money_moving=True)),
) -> Response:
    gw = gateway(request)
    merchant_id = caller.merchant_id
    assert merchant_id is not None

    async def handler(_fp: str) -> tuple[int, dict[str, Any], bool]:
        t = await svc.cancel_transfer(gw, merchant_id, transfer_id)
        return 200, transfer_view(t), False

    if request.headers.get("idempotency-key") is None:
        status, body, _ = await handler("")
        return json_response(status, body)
    key = idempotency_key(request)
    return await run_idempotent(gw, merchant_id, key, {"cancel": transfer_id}, handler)


@router.get("/{transfer_id:paymux_id}", responses=ok(TransferOut), summary="Retrieve a transfer")
async def get_transfer(
    transfer_id: str,
    request: Request,
    caller: Caller = Depends(merchant_or_operator("transfers:read")),
) -> Response:
    gw = gateway(request)
    t = await svc.get_transfer(gw, transfer_id, caller.merchant_id)
    return json_response(200, detail(gw, t, operator=caller.is_admin))


@router.get("", responses=ok(TransferList), summary="List transfers, newest first")
async def list_transfers(
    request: Request,
    caller: Caller = Depends(merchant_or_operator("transfers:read")),
    status: Literal[
        "pending",
        "processing",
        "requires_confirmation",
        "succeeded",
        "failed",
        "canceled",
        "returned",
    ]
    | None = None,
    failure_code: FailureCode | None = Query(None, description="Paymux failure code"),
    channel: str | None = Query(None, max_length=32),
    created_gte: DateTime | None = Query(None, description="Created at or after (RFC 3339)"),
    created_lt: DateTime | None = Query(None, description="Created before (RFC 3339)"),
    merchant_id: str | None = Query(None, max_length=40, description="Operators only"),
    limit: int = Limit,
    cursor: str | None = Cursor,
) -> Response:
    found, more = await svc.list_transfers(
        gateway(request),
        svc.TransferFilter(
            merchant_id=caller.merchant_id if not caller.is_admin else merchant_id,
            status=status,
            failure_code=failure_code.value if failure_code else None,
            channel=channel,
            created_gte=created_gte,
            created_lt=created_lt,
            starting_after=cursor,
            limit=limit,
        ),
    )
    return json_response(
        200, page([transfer_view(t, operator=caller.is_admin) for t in found], more)
    )
