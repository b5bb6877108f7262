"""Batch payouts end to end: accept at once, work off in the background, complete once."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from paymux.devstack import Stack
from tests.e2e.conftest import Api, make_stack, new_merchant
from tests.e2e.test_e2e_confirmation import ledger_ok


def item(reference: str, kind: str, account: str, amount: int = 100, **kw: Any) -> dict[str, Any]:
    payee: dict[str, Any] = {"type": kind, "account": account}
    if kind == "bank_card":
        payee["name"] = "张三"
    return {"reference": reference, "amount": amount, "currency": "CNY", "payee": payee, **kw}


def mixed_items(n: int, tag: str) -> list[dict[str, Any]]:
    """Every payee type, with the sandboxes' magic failures and delays mixed in."""
    kinds = [
        ("alipay_account", "ok{}@example.com"),
        ("alipay_account", "fail{}@example.com"),
        ("wechat_openid", "o_user_{}"),
        ("wechat_openid", "o_fail_{}"),
        ("bank_card", "62220212345{:05d}"),
        ("bank_card", "6222021234{:05d}4004"),
        ("alipay_account", "delay{}@example.com"),
    ]
    out = []
    for i in range(n):
        kind, pattern = kinds[i % len(kinds)]
        out.append(item(f"{tag}-{i}", kind, pattern.format(i)))
    return out


def post_batch(api: Api, body: Any, key: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Idempotency-Key": key or uuid.uuid4().hex, **kw.pop("headers", {})}
    return api.client.post("/v1/transfer_batches", json=body, headers=headers, **kw)


def wait_completed(api: Api, batch_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = api.get(f"/v1/transfer_batches/{batch_id}").json()
        if last["status"] == "completed":
            return last
        time.sleep(0.3)
    raise AssertionError(f"batch {batch_id} did not complete: {last}")


def all_items(api: Api, batch_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = api.get(f"/v1/transfer_batches/{batch_id}/items", params=params).json()
        items += page["data"]
        if not page["has_more"]:
            return items
        cursor = page["next_cursor"]


def sandbox_refs(stack: Stack) -> dict[str, list[str]]:
    alipay = httpx.get(f"{stack.sandbox_url('alipay')}/__sandbox/orders", timeout=30).json()
    wechat = httpx.get(f"{stack.sandbox_url('wechat')}/__sandbox/orders", timeout=30).json()

    def refs(orders: Any, key: str) -> list[str]:
        rows = orders if isinstance(orders, list) else orders.get("orders", orders.get("data"))
        return [o[key] for o in rows]

    return {"alipay": refs(alipay, "out_biz_no"), "wechat": refs(wechat, "out_bill_no")}


def check_final(stack: Stack, items: list[dict[str, Any]]) -> None:
    """Every item final, one transfer each, one channel order per sent transfer."""
    orders = sandbox_refs(stack)
    seen: set[str] = set()
    for it in items:
        assert it["status"] in ("succeeded", "failed", "canceled", "returned"), it
        t = it["transfer"]
        if t is None:
            assert it["status"] == "failed" and it["failure_code"], it
            continue
        assert t["id"] not in seen
        seen.add(t["id"])
        assert orders[t["channel"]].count(t["channel_reference"]) <= 1
        if t["status"] == "succeeded":
            assert orders[t["channel"]].count(t["channel_reference"]) == 1
        if t["status"] == "failed":
            assert t["failure_code"] and t["channel_failure_code"], t


def test_mixed_batch_completes_once(stack: Stack, merchant: Api) -> None:
    items = mixed_items(42, uuid.uuid4().hex[:8])
    key = uuid.uuid4().hex
    resp = post_batch(merchant, {"items": items}, key=key)
    assert resp.status_code == 202, resp.text
    batch = resp.json()
    assert batch["status"] == "processing" and batch["item_count"] == 42
    done = wait_completed(merchant, batch["id"])
    assert sum(done["counts"].values()) == 42
    assert done["counts"]["failed"] == 18  # 6 of each of the three magic failures
    assert done["totals"]["amount"] == 42 * 100
    listed = all_items(merchant, batch["id"])
    assert [i["reference"] for i in listed] == [i["reference"] for i in items]
    check_final(stack, listed)
    codes = {i["transfer"]["failure_code"] for i in listed if i["status"] == "failed"}
    assert codes == {"payee_not_found", "payee_account_restricted"}
    # The same key returns the same batch, and the batch's transfers were not paid twice.
    again = post_batch(merchant, {"items": items}, key=key)
    assert again.status_code == 202 and again.json()["id"] == batch["id"]
    # Re-sending the items in a NEW batch maps each reference to its existing transfer.
    resend = post_batch(merchant, {"items": items[:3]})
    assert resend.status_code == 202
    redo = wait_completed(merchant, resend.json()["id"])
    first = {i["reference"]: i["transfer"]["id"] for i in listed[:3]}
    second = {i["reference"]: i["transfer"]["id"] for i in all_items(merchant, redo["id"])}
    assert first == second
    events = merchant.get("/v1/events", params={"type": "transfer_batch.completed"}).json()
    completed = [e for e in events["data"] if e["data"]["object"]["id"] == batch["id"]]
    assert len(completed) == 1
    assert completed[0]["data"]["object"]["status"] == "completed"
    ledger_ok(stack)


def test_items_that_do_not_fit_fail_alone(stack: Stack) -> None:
    api = new_merchant(stack, funds=10_000)
    tag = uuid.uuid4().hex[:8]
    items = [
        item(f"{tag}-{i}", "alipay_account", f"u{i}@example.com", amount=3000) for i in range(5)
    ]
    resp = post_batch(api, {"items": items})
    assert resp.status_code == 202, resp.text
    done = wait_completed(api, resp.json()["id"])
    listed = all_items(api, done["id"])
    short = [i for i in listed if i["failure_code"] == "insufficient_funds"]
    paid = [i for i in listed if i["status"] == "succeeded"]
    assert len(paid) + len(short) == 5 and paid and short
    assert all(i["transfer"] is None for i in short)
    balance = api.get("/v1/balance").json()
    assert balance["held"] == 0
    assert balance["available"] == 10_000 - sum(
        i["transfer"]["amount"] + i["transfer"]["fee"] for i in paid
    )
    ledger_ok(stack)


def test_all_or_nothing_that_does_not_fit_holds_nothing(stack: Stack) -> None:
    api = new_merchant(stack, funds=10_000)
    tag = uuid.uuid4().hex[:8]
    items = [
        item(f"{tag}-{i}", "alipay_account", f"u{i}@example.com", amount=3000) for i in range(5)
    ]
    resp = post_batch(api, {"items": items, "all_or_nothing": True})
    assert resp.status_code == 402, resp.text
    assert resp.json()["code"] == "insufficient_funds"
    assert api.get("/v1/balance").json() == {
        "object": "balance",
        "currency": "CNY",
        "available": 10_000,
        "held": 0,
    }
    assert api.get("/v1/transfers").json()["data"] == []
    ledger_ok(stack)


def test_all_or_nothing_that_fits_completes(stack: Stack, merchant: Api) -> None:
    items = mixed_items(14, uuid.uuid4().hex[:8])
    resp = post_batch(merchant, {"items": items, "all_or_nothing": True})
    assert resp.status_code == 202, resp.text
    done = wait_completed(merchant, resp.json()["id"])
    assert sum(done["counts"].values()) == 14
    check_final(stack, all_items(merchant, done["id"]))
    ledger_ok(stack)


def test_csv_body(stack: Stack, merchant: Api) -> None:
    tag = uuid.uuid4().hex[:8]
    csv_text = (
        "reference,amount,currency,payee_type,payee_account,payee_name,channel,description\n"
        f"{tag}-a,150,CNY,alipay_account,csv1@example.com,,,csv one\n"
        f"{tag}-b,250,CNY,wechat_openid,o_csv_user,,,\n"
        f"{tag}-c,350,CNY,bank_card,6222021234567890,李四,,\n"
    )
    resp = merchant.client.post(
        "/v1/transfer_batches",
        content=csv_text.encode(),
        headers={"Idempotency-Key": uuid.uuid4().hex, "Content-Type": "text/csv"},
    )
    assert resp.status_code == 202, resp.text
    done = wait_completed(merchant, resp.json()["id"])
    assert done["counts"] == {"succeeded": 3}
    assert done["totals"]["amount"] == 750
    bad = merchant.client.post(
        "/v1/transfer_batches",
        content=csv_text.replace(",150,", ",1.50,").encode(),
        headers={"Idempotency-Key": uuid.uuid4().hex, "Content-Type": "text/csv"},
    )
    assert bad.status_code == 422


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"items": []}, 422),
        ({"items": [item("a", "alipay_account", "x@y.z")] * 2}, 422),  # duplicate reference
        ({"items": [item(f"r{i}", "alipay_account", "x@y.z") for i in range(1001)]}, 422),
        ({"items": [item("a", "alipay_account", "x@y.z", amount=1.5)]}, 422),
        ({"items": [item("bad ref!", "alipay_account", "x@y.z")]}, 422),
    ],
)
def test_bad_batches_are_refused(stack: Stack, merchant: Api, body: Any, status: int) -> None:
    resp = post_batch(merchant, body)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_batch_needs_a_key_and_a_known_media_type(stack: Stack, merchant: Api) -> None:
    body = {"items": [item("a", "alipay_account", "x@y.z")]}
    assert merchant.client.post("/v1/transfer_batches", json=body).status_code == 400
    wrong = merchant.client.post(
        "/v1/transfer_batches",
        content=b"<xml/>",
        headers={"Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/xml"},
    )
    assert wrong.status_code == 415
    huge = merchant.client.post(
        "/v1/transfer_batches",
        content=b"x" * (2 * 1024 * 1024 + 1),
        headers={"Idempotency-Key": uuid.uuid4().hex, "Content-Type": "text/csv"},
    )
    assert huge.status_code == 413
    assert merchant.get("/v1/transfer_batches/tb_nope").status_code == 404


def test_thousand_item_batch_survives_a_gateway_kill(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> None:
    """Killed mid-batch and restarted: every item ends final, one channel order each."""
    stack = make_stack(
        tmp_path_factory.mktemp("batchkill"),
        redis_url,
        PAYMUX_BATCH_DEFAULT_RATE_PER_SECOND="100",
        PAYMUX_BATCH_INTERVAL_SECONDS="0.2",
    )
    try:
        stack.start_sandboxes()
        stack.start_gateway()
        stack.wait_gateway()
        api = new_merchant(stack)
        items = mixed_items(1000, "k" + uuid.uuid4().hex[:8])
        key = uuid.uuid4().hex
        resp = post_batch(api, {"items": items}, key=key)
        assert resp.status_code == 202, resp.text
        batch_id = resp.json()["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = api.get(f"/v1/transfer_batches/{batch_id}").json()["counts"]
            if sum(n for s, n in counts.items() if s != "queued") >= 150:
                break
            time.sleep(0.1)
        stack.stop("gateway", kill=True)
        stack.start_gateway()
        stack.wait_gateway()
        done = wait_completed(api, batch_id, timeout=300)
        assert sum(done["counts"].values()) == 1000
        listed = all_items(api, batch_id)
        assert len(listed) == 1000
        check_final(stack, listed)
        transfers = {i["transfer"]["id"] for i in listed if i["transfer"]}
        assert len(transfers) == 1000  # everyone fits: one transfer per item
        again = post_batch(api, {"items": items}, key=key)
        assert again.status_code == 202 and again.json()["id"] == batch_id
        assert api.get("/v1/balance").json()["held"] == 0
        ledger_ok(stack)
    finally:
        stack.stop_all()


def test_queued_item_of_an_all_or_nothing_batch_can_be_canceled(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> None:
    """Items wait their turn (1 per second here) still queued: canceling one releases its
    hold, the channel never sees it, and the batch completes around it."""
    stack = make_stack(
        tmp_path_factory.mktemp("batchcancel"),
        redis_url,
        PAYMUX_BATCH_DEFAULT_RATE_PER_SECOND="1",
        PAYMUX_BATCH_DEFAULT_CONCURRENCY="1",
        PAYMUX_BATCH_INTERVAL_SECONDS="0.2",
    )
    try:
        stack.start_sandboxes()
        stack.start_gateway()
        stack.wait_gateway()
        api = new_merchant(stack, funds=1_000_000)
        tag = uuid.uuid4().hex[:8]
        items = [item(f"{tag}-{i}", "alipay_account", f"q{i}@example.com") for i in range(6)]
        resp = post_batch(api, {"items": items, "all_or_nothing": True})
        assert resp.status_code == 202, resp.text
        batch_id = resp.json()["id"]
        listed = all_items(api, batch_id)
        last = listed[-1]["transfer"]
        assert last["status"] == "pending"
        canceled = api.client.post(f"/v1/transfers/{last['id']}/cancel")
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"] == "canceled"
        done = wait_completed(api, batch_id)
        assert done["counts"] == {"canceled": 1, "succeeded": 5}
        assert last["channel_reference"] not in sandbox_refs(stack)["alipay"]
        first = all_items(api, batch_id)[0]["transfer"]
        refused = api.client.post(f"/v1/transfers/{first['id']}/cancel")
        assert refused.status_code == 409
        assert refused.json()["transfer_status"] == "succeeded"
        assert api.get("/v1/balance").json()["held"] == 0
        ledger_ok(stack)
    finally:
        stack.stop_all()


def test_all_or_nothing_reusing_a_reference_is_refused(stack: Stack, merchant: Api) -> None:
    tag = uuid.uuid4().hex[:8]
    first = [item(f"{tag}-0", "alipay_account", "r0@example.com")]
    resp = post_batch(merchant, {"items": first})
    assert resp.status_code == 202, resp.text
    wait_completed(merchant, resp.json()["id"])
    before = merchant.get("/v1/balance").json()
    again = [*first, item(f"{tag}-1", "alipay_account", "r1@example.com")]
    refused = post_batch(merchant, {"items": again, "all_or_nothing": True})
    assert refused.status_code == 422, refused.text
    assert merchant.get("/v1/balance").json() == before  # nothing held
