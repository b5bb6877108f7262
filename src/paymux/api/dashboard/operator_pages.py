"""Operator-only pages: merchants (balances, top-up, fee rules, keys) and webhook deliveries
across every merchant (failing endpoints, redeliver). A merchant session gets 404 here."""

from __future__ import annotations

import hashlib
import re
import secrets
from decimal import Decimal

from fastapi import APIRouter, Depends, Query, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from paymux.api.auth import gateway
from paymux.api.dashboard.access import checked_form, operator
from paymux.api.dashboard.pages import PAGE_SIZE, say, view
from paymux.api.dashboard.render import DashboardRoute, redirect
from paymux.api.dashboard.sessions import Session
from paymux.domain.access import Principal, Role
from paymux.domain.fees import FeeError, FeeKind, FeeRule, FeeScheduleEntry
from paymux.domain.money import MoneyError, check_amount, parse_major
from paymux.service import access as access_svc
from paymux.service import balances as balances_svc
from paymux.service import dashboard as svc
from paymux.service import fee_rules
from paymux.service import merchants as merchants_svc
from paymux.service import webhook_endpoints as endpoints_svc
from paymux.service.access import audit_draft
from paymux.service.errors import InvalidRequest, NotFound
from paymux.service.feebook import entry_view
from paymux.store.dashboard_repo import DeliverySearch

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)

DELIVERY_STATUSES = ("pending", "succeeded", "failed")


def actor(session: Session) -> Principal:
    """The operator behind a dashboard action, for the audit log."""
    return Principal(session.key_id, "operator", None, role=Role(session.operator_role or "viewer"))


@router.get("/merchants")
async def merchants(
    request: Request,
    session: Session = Depends(operator()),
    after: str = Query("", max_length=64),
) -> Response:
    rows, more = await svc.merchants_page(gateway(request), after_id=after or None, limit=PAGE_SIZE)
    return await view(
        request,
        "merchants.html",
        session,
        rows=rows,
        next_after=rows[-1].id if more and rows else None,
    )


@router.post("/merchants")
async def create_merchant(
    request: Request,
    session: Session = Depends(operator(Role.admin)),
    form: FormData = Depends(checked_form),
) -> Response:
    name = form.get("name")
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 200:
        raise InvalidRequest("a merchant needs a name of 1 to 200 characters")
    row, secret = await merchants_svc.create_merchant(gateway(request), name, actor(session))
    await say(
        request,
        f"Merchant {name} created. Give them this secret key now: it is not shown again.",
        "secret",
        secret=secret,
    )
    return redirect(f"/dashboard/merchants/{row['id']}")


@router.get("/merchants/{merchant_id}")
async def merchant_detail(
    merchant_id: str, request: Request, session: Session = Depends(operator())
) -> Response:
    gw = gateway(request)
    rows, _ = await svc.merchants_page(gw, after_id=None, limit=1, only=merchant_id[:64])
    if not rows:
        raise NotFound(f"no merchant {merchant_id}")
    entries = [
        entry_view(e)
        for e in await gw.feebook.entries()
        if e.merchant_id in (None, merchant_id) and e.kind.value == "price"
    ]
    return await view(
        request,
        "merchant.html",
        session,
        m=rows[0],
        fee_rules=entries,
        keys=await access_svc.list_keys(gw, merchant_id=merchant_id),
        channels=sorted(gw.channels),
        payee_types=PAYEE_TYPES,
        topup_key=secrets.token_urlsafe(16),  # a resubmitted form replays, never repeats
    )


@router.post("/merchants/{merchant_id}/topups")
async def topup(
    merchant_id: str,
    request: Request,
    session: Session = Depends(operator(Role.operator)),
    form: FormData = Depends(checked_form),
) -> Response:
    amount_text = form.get("amount")
    description = form.get("description")
    key = form.get("idempotency_key")
    if not isinstance(key, str) or not key or len(key) > 64:
        raise InvalidRequest("the form lost its idempotency key; reload the page")
    try:
        amount = check_amount(parse_major(str(amount_text or "").strip(), "CNY"))
    except MoneyError as exc:
        raise InvalidRequest(f"amount: {exc}") from None
    desc = description.strip()[:128] if isinstance(description, str) else ""
    fingerprint = hashlib.sha256(f"{amount}|CNY|{desc}".encode()).hexdigest()
    result = await balances_svc.create_topup(
        gateway(request),
        merchant_id,
        amount=amount,
        currency="CNY",
        description=desc or None,
        idempotency_key="dashboard-" + key,
        fingerprint=fingerprint,
        audit=audit_draft(actor(session), "topup.create", "topup", None, merchant_id),
    )
    what = "was already recorded" if result.replayed else "recorded"
    await say(request, f"Top-up of {amount_text} CNY {what} ({result.row['id']}).")
    return redirect(f"/dashboard/merchants/{merchant_id}")


@router.get("/webhooks/deliveries")
async def deliveries(
    request: Request,
    session: Session = Depends(operator()),
    status: str = Query("", max_length=16),
    endpoint_id: str = Query("", max_length=40),
    before: str = Query("", max_length=64),
) -> Response:
    if status and status not in DELIVERY_STATUSES:
        raise InvalidRequest(f"unknown delivery status {status!r}")
    rows, failing, more = await svc.deliveries(
        gateway(request),
        DeliverySearch(
            merchant_id=None,
            status=status or None,
            endpoint_id=endpoint_id or None,
            before_id=before or None,
            limit=PAGE_SIZE,
        ),
    )
    return await view(
        request,
        "deliveries.html",
        session,
        rows=rows,
        failing=failing,
        more=more,
        next_before=rows[-1]["id"] if more and rows else None,
        params={"status": status, "endpoint_id": endpoint_id},
        statuses=DELIVERY_STATUSES,
    )


@router.post("/webhooks/deliveries/{delivery_id}/redeliver")
async def redeliver(
    delivery_id: str,
    request: Request,
    session: Session = Depends(operator(Role.operator)),
    form: FormData = Depends(checked_form),
) -> Response:
    gw = gateway(request)
    delivery = await svc.delivery_merchant(gw, delivery_id, None)
    rows = await endpoints_svc.redeliver_event(
        gw, delivery["merchant_id"], delivery["event_id"], endpoint_id=delivery["endpoint_id"]
    )
    await say(request, f"Event {delivery['event_id']} queued again ({rows[0]['id']}).")
    back = form.get("back")
    return redirect(
        back
        if isinstance(back, str) and back.startswith("/dashboard/")
        else "/dashboard/webhooks/deliveries"
    )


PAYEE_TYPES = ("alipay_account", "wechat_openid", "bank_card")
_BPS = re.compile(r"[0-9]{1,5}(\.[0-9]{1,4})?", re.ASCII)


def _yuan(form: FormData, name: str, *, optional: bool = False) -> int | None:
    text = form.get(name)
    text = text.strip() if isinstance(text, str) else ""
    if not text:
        if optional:
            return None
        return 0
    try:
        return parse_major(text, "CNY")
    except MoneyError as exc:
        raise InvalidRequest(f"{name}: {exc}") from None


@router.post("/merchants/{merchant_id}/fee_rules")
async def add_fee_rule(
    merchant_id: str,
    request: Request,
    session: Session = Depends(operator(Role.operator)),
    form: FormData = Depends(checked_form),
) -> Response:
    """A price rule for this merchant, effective now (versioned; earlier rules stay)."""
    gw = gateway(request)
    rows, _ = await svc.merchants_page(gw, after_id=None, limit=1, only=merchant_id[:64])
    if not rows:
        raise NotFound(f"no merchant {merchant_id}")
    channel, payee_type, bps = form.get("channel"), form.get("payee_type"), form.get("bps")
    if channel not in gw.channels or payee_type not in PAYEE_TYPES:
        raise InvalidRequest("pick a configured channel and a payee type")
    if not isinstance(bps, str) or not _BPS.fullmatch(bps.strip()):
        raise InvalidRequest("bps is a decimal number of basis points, e.g. 60 or 12.5")
    now = gw.clock()
    try:
        entry = FeeScheduleEntry(
            kind=FeeKind.price,
            channel=str(channel),
            payee_type=str(payee_type),
            rule=FeeRule(
                bps=Decimal(bps.strip()),
                fixed=_yuan(form, "fixed") or 0,
                minimum=_yuan(form, "minimum") or 0,
                maximum=_yuan(form, "maximum", optional=True),
            ),
            effective_at=now,
            merchant_id=merchant_id,
        )
    except FeeError as exc:
        raise InvalidRequest(str(exc)) from None
    version = (await fee_rules.add(gw, actor(session), entry, now=now))["version"]
    await say(request, f"Fee rule v{version} for {channel} {payee_type} is in force from now.")
    return redirect(f"/dashboard/merchants/{merchant_id}")
