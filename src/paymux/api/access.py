"""API keys, operators, rate limits and the audit log.

Merchants manage their own keys under ``/v1/api_keys``; operators manage any merchant's keys
under ``/v1/merchants/{id}/api_keys``, operators and their keys under ``/v1/operators``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field
from starlette.responses import Response

from paymux.api.auth import Caller, Forbidden, gateway, merchant_scope, operator_role
from paymux.api.bodies import body_schema, read_model
from paymux.api.idempotent import json_response
from paymux.api.openapi import ok
from paymux.api.pagination import aware
from paymux.api.responses import (
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    ApiKeyRolled,
    AuditEventList,
    OperatorCreated,
    OperatorList,
    OperatorOut,
    RateLimitOut,
)
from paymux.api.schemas import CLEAN_TEXT, DateTime, Strict, text_limits
from paymux.domain.access import (
    ALL_SCOPES,
    MERCHANT_SCOPES,
    InvalidScopes,
    RateLimit,
    Role,
    normalise_scopes,
)
from paymux.service import access as svc
from paymux.service.errors import InvalidRequest, NotFound
from paymux.store import audit_repo, keys_repo

router = APIRouter(tags=["access"])

Name = Annotated[str, text_limits(100), CLEAN_TEXT]
Scope = Literal[
    "*",
    "transfers:write",
    "transfers:read",
    "balance:read",
    "reports:read",
    "events:read",
    "webhooks:read",
    "webhooks:write",
    "keys:read",
    "keys:write",
]
assert set(Scope.__args__) == MERCHANT_SCOPES | {ALL_SCOPES}  # type: ignore[attr-defined]
MAX_OVERLAP = 30 * 86_400


class KeyCreate(Strict):
    name: Name | None = None
    scopes: list[Scope] | None = Field(
        None, min_length=1, description='Omit (or ["*"]) for an unrestricted key'
    )


class KeyRoll(Strict):
    overlap_seconds: int = Field(
        86_400, ge=0, le=MAX_OVERLAP, description="How long the old key keeps working"
    )


class OperatorCreate(Strict):
    name: Name
    role: Role


class OperatorUpdate(Strict):
    role: Role | None = None
    disabled: Literal[True] | None = None


class RateLimitPut(Strict):
    per_second: int = Field(ge=1, le=100_000)
    burst: int = Field(ge=1, le=1_000_000)


def _scopes(body: KeyCreate) -> list[str] | None:
    return list(body.scopes) if body.scopes is not None else None


def _list(data: list[dict[str, object]]) -> Response:
    return json_response(
        200, {"object": "list", "data": data, "has_more": False, "next_cursor": None}
    )


def _created(view: dict[str, object], secret: str) -> Response:
    return json_response(201, {**view, "secret": secret})


# ------------------------------------------------------------ merchants' own keys


@router.post(
    "/v1/api_keys",
    status_code=201,
    openapi_extra=body_schema(KeyCreate),
    responses=ok(ApiKeyCreated, 201),
    summary="Create an API key (its secret is shown once)",
)
async def create_own_key(
    request: Request, caller: Caller = Depends(merchant_scope("keys:write"))
) -> Response:
    body, _ = await read_model(request, KeyCreate)
    assert caller.principal is not None and caller.merchant_id is not None
    try:
        wanted = normalise_scopes(_scopes(body))
    except InvalidScopes as exc:
        raise InvalidRequest(str(exc)) from None
    have = caller.principal.scopes
    if ALL_SCOPES not in have and (ALL_SCOPES in wanted or not set(wanted) <= set(have)):
        raise Forbidden(
            "a restricted key can only create keys with some of its own scopes",
            code_override="scope_escalation",
        )
    key, secret = await svc.create_merchant_key(
        gateway(request), caller.principal, caller.merchant_id, name=body.name, scopes=list(wanted)
    )
    return _created(svc.key_view(key), secret)


@router.get(
    "/v1/api_keys",
    responses=ok(ApiKeyList),
    summary="Your API keys (prefix and last use; never the secret)",
)
async def list_own_keys(
    request: Request, caller: Caller = Depends(merchant_scope("keys:read"))
) -> Response:
    return _list(await svc.list_keys(gateway(request), merchant_id=caller.merchant_id))


@router.post(
    "/v1/api_keys/{key_id}/revoke",
    responses=ok(ApiKeyOut),
    summary="Revoke a key, at once, on every worker",
)
async def revoke_own_key(
    key_id: str, request: Request, caller: Caller = Depends(merchant_scope("keys:write"))
) -> Response:
    assert caller.principal is not None
    key = await svc.revoke_key(
        gateway(request), caller.principal, key_id, merchant_id=caller.merchant_id
    )
    return json_response(200, svc.key_view(key))


@router.post(
    "/v1/api_keys/{key_id}/roll",
    openapi_extra=body_schema(KeyRoll),
    responses=ok(ApiKeyRolled),
    summary="Replace a key; the old one keeps working for overlap_seconds",
)
async def roll_own_key(
    key_id: str, request: Request, caller: Caller = Depends(merchant_scope("keys:write"))
) -> Response:
    body, _ = await read_model(request, KeyRoll)
    assert caller.principal is not None
    gw = gateway(request)
    old = await keys_repo.get_key(gw.db, key_id)
    have = caller.principal.scopes
    if old is not None and ALL_SCOPES not in have and not set(old.scopes) <= set(have):
        raise Forbidden(
            "a restricted key can only roll keys with some of its own scopes",
            code_override="scope_escalation",
        )
    old_key, new, secret = await svc.roll_key(
        gw,
        caller.principal,
        key_id,
        merchant_id=caller.merchant_id,
        overlap_seconds=body.overlap_seconds,
    )
    return json_response(
        200,
        {
            "object": "api_key_roll",
            "old": svc.key_view(old_key),
            "new": {**svc.key_view(new), "secret": secret},
        },
    )


# ------------------------------------------------------------ operators on merchants' keys


@router.post(
    "/v1/merchants/{merchant_id}/api_keys",
    status_code=201,
    tags=["operators"],
    openapi_extra=body_schema(KeyCreate),
    responses=ok(ApiKeyCreated, 201),
    summary="Create an API key for a merchant",
)
async def create_merchant_key(
    merchant_id: str, request: Request, caller: Caller = Depends(operator_role(Role.admin))
) -> Response:
    body, _ = await read_model(request, KeyCreate)
    assert caller.principal is not None
    try:
        key, secret = await svc.create_merchant_key(
            gateway(request), caller.principal, merchant_id, name=body.name, scopes=_scopes(body)
        )
    except InvalidScopes as exc:
        raise InvalidRequest(str(exc)) from None
    return _created(svc.key_view(key), secret)


@router.get(
    "/v1/merchants/{merchant_id}/api_keys",
    tags=["operators"],
    responses=ok(ApiKeyList),
    summary="A merchant's keys",
)
async def list_merchant_keys(
    merchant_id: str, request: Request, _: Caller = Depends(operator_role(Role.viewer))
) -> Response:
    return _list(await svc.list_keys(gateway(request), merchant_id=merchant_id))


@router.post(
    "/v1/merchants/{merchant_id}/api_keys/{key_id}/revoke",
    tags=["operators"],
    responses=ok(ApiKeyOut),
    summary="Revoke a merchant's key",
)
async def revoke_merchant_key(
    merchant_id: str,
    key_id: str,
    request: Request,
    caller: Caller = Depends(operator_role(Role.admin)),
) -> Response:
    assert caller.principal is not None
    key = await svc.revoke_key(gateway(request), caller.principal, key_id, merchant_id=merchant_id)
    return json_response(200, svc.key_view(key))


@router.post(
    "/v1/merchants/{merchant_id}/api_keys/{key_id}/roll",
    tags=["operators"],
    responses=ok(ApiKeyRolled),
    openapi_extra=body_schema(KeyRoll),
    summary="Roll a merchant's key with an overlap window",
)
async def roll_merchant_key(
    merchant_id: str,
    key_id: str,
    request: Request,
    caller: Caller = Depends(operator_role(Role.admin)),
) -> Response:
    body, _ = await read_model(request, KeyRoll)
    assert caller.principal is not None
    old, new, secret = await svc.roll_key(
        gateway(request),
        caller.principal,
        key_id,
        merchant_id=merchant_id,
        overlap_seconds=body.overlap_seconds,
    )
    return json_response(
        200,
        {
            "object": "api_key_roll",
            "old": svc.key_view(old),
            "new": {**svc.key_view(new), "secret": secret},
        },
    )


@router.get(
    "/v1/merchants/{merchant_id}/rate_limit",
    tags=["operators"],
    responses=ok(RateLimitOut),
    summary="A merchant's rate limit",
)
async def get_rate_limit(
    merchant_id: str, request: Request, _: Caller = Depends(operator_role(Role.viewer))
) -> Response:
    limit = await svc.rate_limit_of(gateway(request), merchant_id)
    return json_response(
        200, {"object": "rate_limit", "merchant_id": merchant_id, **limit.__dict__}
    )


@router.put(
    "/v1/merchants/{merchant_id}/rate_limit",
    tags=["operators"],
    openapi_extra=body_schema(RateLimitPut),
    responses=ok(RateLimitOut),
    summary="Set a merchant's per-key rate limit",
)
async def put_rate_limit(
    merchant_id: str, request: Request, caller: Caller = Depends(operator_role(Role.admin))
) -> Response:
    body, _ = await read_model(request, RateLimitPut)
    assert caller.principal is not None
    limit = await svc.set_rate_limit(
        gateway(request), caller.principal, merchant_id, RateLimit(body.per_second, body.burst)
    )
    return json_response(
        200, {"object": "rate_limit", "merchant_id": merchant_id, **limit.__dict__}
    )


# ------------------------------------------------------------ operators


@router.post(
    "/v1/operators",
    status_code=201,
    tags=["operators"],
    openapi_extra=body_schema(OperatorCreate),
    responses=ok(OperatorCreated, 201),
    summary="Create an operator and its first key (the secret is shown once)",
)
async def create_operator(
    request: Request, caller: Caller = Depends(operator_role(Role.admin))
) -> Response:
    body, _ = await read_model(request, OperatorCreate)
    assert caller.principal is not None
    op, key, secret = await svc.create_operator(
        gateway(request), caller.principal, body.name, body.role
    )
    return json_response(
        201, {**svc.operator_view(op), "api_key": {**svc.key_view(key), "secret": secret}}
    )


@router.get("/v1/operators", tags=["operators"], responses=ok(OperatorList), summary="Operators")
async def list_operators(
    request: Request, _: Caller = Depends(operator_role(Role.admin))
) -> Response:
    return _list([svc.operator_view(o) for o in await svc.list_operators(gateway(request))])


@router.patch(
    "/v1/operators/{operator_id}",
    tags=["operators"],
    openapi_extra=body_schema(OperatorUpdate),
    responses=ok(OperatorOut),
    summary="Change an operator's role, or disable the operator (and so all its keys)",
)
async def update_operator(
    operator_id: str, request: Request, caller: Caller = Depends(operator_role(Role.admin))
) -> Response:
    body, _ = await read_model(request, OperatorUpdate)
    assert caller.principal is not None
    op = await svc.update_operator(
        gateway(request), caller.principal, operator_id, role=body.role, disable=bool(body.disabled)
    )
    return json_response(200, svc.operator_view(op))


@router.post(
    "/v1/operators/{operator_id}/api_keys",
    status_code=201,
    tags=["operators"],
    openapi_extra=body_schema(KeyCreate),
    responses=ok(ApiKeyCreated, 201),
    summary="Another key for an operator",
)
async def create_operator_key(
    operator_id: str, request: Request, caller: Caller = Depends(operator_role(Role.admin))
) -> Response:
    body, _ = await read_model(request, KeyCreate)
    if body.scopes is not None:
        raise InvalidRequest("operator keys have a role, not scopes")
    assert caller.principal is not None
    key, secret = await svc.create_operator_key(
        gateway(request), caller.principal, operator_id, body.name
    )
    return _created(svc.key_view(key), secret)


@router.get(
    "/v1/operators/{operator_id}/api_keys",
    tags=["operators"],
    responses=ok(ApiKeyList),
    summary="An operator's keys",
)
async def list_operator_keys(
    operator_id: str, request: Request, _: Caller = Depends(operator_role(Role.admin))
) -> Response:
    return _list(await svc.list_keys(gateway(request), operator_id=operator_id))


@router.post(
    "/v1/operator_keys/{key_id}/revoke",
    tags=["operators"],
    responses=ok(ApiKeyOut),
    summary="Revoke an operator key",
)
async def revoke_operator_key(
    key_id: str, request: Request, caller: Caller = Depends(operator_role(Role.admin))
) -> Response:
    assert caller.principal is not None
    gw = gateway(request)
    key = await keys_repo.get_key(gw.db, key_id)
    if key is None or key.kind != "operator":
        raise NotFound(f"no operator key {key_id}")
    return json_response(
        200, svc.key_view(await svc.revoke_key(gw, caller.principal, key_id, merchant_id=None))
    )


# ------------------------------------------------------------ audit log


@router.get(
    "/v1/audit_events",
    tags=["operators"],
    responses=ok(AuditEventList),
    summary="The audit log, newest first",
)
async def list_audit_events(
    request: Request,
    _: Caller = Depends(operator_role(Role.viewer)),
    merchant_id: str | None = Query(None, max_length=40),
    action: str | None = Query(None, max_length=60),
    object_id: str | None = Query(None, max_length=80),
    actor_key_id: str | None = Query(None, max_length=40),
    occurred_gte: DateTime | None = Query(None, description="At or after (RFC 3339)"),
    occurred_lt: DateTime | None = Query(None, description="Before (RFC 3339)"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, pattern=r"^[0-9]{1,18}$", description="next_cursor"),
) -> Response:
    rows, more = await audit_repo.list_events(
        gateway(request).db,
        audit_repo.AuditFilter(
            merchant_id=merchant_id,
            action=action,
            object_id=object_id,
            actor_key_id=actor_key_id,
            occurred_gte=aware(occurred_gte, "occurred_gte"),
            occurred_lt=aware(occurred_lt, "occurred_lt"),
            before_seq=int(cursor) if cursor else None,
            limit=limit,
        ),
    )
    data = [
        {
            "object": "audit_event",
            # str(): column names can be SQLAlchemy's quoted_name, a str subclass orjson refuses
            **{str(k): v for k, v in r.items() if k not in ("before", "after")},
            "before": orjson.loads(r["before"]) if r["before"] else None,
            "after": orjson.loads(r["after"]) if r["after"] else None,
        }
        for r in rows
    ]
    return json_response(
        200,
        {
            "object": "list",
            "data": data,
            "has_more": more,
            "next_cursor": str(rows[-1]["seq"]) if more and rows else None,
        },
    )
