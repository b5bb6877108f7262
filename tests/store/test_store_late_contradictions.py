"""A channel outcome that contradicts a final state is refused and alerted, never applied.

A transfer that succeeded stays succeeded when a late FAILED arrives (the money left; only a
return brings it back), and a canceled one stays canceled on a late SUCCEEDED: the state
machine only moves forward. Each contradiction raises the operator alert an operator must
look at (the channel may have moved money the other way); nothing is written.
"""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from paymux.channels.base import ChannelResult
from paymux.domain.outcomes import Outcome
from paymux.service.gateway import Gateway
from paymux.service.transfers import apply_result
from tests.store.store_support import merchant_balances, new_funded_merchant, transfer


def _alerts(kind: str) -> float:
    return REGISTRY.get_sample_value("paymux_operator_alerts_total", {"kind": kind}) or 0.0


@pytest.mark.parametrize(
    ("first", "late", "kind"),
    [
        (Outcome.SUCCEEDED, Outcome.FAILED, "late_failure_after_success"),
        (Outcome.CANCELED, Outcome.SUCCEEDED, "late_success_after_cancel"),
    ],
)
async def test_a_late_contradicting_outcome_is_kept_out_and_alerted(
    gw: Gateway, first: Outcome, late: Outcome, kind: str
) -> None:
    merchant_id = await new_funded_merchant(gw, 100_000)
    t = (await transfer(gw, merchant_id, 1_000, Outcome.PROCESSING)).transfer
    settled = await apply_result(gw, t.id, ChannelResult(first), source="test")
    assert settled.status.value == first.value
    balances = await merchant_balances(gw, merchant_id)
    before = _alerts(kind)
    after = await apply_result(gw, t.id, ChannelResult(late), source="late notification")
    assert after == settled  # nothing written
    assert await merchant_balances(gw, merchant_id) == balances
    assert _alerts(kind) == before + 1
    # A duplicate of the outcome it already has is a quiet no-op, not an alert.
    await apply_result(gw, t.id, ChannelResult(first), source="duplicate")
    assert _alerts(kind) == before + 1
