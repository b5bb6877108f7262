"""A merchant's own pages: balance and balance transactions, webhook endpoints (create,
rotate the secret, attempts, redeliver). Every query is scoped to the session's merchant."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from paymux.api.auth import gateway
from paymux.api.dashboard.access import checked_form, merchant
from paymux.api.dashboard.pages import PAGE_SIZE, say, view
from paymux.api.dashboard.render import DashboardRoute, redirect
from paymux.api.dashboard.sessions import Session
from paymux.service import balances as balances_svc
from paymux.service import webhook_endpoints as endpoints_svc
from paymux.service.errors import InvalidRequest

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)


def _mine(session: Session) -> str:
    assert session.merchant_id is not None  # the `merchant` dependency guarantees it
    return session.merchant_id


@router.get("/balance")
async def balance(
    request: Request,
    session: Session = Depends(merchant("balance:read")),
    before: str = Query("", max_length=64),
) -> Response:
    gw = gateway(request)
    mid = _mine(session)
    bal = await balances_svc.balance(gw, mid, "CNY")
    rows, more = await balances_svc.balance_transactions(
        gw, mid, limit=PAGE_SIZE, starting_after=before or None
    )
    return await view(
        request,
        "balance.html",
        session,
        bal=bal,
        rows=rows,
        next_before=rows[-1]["id"] if more and rows else None,
    )


@router.get("/webhooks")
async def endpoints(
    request: Request, session: Session = Depends(merchant("webhooks:read"))
) -> Response:
    rows, _ = await endpoints_svc.list_endpoints(
        gateway(request), _mine(session), limit=100, starting_after=None
    )
    return await view(
        request,
        "endpoints.html",
        session,
        rows=[endpoints_svc.endpoint_view(r) for r in rows],
        event_types=endpoints_svc.EVENT_TYPES,
    )


@router.post("/webhooks")
async def create_endpoint(
    request: Request,
    session: Session = Depends(merchant("webhooks:write")),
    form: FormData = Depends(checked_form),
) -> Response:
    url = form.get("url")
    url = url.strip() if isinstance(url, str) else ""
    if not url or len(url) > 2048:
        raise InvalidRequest("an endpoint needs a URL")
    types = [t for t in form.getlist("event_types") if isinstance(t, str)] or ["*"]
    description = form.get("description")
    row, secret = await endpoints_svc.create_endpoint(
        gateway(request),
        _mine(session),
        url=url,
        event_types=types,
        description=(description.strip()[:256] or None) if isinstance(description, str) else None,
    )
    await say(
        request,
        "Endpoint created. Its signing secret is shown once: store it now.",
        "secret",
        secret=secret,
    )
    return redirect(f"/dashboard/webhooks/{row['id']}")


@router.get("/webhooks/{endpoint_id}")
async def endpoint_detail(
    endpoint_id: str,
    request: Request,
    session: Session = Depends(merchant("webhooks:read")),
    before: str = Query("", max_length=64),
) -> Response:
    gw = gateway(request)
    row = await endpoints_svc.get_endpoint(gw, _mine(session), endpoint_id)
    attempts, more = await endpoints_svc.list_attempts(
        gw, _mine(session), endpoint_id, limit=PAGE_SIZE, starting_after=before or None
    )
    views = [endpoints_svc.attempt_view(a) for a in attempts]
    return await view(
        request,
        "endpoint.html",
        session,
        e=endpoints_svc.endpoint_view(row),
        attempts=views,
        next_before=views[-1]["id"] if more and views else None,
    )


@router.post("/webhooks/{endpoint_id}/rotate")
async def rotate(
    endpoint_id: str,
    request: Request,
    session: Session = Depends(merchant("webhooks:write")),
    _: FormData = Depends(checked_form),
) -> Response:
    _row, secret, expires = await endpoints_svc.rotate_secret(
        gateway(request), _mine(session), endpoint_id, overlap_seconds=None
    )
    await say(
        request,
        "New signing secret (shown once). The previous one keeps signing until "
        f"{expires:%Y-%m-%d %H:%M} UTC.",
        "secret",
        secret=secret,
    )
    return redirect(f"/dashboard/webhooks/{endpoint_id}")


@router.post("/webhooks/{endpoint_id}/events/{event_id}/redeliver")
async def redeliver(
    endpoint_id: str,
    event_id: str,
    request: Request,
    session: Session = Depends(merchant("webhooks:write")),
    _: FormData = Depends(checked_form),
) -> Response:
    rows = await endpoints_svc.redeliver_event(
        gateway(request), _mine(session), event_id, endpoint_id=endpoint_id
    )
    await say(request, f"Event {event_id} queued again ({rows[0]['id']}).")
    return redirect(f"/dashboard/webhooks/{endpoint_id}")
