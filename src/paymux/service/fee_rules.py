"""Adding a fee rule: stored with its audit record in one transaction, then in force on
every replica once its fee book refreshes (this one's at once)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from paymux.domain.access import Principal
from paymux.domain.fees import FeeScheduleEntry
from paymux.request_context import current_request_id
from paymux.service.access import audit_draft
from paymux.service.feebook import entry_view
from paymux.service.gateway import Gateway
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
