"""Health, readiness, metrics, and the operators' fee schedule endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from paymux.api.auth import Caller, gateway, operator_role
from paymux.api.bodies import body_schema, read_model
from paymux.api.idempotent import json_response
from paymux.api.openapi import ok
from paymux.api.problems import problem
from paymux.api.responses import FeeRuleCreated, FeeScheduleOut, HealthOut, ReadyOut
from paymux.api.schemas import FeeRuleCreate
from paymux.domain.access import Role
from paymux.domain.fees import FeeKind
from paymux.service import fee_rules, gauges
from paymux.service.feebook import entry_view

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    responses=ok(HealthOut),
    summary="Liveness: the process answers (no dependency is asked)",
)
async def healthz() -> Response:
    return json_response(200, {"status": "ok"})


async def _check(probe: Awaitable[object], limit: float) -> str:
    try:
        async with asyncio.timeout(limit):
            await probe
    except TimeoutError:
        return "timeout"
    except Exception as exc:  # reported, never raised: this endpoint must answer
        return type(exc).__name__
    return "ok"


@router.get(
    "/readyz",
    responses=ok(ReadyOut),
    summary="Readiness: database, Redis and each channel's circuit",
)
async def readyz(request: Request) -> Response:
    """Answers within ``readiness_timeout_seconds`` whatever the dependencies do. Not ready
    when the database or Redis is unreachable; a channel whose circuit is open is reported
    (its transfers are parked, not refused) but does not make the gateway unready."""
    gw = gateway(request)
    limit = gw.settings.readiness_timeout_seconds
    database, redis = await asyncio.gather(
        _check(gw.db.ping(), limit),
        _check(gw.redis.ping(), limit),  # type: ignore[arg-type]
    )
    checks: dict[str, Any] = {
        "database": database,
        "redis": redis,
        "channels": gw.circuits.snapshot(sorted(gw.channels)),
    }
    if database == "ok" and redis == "ok":
        return json_response(200, {"status": "ready", "checks": checks})
    return problem(
        503,
        "not_ready",
        "Not ready",
        "a dependency is unreachable",
        headers={"Retry-After": str(gw.settings.retry_after_seconds)},
        checks=checks,
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics_endpoint(
    request: Request, _: Caller = Depends(operator_role(Role.viewer))
) -> Response:
    await gauges.refresh(gateway(request))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/fee_schedule",
    tags=["operators"],
    responses=ok(FeeScheduleOut),
    summary="Every fee and cost rule",
)
async def get_fee_schedule(
    request: Request, _: Caller = Depends(operator_role(Role.viewer))
) -> Response:
    gw = gateway(request)
    entries = await gw.feebook.entries()
    return json_response(
        200,
        {
            "object": "fee_schedule",
            "rounding": gw.feebook.rounding.value,
            "data": [entry_view(e) for e in entries],
        },
    )


@router.post(
    "/v1/fee_schedule/rules",
    status_code=201,
    tags=["operators"],
    openapi_extra=body_schema(FeeRuleCreate),
    responses=ok(FeeRuleCreated, 201),
    summary="Add a versioned fee or cost rule, effective now or later",
)
async def add_fee_rule(
    request: Request, caller: Caller = Depends(operator_role(Role.operator))
) -> Response:
    body, _data = await read_model(request, FeeRuleCreate)
    view = await fee_rules.create(
        gateway(request),
        caller.principal,
        kind=FeeKind(body.kind),
        channel=body.channel,
        payee_type=body.payee_type,
        bps=Decimal(body.bps),
        fixed=body.fixed,
        minimum=body.minimum,
        maximum=body.maximum,
        merchant_id=body.merchant_id,
        effective_at=body.effective_at,
    )
    return json_response(201, {"object": "fee_rule", **view})
