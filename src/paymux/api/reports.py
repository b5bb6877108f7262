"""/v1/reports/fees: fees per business day, channel and payee type, as JSON or CSV.

``from`` and ``to`` are inclusive business days (``YYYY-MM-DD``) in ``tz`` (default: the
configured business time zone, Asia/Shanghai). Merchants see only their own transfers and
never channel cost or margin; operators (admin key) see every merchant, or one with
``merchant_id``, and may group by ``merchant``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from paymux.api.auth import Caller, gateway, merchant_or_operator
from paymux.api.idempotent import json_response
from paymux.api.responses import FeeReportOut
from paymux.service import reports as svc
from paymux.service.errors import NotFound
from paymux.service.merchants import merchant_exists

router = APIRouter(prefix="/v1/reports", tags=["reports"])

CSV_TYPE = "text/csv"


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return CSV_TYPE in request.headers.get("accept", "").lower()


@router.get(
    "/fees",
    responses={
        200: {
            "model": FeeReportOut,
            "description": "The report (JSON, or CSV with format=csv / Accept: text/csv)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
    summary="Fees (and, for operators, channel cost and margin) per period",
)
async def fee_report(
    request: Request,
    caller: Caller = Depends(merchant_or_operator("reports:read")),
    from_: str = Query(..., alias="from", max_length=10, description="First day, YYYY-MM-DD"),
    to: str = Query(..., max_length=10, description="Last day (inclusive), YYYY-MM-DD"),
    tz: str | None = Query(None, max_length=64, description="IANA zone of the business days"),
    group_by: str = Query(
        ",".join(svc.DEFAULT_GROUP_BY),
        max_length=64,
        description="Comma list of day, channel, payee_type (operators: also merchant)",
    ),
    merchant_id: str | None = Query(None, max_length=40, description="Operators: one merchant"),
    fmt: Literal["json", "csv"] | None = Query(None, alias="format"),
) -> Response:
    gw = gateway(request)
    operator = caller.is_admin
    if operator:
        if merchant_id is not None and not await merchant_exists(gw, merchant_id):
            raise NotFound(f"no merchant {merchant_id}")
        scope = merchant_id
    else:
        # Another merchant's id gets the same answer as one that does not exist.
        if merchant_id is not None and merchant_id != caller.merchant_id:
            raise NotFound(f"no merchant {merchant_id}")
        scope = caller.merchant_id
    first = svc.parse_business_day(from_, "from")
    last = svc.parse_business_day(to, "to")
    query = svc.FeeReportQuery(
        first_day=first,
        last_day=last,
        timezone=svc.parse_timezone(tz or gw.settings.business_timezone),
        group_by=svc.parse_group_by(group_by, operator=operator),
        merchant_id=scope,
    )
    report = await svc.fee_report(gw, query)
    if _wants_csv(request, fmt):
        filename = f"paymux-fees-{first.isoformat()}-{last.isoformat()}.csv"
        return Response(
            svc.report_csv(report, operator=operator),
            media_type=f"{CSV_TYPE}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return json_response(200, svc.report_view(report, operator=operator))
