"""Operator API of reconciliation (对账), admin key only.

* ``POST /v1/reconciliation/runs`` ``{"channel": "alipay", "date": "YYYY-MM-DD"}``: run now
  (idempotent per channel and day: the same discrepancies, no double healing);
* ``GET /v1/reconciliation/runs``: recent runs;
* ``GET /v1/reconciliation/runs/{id}[?kind=&state=][&format=csv]``: a run with the
  discrepancies of its channel and day;
* ``POST /v1/reconciliation/discrepancies/{id}/resolve`` ``{"reason": "...", "by": "..."}``.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.responses import Response

from paymux.api.auth import Caller, gateway, operator_role
from paymux.api.bodies import body_schema, read_model
from paymux.api.idempotent import json_response
from paymux.api.openapi import ok
from paymux.api.responses import DiscrepancyOut, ReconciliationResultOut, ReconciliationRunList
from paymux.domain.access import Role
from paymux.domain.reconciliation import Discrepancy, DiscrepancyKind, DiscrepancyState, RunRecord
from paymux.service import reconciliation as svc
from paymux.service.access import audit_draft, record
from paymux.service.reports import parse_business_day
from paymux.service.views import iso

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"])


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: StrictStr = Field(min_length=1, max_length=32)
    date: StrictStr = Field(min_length=10, max_length=10, description="Business day, YYYY-MM-DD")


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: StrictStr = Field(min_length=3, max_length=2000)
    by: StrictStr | None = Field(default=None, max_length=128, description="Who resolves it")


def run_view(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "object": "reconciliation_run",
        "channel": run.channel,
        "date": run.bill_date,
        "status": run.status,
        "trigger": run.trigger,
        "statement": {"path": run.statement_path, "sha256": run.statement_sha256},
        "summary": orjson.loads(run.summary),
        "started_at": iso(run.started_at),  # type: ignore[arg-type]
        "finished_at": iso(run.finished_at),  # type: ignore[arg-type]
    }


def discrepancy_view(d: Discrepancy) -> dict[str, Any]:
    return {
        "id": d.id,
        "object": "reconciliation_discrepancy",
        "channel": d.channel,
        "date": d.bill_date,
        "kind": d.kind.value,
        "state": d.state.value,
        "severity": d.severity.value,
        "reference": d.reference,
        "transfer_id": d.transfer_id,
        "merchant_id": d.merchant_id,
        "statement_amount": d.statement_amount,
        "paymux_amount": d.paymux_amount,
        "statement_status": d.statement_status,
        "paymux_status": d.paymux_status,
        "detail": d.detail,
        "evidence": orjson.loads(d.evidence) if d.evidence else None,
        "first_run_id": d.first_run_id,
        "last_run_id": d.last_run_id,
        "created_at": iso(d.created_at),  # type: ignore[arg-type]
        "resolved_at": iso(d.resolved_at),  # type: ignore[arg-type]
        "resolved_by": d.resolved_by,
        "resolution": d.resolution,
    }


def result_view(result: svc.RunResult) -> dict[str, Any]:
    return {
        **run_view(result.run),
        "open": sum(1 for d in result.discrepancies if d.state is DiscrepancyState.open),
        "discrepancies": [discrepancy_view(d) for d in result.discrepancies],
    }


CSV_COLUMNS = (
    "id",
    "kind",
    "state",
    "severity",
    "reference",
    "transfer_id",
    "merchant_id",
    "statement_amount",
    "paymux_amount",
    "statement_status",
    "paymux_status",
    "detail",
    "resolved_by",
    "resolution",
)


def discrepancies_csv(rows: list[Discrepancy]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for d in rows:
        view = discrepancy_view(d)
        writer.writerow("" if view[c] is None else view[c] for c in CSV_COLUMNS)
    return out.getvalue()


@router.post(
    "/runs",
    status_code=201,
    summary="Reconcile one channel's statement of one business day now",
    openapi_extra=body_schema(RunRequest),
    responses=ok(ReconciliationResultOut, 201),
)
async def create_run(
    request: Request, _: Caller = Depends(operator_role(Role.operator))
) -> Response:
    body, _data = await read_model(request, RunRequest)
    day = parse_business_day(body.date, "date")
    result = await svc.run_reconciliation(gateway(request), body.channel, day, trigger="api")
    return json_response(201, result_view(result))


@router.get("/runs", responses=ok(ReconciliationRunList), summary="Recent reconciliation runs")
async def list_runs(
    request: Request,
    _: Caller = Depends(operator_role(Role.viewer)),
    channel: str | None = Query(None, max_length=32),
    limit: int = Query(50, ge=1, le=500),
) -> Response:
    runs = await svc.list_runs(gateway(request), channel, limit)
    return json_response(200, {"object": "list", "data": [run_view(r) for r in runs]})


@router.get(
    "/runs/{run_id}",
    responses={
        200: {
            "model": ReconciliationResultOut,
            "description": "OK",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
    summary="A run with its discrepancies (JSON or CSV)",
)
async def get_run(
    request: Request,
    run_id: str,
    _: Caller = Depends(operator_role(Role.viewer)),
    kind: DiscrepancyKind | None = Query(None),
    state: DiscrepancyState | None = Query(None),
    fmt: Literal["json", "csv"] | None = Query(None, alias="format"),
) -> Response:
    result = await svc.get_run(
        gateway(request),
        run_id,
        kind=kind.value if kind else None,
        state=state.value if state else None,
    )
    if fmt == "csv":
        return Response(
            discrepancies_csv(result.discrepancies),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="reconciliation-{run_id}.csv"'},
        )
    return json_response(200, result_view(result))


@router.post(
    "/discrepancies/{discrepancy_id}/resolve",
    summary="Close an open discrepancy with a written reason (kept with who and when)",
    openapi_extra=body_schema(ResolveRequest),
    responses=ok(DiscrepancyOut),
)
async def resolve(
    request: Request,
    discrepancy_id: str,
    caller: Caller = Depends(operator_role(Role.operator)),
) -> Response:
    body, _data = await read_model(request, ResolveRequest)
    key_id = caller.principal.key_id if caller.principal else "operator"
    found = await svc.resolve_discrepancy(
        gateway(request), discrepancy_id, who=body.by or key_id, reason=body.reason
    )
    view = discrepancy_view(found)
    draft = audit_draft(
        caller.principal, "discrepancy.resolve", "discrepancy", discrepancy_id, None, after=view
    )
    await record(gateway(request), draft)
    return json_response(200, view)
