"""Pages both operators and merchants use: overview, transfers and their timeline, the fee
report. A merchant's session scopes every query to its own merchant id; operator-only
figures (channel cost, margin, house accounts, raw channel bodies) are left out for them."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from paymux.api.auth import gateway
from paymux.api.dashboard import charts, sessions
from paymux.api.dashboard.access import RoleTooLow, checked_form, operator, reader, signed_in
from paymux.api.dashboard.render import DashboardRoute, page, redirect
from paymux.api.dashboard.sessions import Session
from paymux.domain.access import Role
from paymux.domain.states import TransferStatus
from paymux.service import dashboard as svc
from paymux.service import reports
from paymux.service import webhook_endpoints as endpoints_svc
from paymux.service.errors import InvalidRequest, NotFound
from paymux.service.reports import business_day_start
from paymux.store.dashboard_repo import TransferSearch

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)

PAGE_SIZE = 50
_CSS = resources.files("paymux.api.dashboard").joinpath("static/dashboard.css")


async def _flash(request: Request) -> dict[str, str] | None:
    sid = getattr(request.state, "dashboard_sid", None)
    return await sessions.pop_flash(gateway(request), sid) if sid else None


async def say(request: Request, text: str, level: str = "info", **extra: str) -> None:
    sid = getattr(request.state, "dashboard_sid", None)
    if sid:
        await sessions.flash(gateway(request), sid, {"text": text, "level": level, **extra})


async def view(request: Request, template: str, session: Session, **context: Any) -> Response:
    return page(request, template, session=session, flash=await _flash(request), **context)


@router.get("/static/dashboard.css")
async def stylesheet() -> Response:
    return Response(
        _CSS.read_bytes(),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.get("/overview")
async def overview(
    request: Request, session: Session = Depends(reader("transfers:read"))
) -> Response:
    gw = gateway(request)
    ov = await svc.overview(gw, session.scope)
    channels = ov.channels
    chart_set = {
        "volume": charts.per_channel_bars(ov.days, channels, lambda t: t.volume),
        "count": charts.per_channel_bars(ov.days, channels, lambda t: t.count, money=False),
        "success": charts.success_rate_line(ov.days),
    }
    if session.is_operator:
        chart_set["margin"] = charts.margin_bars(ov.days)
    else:
        chart_set["fees"] = charts.per_channel_bars(ov.days, channels, lambda t: t.fees)
    return await view(
        request,
        "overview.html",
        session,
        ov=ov,
        charts=chart_set,
        channel_totals=ov.channel_totals(),
        in_flight_statuses=svc.IN_FLIGHT,
    )


def _day(text: str | None, name: str) -> date | None:
    if not text:
        return None
    return reports.parse_business_day(text, name)


def _statuses() -> list[str]:
    return [s.value for s in TransferStatus]


@router.get("/transfers")
async def transfers(
    request: Request,
    session: Session = Depends(reader("transfers:read")),
    q: str = Query("", max_length=255),
    status: str = Query("", max_length=32),
    channel: str = Query("", max_length=32),
    merchant_id: str = Query("", max_length=40),
    from_: str = Query("", alias="from", max_length=10),
    to: str = Query("", max_length=10),
    before: str = Query("", max_length=64),
) -> Response:
    gw = gateway(request)
    tz = ZoneInfo(gw.settings.business_timezone)
    first, last = _day(from_, "from"), _day(to, "to")
    if status and status not in _statuses():
        raise InvalidRequest(f"unknown status {status!r}")
    search = TransferSearch(
        merchant_id=session.scope if not session.is_operator else (merchant_id.strip() or None),
        text=q.strip() or None,
        status=status or None,
        channel=channel or None,
        created_gte=business_day_start(first, tz) if first else None,
        created_lt=business_day_start(last + timedelta(days=1), tz) if last else None,
        before_id=before or None,
        limit=PAGE_SIZE,
    )
    rows, more = await svc.search_transfers(gw, search)
    params = {
        "q": q,
        "status": status,
        "channel": channel,
        "merchant_id": merchant_id if session.is_operator else "",
        "from": from_,
        "to": to,
    }
    return await view(
        request,
        "transfers.html",
        session,
        rows=rows,
        more=more,
        next_before=rows[-1]["id"] if more and rows else None,
        params=params,
        statuses=_statuses(),
        channels=sorted(gw.channels),
    )


@router.get("/transfers/{transfer_id}")
async def transfer_detail(
    transfer_id: str, request: Request, session: Session = Depends(reader("transfers:read"))
) -> Response:
    if len(transfer_id) > 64:
        raise NotFound("no such transfer")
    row, items = await svc.timeline(
        gateway(request), transfer_id, session.scope, operator=session.is_operator
    )
    return await view(request, "transfer.html", session, t=row, items=items, csrf=session.csrf)


@router.post("/transfers/{transfer_id}/query")
async def query_now(
    transfer_id: str,
    request: Request,
    session: Session = Depends(operator(Role.operator)),
    _: FormData = Depends(checked_form),
) -> Response:
    answer = await svc.query_channel_now(gateway(request), transfer_id)
    moved = (
        f"status {answer.before} → {answer.after}"
        if answer.before != answer.after
        else f"status stays {answer.after}"
    )
    await say(
        request,
        f"The channel answered {answer.outcome}"
        + (f" ({answer.channel_status})" if answer.channel_status else "")
        + f"; {moved}.",
    )
    return redirect(f"/dashboard/transfers/{transfer_id}")


@router.post("/transfers/{transfer_id}/events/{event_id}/redeliver")
async def redeliver_from_timeline(
    transfer_id: str,
    event_id: str,
    request: Request,
    session: Session = Depends(signed_in),
    _: FormData = Depends(checked_form),
) -> Response:
    gw = gateway(request)
    row = await svc.transfer_in_scope(gw, transfer_id, session.scope)
    _may_redeliver(session)
    deliveries = await endpoints_svc.redeliver_event(
        gw, row["merchant_id"], event_id, endpoint_id=None
    )
    await say(request, f"Event {event_id} queued for {len(deliveries)} endpoint(s).")
    return redirect(f"/dashboard/transfers/{transfer_id}")


def _may_redeliver(session: Session) -> None:
    """Redelivery needs what the API asks: the operator role, or webhooks:write."""
    if session.is_operator:
        if session.operator_role == Role.viewer.value:
            raise RoleTooLow("redelivering needs the operator role (yours: viewer)")
    elif not session.may("webhooks:write"):
        raise RoleTooLow("the key you signed in with lacks the scope 'webhooks:write'")


@router.get("/reports/fees")
async def fee_report(
    request: Request,
    session: Session = Depends(reader("reports:read")),
    from_: str = Query("", alias="from", max_length=10),
    to: str = Query("", max_length=10),
    group_by: str = Query("day", max_length=64),
    merchant_id: str = Query("", max_length=40),
    fmt: str = Query("html", alias="format", max_length=8),
) -> Response:
    gw = gateway(request)
    tz = ZoneInfo(gw.settings.business_timezone)
    today = datetime.now(tz).date()
    last = _day(to, "to") or today
    first = _day(from_, "from") or last - timedelta(days=29)
    scope = (merchant_id.strip() or None) if session.is_operator else session.merchant_id
    query = reports.FeeReportQuery(
        first_day=first,
        last_day=last,
        timezone=tz,
        group_by=reports.parse_group_by(group_by, operator=session.is_operator),
        merchant_id=scope,
    )
    report = await reports.fee_report(gw, query)
    if fmt == "csv":
        name = f"paymux-fees-{first.isoformat()}-{last.isoformat()}.csv"
        return Response(
            reports.report_csv(report, operator=session.is_operator),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    params = {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "group_by": group_by,
        "merchant_id": merchant_id if session.is_operator else "",
    }
    return await view(
        request,
        "fees.html",
        session,
        report=report,
        params=params,
        group_fields=[reports.GROUP_FIELDS[g] for g in reports.GROUP_KEYS if g in query.group_by],
    )
