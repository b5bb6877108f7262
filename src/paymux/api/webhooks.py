"""/v1/webhook_endpoints: where a merchant receives events, and how each attempt went."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field, StrictBool, StrictInt, StringConstraints
from starlette.responses import Response

from paymux.api.auth import Caller, gateway, merchant_scope
from paymux.api.bodies import body_schema, read_model
from paymux.api.idempotent import json_response
from paymux.api.openapi import ok
from paymux.api.pagination import Cursor, Limit, page
from paymux.api.responses import (
    AttemptList,
    EndpointCreated,
    EndpointList,
    EndpointOut,
    SecretRotated,
)
from paymux.api.schemas import Strict
from paymux.service import webhook_endpoints as svc
from paymux.service.access import audit_draft, record
from paymux.service.views import iso

router = APIRouter(prefix="/v1/webhook_endpoints", tags=["webhooks"])

Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
EventType = Annotated[str, StringConstraints(min_length=1, max_length=40)]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=20)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=256)]
MAX_OVERLAP_SECONDS = 30 * 86_400


class EndpointCreate(Strict):
    url: Url
    event_types: EventTypes = Field(default_factory=lambda: ["*"])
    description: Description | None = None


class EndpointUpdate(Strict):
    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: StrictBool | None = None


class SecretRotation(Strict):
    overlap_seconds: Annotated[StrictInt, Field(ge=0, le=MAX_OVERLAP_SECONDS)] | None = None


async def _audit(
    request: Request,
    caller: Caller,
    action: str,
    endpoint_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    draft = audit_draft(
        caller.principal,
        action,
        "webhook_endpoint",
        endpoint_id,
        caller.merchant_id,
        before=before,
        after=after,
    )
    await record(gateway(request), draft)


def _merchant(caller: Caller) -> str:
    assert caller.merchant_id is not None  # merchant_scope guarantees it
    return caller.merchant_id


@router.post(
    "",
    status_code=201,
    openapi_extra=body_schema(EndpointCreate),
    responses=ok(EndpointCreated, 201),
    summary="Register a webhook endpoint; its signing secret is shown once",
)
async def create_endpoint(
    request: Request, caller: Caller = Depends(merchant_scope("webhooks:write"))
) -> Response:
    body, _ = await read_model(request, EndpointCreate)
    row, secret = await svc.create_endpoint(
        gateway(request),
        _merchant(caller),
        url=body.url,
        event_types=body.event_types,
        description=body.description,
    )
    view = svc.endpoint_view(row)
    await _audit(request, caller, "webhook_endpoint.create", row["id"], None, view)
    return json_response(201, {**view, "secret": secret})


@router.get("", responses=ok(EndpointList), summary="List webhook endpoints, newest first")
async def list_endpoints(
    request: Request,
    caller: Caller = Depends(merchant_scope("webhooks:read")),
    limit: int = Limit,
    cursor: str | None = Cursor,
) -> Response:
    rows, more = await svc.list_endpoints(
        gateway(request), _merchant(caller), limit=limit, starting_after=cursor
    )
    return json_response(200, page([svc.endpoint_view(r) for r in rows], more))


@router.get("/{endpoint_id}", responses=ok(EndpointOut), summary="Retrieve a webhook endpoint")
async def get_endpoint(
    endpoint_id: str, request: Request, caller: Caller = Depends(merchant_scope("webhooks:read"))
) -> Response:
    row = await svc.get_endpoint(gateway(request), _merchant(caller), endpoint_id)
    return json_response(200, svc.endpoint_view(row))


@router.patch(
    "/{endpoint_id}",
    openapi_extra=body_schema(EndpointUpdate),
    responses=ok(EndpointOut),
    summary="Change an endpoint's URL, event types, description or enabled flag",
)
async def update_endpoint(
    endpoint_id: str, request: Request, caller: Caller = Depends(merchant_scope("webhooks:write"))
) -> Response:
    body, _ = await read_model(request, EndpointUpdate)
    changes = svc.EndpointChanges(
        fields=frozenset(body.model_fields_set),
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        enabled=body.enabled,
    )
    gw = gateway(request)
    before = svc.endpoint_view(await svc.get_endpoint(gw, _merchant(caller), endpoint_id))
    row = await svc.update_endpoint(gw, _merchant(caller), endpoint_id, changes)
    view = svc.endpoint_view(row)
    await _audit(request, caller, "webhook_endpoint.update", endpoint_id, before, view)
    return json_response(200, view)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    responses={204: {"description": "Deleted"}},
    summary="Stop delivering to an endpoint",
)
async def delete_endpoint(
    endpoint_id: str, request: Request, caller: Caller = Depends(merchant_scope("webhooks:write"))
) -> Response:
    await svc.delete_endpoint(gateway(request), _merchant(caller), endpoint_id)
    await _audit(request, caller, "webhook_endpoint.delete", endpoint_id, None, None)
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate_secret",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": SecretRotation.model_json_schema()}},
        }
    },
    responses=ok(SecretRotated),
    summary="New signing secret (shown once); the old one signs too until the overlap ends",
)
async def rotate_secret(
    endpoint_id: str, request: Request, caller: Caller = Depends(merchant_scope("webhooks:write"))
) -> Response:
    body, _ = await read_model(request, SecretRotation)
    row, secret, old_expires = await svc.rotate_secret(
        gateway(request), _merchant(caller), endpoint_id, overlap_seconds=body.overlap_seconds
    )
    await _audit(  # the secrets themselves are never recorded
        request,
        caller,
        "webhook_endpoint.rotate_secret",
        endpoint_id,
        None,
        {"previous_secret_expires_at": iso(old_expires)},
    )
    return json_response(
        200,
        {
            **svc.endpoint_view(row),
            "secret": secret,
            "previous_secret_expires_at": iso(old_expires),
        },
    )


@router.get(
    "/{endpoint_id}/attempts",
    responses=ok(AttemptList),
    summary="Delivery attempts to an endpoint, newest first",
)
async def list_attempts(
    endpoint_id: str,
    request: Request,
    caller: Caller = Depends(merchant_scope("webhooks:read")),
    limit: int = Limit,
    cursor: str | None = Cursor,
) -> Response:
    rows, more = await svc.list_attempts(
        gateway(request), _merchant(caller), endpoint_id, limit=limit, starting_after=cursor
    )
    return json_response(200, page([svc.attempt_view(r) for r in rows], more))
