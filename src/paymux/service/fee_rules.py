"""Adding a fee rule: stored with its audit record in one transaction, then in force on
every replica once its fee book refreshes (this one's at once)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from paymux.domain.access import Principal
from paymux.domain.fees import FeeError, FeeKind, FeeRule, FeeScheduleEntry
from paymux.request_context import current_request_id
from paymux.service.access import audit_draft
from paymux.service.errors import InvalidRequest
from paymux.service.feebook import entry_view
from paymux.service.gateway import Gateway
from paymux.service.merchants import merchant_exists
from paymux.store import audit_repo, fee_rules_repo
from paymux.store.db import WriteTx


async def add(
    gw: Gateway, actor: Principal | None, entry: FeeScheduleEntry, *, now: datetime
) -> dict[str, Any]:
    """Store ``entry``; returns its view, with the version it was given."""
    rid = current_request_id()  # read here: write() runs on the writer thread

    def write(tx: WriteTx) -> dict[str, Any]:
        version = fee_rules_repo.insert(tx, entry, now)
        view = {**entry_view(entry), "version": version}
        draft = audit_draft(
            actor,
            "fee_rule.create",
            "fee_rule",
            str(version),
            entry.merchant_id,
            after=view,
            request_id=rid,
        )
        audit_repo.append(tx, draft, now)
        return view

    view = await gw.db.run_write(write)
    gw.feebook.invalidate()
    return view


async def create(
    gw: Gateway,
    actor: Principal | None,
    *,
    kind: FeeKind,
    channel: str,
    payee_type: str,
    bps: Decimal,
    fixed: int,
    minimum: int,
    maximum: int | None,
    merchant_id: str | None,
    effective_at: datetime | None,
) -> dict[str, Any]:
    """Check and add one rule (the operators' API): for a configured channel and, when it
    names one, an existing merchant; effective now unless ``effective_at`` says later."""
    if channel not in gw.channels:
        raise InvalidRequest(f"no channel {channel} is configured", code_override="unknown_channel")
    if merchant_id is not None and not await merchant_exists(gw, merchant_id):
        raise InvalidRequest(f"no merchant {merchant_id}", code_override="unknown_merchant")
    now = gw.clock()
    try:
        entry = FeeScheduleEntry(
            kind=kind,
            channel=channel,
            payee_type=payee_type,
            rule=FeeRule(bps=bps, fixed=fixed, minimum=minimum, maximum=maximum),
            effective_at=effective_at or now,
            merchant_id=merchant_id,
        )
    except FeeError as exc:
        raise InvalidRequest(str(exc)) from None
    return await add(gw, actor, entry, now=now)
