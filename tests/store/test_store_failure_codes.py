"""A failed transfer gets Paymux's code from its channel's table; an unknown channel code
becomes channel_rejected, keeps the channel's words, and raises the operator metric."""

from __future__ import annotations

import uuid

from paymux import metrics
from paymux.service.gateway import Gateway
from paymux.service.transfers import NewTransfer, create_transfer
from tests.store.store_support import new_funded_merchant


def _failing() -> NewTransfer:
    return NewTransfer(
        amount=700,
        currency="CNY",
        payee_type="alipay_account",
        payee_account="nobody@example.com",
        payee_name=None,
        channel="alipay",
        description="failed",  # the scripted channel fails it with PAYEE_NOT_EXIST
    )


def _unknown_count() -> float:
    return metrics.unknown_failure_codes.labels("alipay")._value.get()


async def test_unknown_channel_code_is_channel_rejected_and_counted(gw: Gateway) -> None:
    merchant = await new_funded_merchant(gw, 100_000)
    before = _unknown_count()
    created = await create_transfer(gw, merchant, uuid.uuid4().hex, "fp", _failing())
    row = created.transfer
    assert row.status == "failed"
    assert row.failure_code == "channel_rejected"
    assert row.channel_failure_code == "PAYEE_NOT_EXIST"
    assert row.channel_failure_message == "payee does not exist"
    assert _unknown_count() == before + 1


async def test_known_channel_code_maps_through_the_adapter_table(gw: Gateway) -> None:
    channel = gw.channels["alipay"]
    channel.failure_codes = {"PAYEE_NOT_EXIST": "payee_not_found"}  # type: ignore[attr-defined]
    try:
        merchant = await new_funded_merchant(gw, 100_000)
        before = _unknown_count()
        created = await create_transfer(gw, merchant, uuid.uuid4().hex, "fp", _failing())
        assert created.transfer.failure_code == "payee_not_found"
        assert created.transfer.channel_failure_code == "PAYEE_NOT_EXIST"
        assert _unknown_count() == before
    finally:
        del channel.failure_codes  # type: ignore[attr-defined]
