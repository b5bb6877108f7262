"""Reconciliation discrepancies (operators: list, resolve) and merchant statements (a
merchant's own day; operators pick the merchant), from the reconciliation use cases."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from paymux.api.auth import gateway
from paymux.api.dashboard.access import checked_form, operator, reader
from paymux.api.dashboard.operator_pages import actor
from paymux.api.dashboard.pages import PAGE_SIZE, say, view
from paymux.api.dashboard.render import DashboardRoute, redirect
from paymux.api.dashboard.sessions import Session
from paymux.api.merchant_statements import statement_csv, statement_view
from paymux.api.reconciliation import discrepancy_view
from paymux.domain.access import Role
from paymux.service import dashboard as svc
from paymux.service import reconciliation as recon
from paymux.service import statements
from paymux.service.access import audit_draft, record
from paymux.service.errors import InvalidRequest, NotFound
from paymux.service.merchants import merchant_exists
from paymux.service.reports import parse_business_day

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)


@router.get("/reconciliation")
async def discrepancies(
    request: Request,
    session: Session = Depends(operator()),
    before: str = Query("", max_length=64),
) -> Response:
    rows, more = await svc.open_discrepancies(gateway(request), before_id=before or None)
    return await view(
        request,
        "reconciliation.html",
        session,
        rows=rows,
        next_before=rows[-1].id if more and rows else None,
    )


@router.post("/reconciliation/{discrepancy_id}/resolve")
async def resolve(
    discrepancy_id: str,
    request: Request,
    session: Session = Depends(operator(Role.operator)),
    form: FormData = Depends(checked_form),
) -> Response:
    reason = form.get("reason")
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason or len(reason) > 1000:
        raise InvalidRequest("a resolution needs a written reason (up to 1,000 characters)")
    gw = gateway(request)
    found = await recon.resolve_discrepancy(gw, discrepancy_id, who=session.key_id, reason=reason)
    await record(
        gw,
        audit_draft(
            actor(session),
            "discrepancy.resolve",
            "discrepancy",
            discrepancy_id,
            None,
            after=discrepancy_view(found),
        ),
    )
    await say(request, f"Discrepancy {discrepancy_id} resolved.")
    return redirect("/dashboard/reconciliation")


@router.get("/statements")
async def statement(
    request: Request,
    session: Session = Depends(reader("balance:read")),
    date_: str = Query("", alias="date", max_length=10),
    merchant_id: str = Query("", max_length=40),
    fmt: str = Query("html", alias="format", max_length=8),
) -> Response:
    gw = gateway(request)
    tz = ZoneInfo(gw.settings.business_timezone)
    day = (
        parse_business_day(date_, "date") if date_ else datetime.now(tz).date() - timedelta(days=1)
    )
    if session.is_operator:
        scope = merchant_id.strip()
        if not scope:
            raise InvalidRequest("open a statement from a merchant's page (it needs a merchant)")
        if not await merchant_exists(gw, scope):
            raise NotFound(f"no merchant {scope}")
    else:
        assert session.merchant_id is not None
        scope = session.merchant_id  # a merchant_id parameter naming anyone else is ignored
    data = statement_view(await statements.merchant_statement(gw, scope, day, "CNY"))
    if fmt == "csv":
        return Response(
            statement_csv(data),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": (
                    f'attachment; filename="paymux-statement-{scope}-{day.isoformat()}.csv"'
                )
            },
        )
    return await view(
        request,
        "statement.html",
        session,
        s=data,
        params={"date": day.isoformat(), "merchant_id": scope if session.is_operator else ""},
        page_size=PAGE_SIZE,
    )
