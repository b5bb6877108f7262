"""Every magic failure of both sandboxes ends in its documented Paymux failure code, with
the channel's own code kept next to it; and /docs describes the new states and resources."""

from __future__ import annotations

from pathlib import Path

import pytest

from paymux.devstack import Stack
from tests.e2e.conftest import Api
from tests.e2e.test_e2e_confirmation import payee_taps, wait_status, wechat_transfer

DOC = (Path(__file__).resolve().parents[2] / "docs" / "FAILURE_CODES.md").read_text("utf-8")


@pytest.mark.parametrize(
    ("payee", "code", "channel_code"),
    [
        (
            {"type": "alipay_account", "account": "fail@example.com"},
            "payee_not_found",
            "PAYEE_NOT_EXIST",
        ),
        (
            {"type": "bank_card", "account": "6222021234564004", "name": "张三"},
            "payee_not_found",
            "PAYEE_NOT_EXIST",
        ),
        (
            {"type": "wechat_openid", "account": "o_fail_user"},
            "payee_account_restricted",
            "PAYEE_ACCOUNT_ABNORMAL",
        ),
    ],
)
def test_magic_failures_map_to_documented_codes(
    stack: Stack, merchant: Api, payee: dict[str, str], code: str, channel_code: str
) -> None:
    resp = merchant.transfer({"amount": 800, "currency": "CNY", "payee": payee})
    assert resp.status_code == 201, resp.text
    t = resp.json()
    assert t["status"] == "failed"
    assert t["failure_code"] == code
    assert t["channel_failure_code"] == channel_code
    assert t["channel_failure_message"]
    assert t["failure_message"]  # Paymux's own description
    assert f"| `{channel_code}` | `{code}` |" in DOC
    listed = merchant.get("/v1/transfers", params={"failure_code": code}).json()["data"]
    assert t["id"] in [x["id"] for x in listed]
    # The webhook event carries the same fields.
    events = merchant.get("/v1/events", params={"type": "transfer.failed"}).json()["data"]
    (event,) = [e for e in events if e["data"]["object"]["id"] == t["id"]]
    assert event["data"]["object"]["failure_code"] == code
    assert event["data"]["object"]["channel_failure_code"] == channel_code


def test_confirmation_failures_are_documented(stack: Stack, merchant: Api) -> None:
    t = wechat_transfer(merchant)
    payee_taps(stack, t["channel_reference"], "reject")
    done = wait_status(merchant, t["id"], "failed")
    assert f"| `{done['channel_failure_code']}` | `confirmation_rejected` |" in DOC
    assert "| `OVERDUE_CLOSE` | `confirmation_expired` |" in DOC


def test_unknown_failure_filter_is_refused(stack: Stack, merchant: Api) -> None:
    resp = merchant.get("/v1/transfers", params={"failure_code": "PAYEE_NOT_EXIST"})
    assert resp.status_code == 422


def test_openapi_describes_the_new_states_and_resources(stack: Stack, merchant: Api) -> None:
    spec = merchant.get("/openapi.json").json()
    paths = spec["paths"]
    assert "post" in paths["/v1/transfers/{transfer_id}/cancel"]
    assert "post" in paths["/v1/transfer_batches"]
    assert "get" in paths["/v1/transfer_batches/{batch_id}"]
    assert "get" in paths["/v1/transfer_batches/{batch_id}/items"]
    content = paths["/v1/transfer_batches"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/csv"} <= set(content)
    text = str(paths["/v1/transfers"]["get"])
    assert "requires_confirmation" in text and "canceled" in text
    assert "confirmation_expired" in str(spec)
