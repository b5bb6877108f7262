"""/v1/events: the events Paymux emitted for a merchant, and redelivering one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import StringConstraints
from starlette.responses import Response

from paymux.api.auth import Caller, gateway, merchant_scope
from paymux.api.bodies import read_model
from paymux.api.idempotent import json_response
from paymux.api.openapi import ok
from paymux.api.pagination import Cursor, Limit, page
from paymux.api.responses import EventList, EventWithDeliveries, RedeliveryOut
from paymux.api.schemas import Strict
from paymux.service import webhook_endpoints as svc

router = APIRouter(prefix="/v1/events", tags=["webhooks"])


class Redelivery(Strict):
    endpoint_id: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None


def _merchant(caller: Caller) -> str:
    assert caller.merchant_id is not None  # merchant_scope guarantees it
    return caller.merchant_id


@router.get("", responses=ok(EventList), summary="List events, newest first")
async def list_events(
    request: Request,
    caller: Caller = Depends(merchant_scope("events:read")),
    event_type: str | None = Query(
        None, alias="type", max_length=40, description="Only events of this type"
    ),
    limit: int = Limit,
    cursor: str | None = Cursor,
) -> Response:
    rows, more = await svc.list_events(
        gateway(request),
        _merchant(caller),
        event_type=event_type,
        limit=limit,
        starting_after=cursor,
    )
    return json_response(200, page([svc.event_view(r) for r in rows], more))


@router.get(
    "/{event_id}",
    responses=ok(EventWithDeliveries),
    summary="Retrieve an event and its webhook deliveries",
)
async def get_event(
    event_id: str, request: Request, caller: Caller = Depends(merchant_scope("events:read"))
) -> Response:
    row, deliveries = await svc.get_event(gateway(request), _merchant(caller), event_id)
    return json_response(
        200, {**svc.event_view(row), "deliveries": [svc.delivery_view(d) for d in deliveries]}
    )


@router.post(
    "/{event_id}/redeliver",
    status_code=202,
    responses=ok(RedeliveryOut, 202),
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": Redelivery.model_json_schema()}},
        }
    },
    summary="Send an event again, now (optionally to one endpoint); same webhook-id",
)
async def redeliver_event(
    event_id: str, request: Request, caller: Caller = Depends(merchant_scope("webhooks:write"))
) -> Response:
    body, _ = await read_model(request, Redelivery)
    rows = await svc.redeliver_event(
        gateway(request), _merchant(caller), event_id, endpoint_id=body.endpoint_id
    )
    return json_response(
        202,
        {
            "object": "redelivery",
            "event_id": event_id,
            "deliveries": [svc.delivery_view(r) for r in rows],
        },
    )
