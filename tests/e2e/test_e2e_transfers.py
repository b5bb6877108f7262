"""The core acceptance over real HTTP: gateway + both sandboxes + Redis + database."""

from __future__ import annotations

import time
from typing import Any

import httpx

from paymux.devstack import Stack
from tests.e2e.conftest import Api, new_merchant


def payee(kind: str, account: str, name: str | None = "Zhang San") -> dict[str, Any]:
    return {"type": kind, "account": account, "name": name}


def body(p: dict[str, Any], amount: int = 1234, **kw: Any) -> dict[str, Any]:
    return {"amount": amount, "currency": "CNY", "payee": p, **kw}


def wait_status(api: Api, transfer_id: str, want: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = api.get(f"/v1/transfers/{transfer_id}").json()
        if last["status"] == want:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{transfer_id} stayed {last.get('status')}, wanted {want}")


def sandbox_orders(stack: Stack, channel: str, reference: str) -> list[dict[str, Any]]:
    orders = httpx.get(f"{stack.sandbox_url(channel)}/__sandbox/orders").json()
    key = "out_biz_no" if channel == "alipay" else "out_bill_no"
    items = orders if isinstance(orders, list) else orders.get("orders", orders.get("data", []))
    return [o for o in items if o[key] == reference]


def test_each_payee_type_succeeds(stack: Stack, merchant: Api) -> None:
    cases = [
        (payee("alipay_account", "alice@example.com"), "alipay"),
        (payee("wechat_openid", "o4GgauInH_RCEdvrrNGrntXDuXXX"), "wechat"),
        (payee("bank_card", "6222020200112233445"), "alipay"),
    ]
    for p, channel in cases:
        resp = merchant.transfer(body(p))
        assert resp.status_code == 201, resp.text
        t = resp.json()
        assert t["status"] == "succeeded", t
        assert t["channel"] == channel
        assert t["id"].startswith("tr_")
        assert t["channel_order_id"]
        assert p["account"] not in resp.text  # masked
        assert len(sandbox_orders(stack, channel, t["channel_reference"])) == 1


def test_business_failure_carries_channel_reason(merchant: Api) -> None:
    before = merchant.get("/v1/balance").json()
    for p in (
        payee("alipay_account", "fail-payee@example.com"),
        payee("wechat_openid", "o_fail_user"),
    ):
        t = merchant.transfer(body(p)).json()
        assert t["status"] == "failed", t
        assert t["failure_code"]
        assert t["failure_message"]
    assert merchant.get("/v1/balance").json() == before  # both holds released


def test_delayed_transfer_goes_processing_then_succeeded(merchant: Api) -> None:
    for p in (payee("alipay_account", "delay@example.com"), payee("wechat_openid", "o_delay_1")):
        t = merchant.transfer(body(p)).json()
        assert t["status"] == "processing", t
        done = wait_status(merchant, t["id"], "succeeded")
        assert done["completed_at"]


def test_unknown_outcomes_are_never_guessed(merchant: Api) -> None:
    # The sandbox creates the order, then answers 20000 / 500 or holds the answer past our
    # timeout. Its notification may beat our own request to the row; either way the
    # transfer must end succeeded, never failed.
    for p in (
        payee("alipay_account", "error@example.com"),
        payee("alipay_account", "timeout@example.com"),
        payee("wechat_openid", "o_error_1"),
        payee("wechat_openid", "o_timeout_1"),
    ):
        t = merchant.transfer(body(p)).json()
        assert t["status"] in ("processing", "succeeded"), t
        wait_status(merchant, t["id"], "succeeded", timeout=30)


def test_retryable_before_acceptance_is_retried_with_same_reference(
    stack: Stack, merchant: Api
) -> None:
    for p, channel in (
        (payee("wechat_openid", "o_busy_1"), "wechat"),
        (payee("alipay_account", "busy@example.com"), "alipay"),
    ):
        t = merchant.transfer(body(p)).json()
        assert t["status"] in ("succeeded", "processing"), t
        wait_status(merchant, t["id"], "succeeded")
        assert len(sandbox_orders(stack, channel, t["channel_reference"])) == 1


def test_read_and_list_with_pagination_and_filters(merchant: Api) -> None:
    ids = [
        merchant.transfer(body(payee("alipay_account", f"u{i}@example.com"))).json()["id"]
        for i in range(5)
    ]
    merchant.transfer(body(payee("alipay_account", "fail-x@example.com")))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "status": "succeeded"}
        if cursor:
            params["cursor"] = cursor
        page = merchant.get("/v1/transfers", params=params).json()
        seen += [t["id"] for t in page["data"]]
        assert all(t["status"] == "succeeded" for t in page["data"])
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert set(ids) <= set(seen)
    assert seen == sorted(seen, reverse=True)
    assert merchant.get("/v1/transfers", params={"limit": 101}).status_code == 422


def test_other_merchants_objects_are_404(stack: Stack, merchant: Api) -> None:
    other = new_merchant(stack, name="Other")
    t = merchant.transfer(body(payee("alipay_account", "x@example.com"))).json()
    resp = other.get(f"/v1/transfers/{t['id']}")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    assert t["id"] not in [x["id"] for x in other.get("/v1/transfers").json()["data"]]


def test_auth_errors_are_problems(stack: Stack) -> None:
    anon = httpx.Client(base_url=stack.gateway_url)
    assert anon.get("/v1/transfers").status_code == 401
    bad = anon.get("/v1/transfers", headers={"Authorization": "Bearer sk_wrong"})
    assert bad.status_code == 401
    assert bad.json()["code"] == "unauthorized"
    merchant_only = anon.post(
        "/v1/merchants", json={"name": "x"}, headers={"Authorization": "Bearer sk_wrong"}
    )
    assert merchant_only.status_code == 401


def test_validation_errors_change_nothing(merchant: Api) -> None:
    before = merchant.get("/v1/balance").json()
    bad_bodies = [
        {"amount": 12.5, "currency": "CNY", "payee": payee("alipay_account", "a@b.c")},
        {"amount": 0, "currency": "CNY", "payee": payee("alipay_account", "a@b.c")},
        {"amount": -5, "currency": "CNY", "payee": payee("alipay_account", "a@b.c")},
        {"amount": "100", "currency": "CNY", "payee": payee("alipay_account", "a@b.c")},
        {"amount": 100, "currency": "USD", "payee": payee("alipay_account", "a@b.c")},
        {"amount": 100, "currency": "CNY", "payee": payee("bank_card", "1234", None)},
        {
            "amount": 100,
            "currency": "CNY",
            "payee": payee("alipay_account", "a@b.c"),
            "surprise": 1,
        },
        {
            "amount": 100,
            "currency": "CNY",
            "payee": payee("wechat_openid", "o_x"),
            "channel": "alipay",
        },
    ]
    key = "same-key-for-all-invalid"
    for b in bad_bodies:
        resp = merchant.transfer(b, key=key)
        assert resp.status_code == 422, (b, resp.text)
        problem = resp.json()
        assert resp.headers["content-type"] == "application/problem+json"
        assert {"type", "title", "status", "detail", "code"} <= problem.keys()
    assert (
        merchant.client.post(
            "/v1/transfers",
            content=b"{not json",
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
        ).status_code
        == 422
    )
    missing_key = merchant.client.post("/v1/transfers", json=body(payee("alipay_account", "a@b.c")))
    assert missing_key.status_code == 400
    assert missing_key.json()["code"] == "idempotency_key_missing"
    assert merchant.get("/v1/balance").json() == before
    # The key was never stored: a valid request may still use it.
    ok = merchant.transfer(body(payee("alipay_account", "a@b.c")), key=key)
    assert ok.status_code == 201, ok.text


def test_health_and_docs(stack: Stack) -> None:
    assert httpx.get(f"{stack.gateway_url}/healthz").json()["status"] == "ok"
    ready = httpx.get(f"{stack.gateway_url}/readyz").json()
    assert ready["checks"] == {
        "database": "ok",
        "redis": "ok",
        "channels": {"alipay": "closed", "wechat": "closed"},
    }
    assert httpx.get(f"{stack.gateway_url}/docs").status_code == 200
    spec = httpx.get(f"{stack.gateway_url}/openapi.json").json()
    assert "/v1/transfers" in spec["paths"]
