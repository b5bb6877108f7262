"""WeChat's user confirmation and cancel, end to end over HTTP against the real stack.

The session's WeChat sandbox runs pre-authorised; an openid containing ``confirm`` forces
the confirmation step, as on the real upgraded transfer API (WAIT_USER_CONFIRM).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import httpx

from paymux.devstack import Stack
from tests.e2e.conftest import Api


def confirm_payee() -> dict[str, str]:
    return {"type": "wechat_openid", "account": f"o_confirm_{uuid.uuid4().hex[:12]}"}


def wechat_transfer(api: Api, amount: int = 1500) -> dict[str, Any]:
    resp = api.transfer({"amount": amount, "currency": "CNY", "payee": confirm_payee()})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def wait_status(api: Api, transfer_id: str, want: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = api.get(f"/v1/transfers/{transfer_id}").json()
        if last["status"] == want:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{transfer_id} stayed {last.get('status')}, wanted {want}")


def sandbox(stack: Stack, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, stack.sandbox_url("wechat") + path, timeout=10, **kw)


def bill(stack: Stack, reference: str) -> dict[str, Any]:
    resp = sandbox(stack, "GET", f"/__sandbox/orders/{reference}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def payee_taps(stack: Stack, reference: str, decision: str) -> httpx.Response:
    return sandbox(stack, "POST", f"/__sandbox/transfer-bills/{reference}/{decision}")


def ledger_ok(stack: Stack) -> None:
    check = subprocess.run(
        [sys.executable, "-m", "paymux", "ledger", "check"],
        env={"PAYMUX_DATABASE_URL": stack.database_url or "", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def event_types(api: Api, transfer_id: str) -> list[str]:
    events = api.get("/v1/events", params={"limit": 100}).json()["data"]
    return [e["type"] for e in reversed(events) if e["data"]["object"]["id"] == transfer_id]


def balance(api: Api) -> dict[str, int]:
    got = api.get("/v1/balance").json()
    return {"available": got["available"], "held": got["held"]}


def test_transfer_waits_for_confirmation_with_next_action(stack: Stack, merchant: Api) -> None:
    before = balance(merchant)
    t = wechat_transfer(merchant)
    assert t["status"] == "requires_confirmation"
    action = t["next_action"]
    assert action["type"] == "wechat_user_confirmation"
    assert action["wechat"]["package_info"]
    assert action["wechat"]["mch_id"] and action["wechat"]["app_id"]
    assert action["expires_at"].endswith("Z")
    assert bill(stack, t["channel_reference"])["state"] == "WAIT_USER_CONFIRM"
    # The hold stays while the payee decides.
    now = balance(merchant)
    assert now["held"] == before["held"] + t["amount"] + t["fee"]
    assert now["available"] == before["available"] - t["amount"] - t["fee"]
    listed = merchant.get("/v1/transfers", params={"status": "requires_confirmation"}).json()
    assert t["id"] in [x["id"] for x in listed["data"]]


def test_confirm_succeeds(stack: Stack, merchant: Api) -> None:
    t = wechat_transfer(merchant)
    assert payee_taps(stack, t["channel_reference"], "confirm").status_code == 200
    done = wait_status(merchant, t["id"], "succeeded")
    assert done["next_action"] is None
    assert bill(stack, t["channel_reference"])["state"] == "SUCCESS"
    types = event_types(merchant, t["id"])
    assert types[:2] == ["transfer.requires_confirmation", "transfer.succeeded"]
    ledger_ok(stack)


def test_reject_fails_with_confirmation_rejected(stack: Stack, merchant: Api) -> None:
    before = balance(merchant)
    t = wechat_transfer(merchant)
    assert payee_taps(stack, t["channel_reference"], "reject").status_code == 200
    done = wait_status(merchant, t["id"], "failed")
    assert done["failure_code"] == "confirmation_rejected"
    assert done["channel_failure_code"] == "USER_REJECTED"
    assert balance(merchant) == before  # the hold came back
    assert "transfer.failed" in event_types(merchant, t["id"])
    failed = merchant.get("/v1/transfers", params={"failure_code": "confirmation_rejected"})
    assert t["id"] in [x["id"] for x in failed.json()["data"]]
    ledger_ok(stack)


def test_unconfirmed_transfer_expires(stack: Stack, merchant: Api) -> None:
    cfg = sandbox(stack, "POST", "/__sandbox/config", json={"confirmation_expiry_seconds": 1})
    assert cfg.status_code == 200, cfg.text
    try:
        t = wechat_transfer(merchant)
    finally:
        sandbox(stack, "POST", "/__sandbox/config", json={"confirmation_expiry_seconds": 3600})
    assert t["status"] == "requires_confirmation"
    done = wait_status(merchant, t["id"], "failed")
    assert done["failure_code"] == "confirmation_expired"
    assert done["channel_failure_code"] == "OVERDUE_CLOSE"
    ledger_ok(stack)


def test_cancel_before_confirmation(stack: Stack, merchant: Api) -> None:
    before = balance(merchant)
    t = wechat_transfer(merchant)
    key = uuid.uuid4().hex
    resp = merchant.client.post(f"/v1/transfers/{t['id']}/cancel", headers={"Idempotency-Key": key})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "canceled"
    assert resp.json()["failure_code"] == "canceled"
    assert bill(stack, t["channel_reference"])["state"] in ("CANCELING", "CANCELLED")
    assert balance(merchant) == before
    # Idempotent: the same key replays, a new request answers the same.
    again = merchant.client.post(
        f"/v1/transfers/{t['id']}/cancel", headers={"Idempotency-Key": key}
    )
    assert again.status_code == 200 and again.headers.get("idempotent-replayed") == "true"
    plain = merchant.client.post(f"/v1/transfers/{t['id']}/cancel")
    assert plain.status_code == 200 and plain.json()["status"] == "canceled"
    # The payee can no longer confirm; the final CANCELLED callback changes nothing.
    assert payee_taps(stack, t["channel_reference"], "confirm").status_code == 409
    time.sleep(1.0)
    assert merchant.get(f"/v1/transfers/{t['id']}").json()["status"] == "canceled"
    assert event_types(merchant, t["id"]) == [
        "transfer.requires_confirmation",
        "transfer.canceled",
    ]
    ledger_ok(stack)


def test_cancel_of_a_final_transfer_is_refused(stack: Stack, merchant: Api) -> None:
    resp = merchant.transfer(
        {"amount": 500, "currency": "CNY", "payee": {"type": "alipay_account", "account": "a@b.c"}}
    )
    assert resp.status_code == 201 and resp.json()["status"] == "succeeded"
    refused = merchant.client.post(f"/v1/transfers/{resp.json()['id']}/cancel")
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["code"] == "transfer_not_cancelable"
    assert problem["transfer_status"] == "succeeded"
    missing = merchant.client.post("/v1/transfers/tr_nope/cancel")
    assert missing.status_code == 404


def test_cancel_after_confirmation_answers_409_with_the_outcome(
    stack: Stack, merchant: Api
) -> None:
    t = wechat_transfer(merchant)
    assert payee_taps(stack, t["channel_reference"], "confirm").status_code == 200
    refused = merchant.client.post(f"/v1/transfers/{t['id']}/cancel")
    if refused.status_code == 200:  # pragma: no cover - impossible: the bill is SUCCESS
        raise AssertionError(refused.text)
    assert refused.status_code == 409
    assert refused.json()["transfer_status"] == "succeeded"  # learned from the channel
    ledger_ok(stack)


def test_cancel_racing_confirmation_ends_one_way(stack: Stack, merchant: Api) -> None:
    outcomes: list[str] = []
    for _ in range(6):
        t = wechat_transfer(merchant)
        ref = t["channel_reference"]
        results: dict[str, Any] = {}
        go = threading.Barrier(2)

        def tap(ref: str = ref, results: dict[str, Any] = results) -> None:
            go.wait()
            results["tap"] = payee_taps(stack, ref, "confirm").status_code

        def cancel(tid: str = t["id"], results: dict[str, Any] = results) -> None:
            go.wait()
            results["cancel"] = merchant.client.post(f"/v1/transfers/{tid}/cancel").status_code

        threads = [threading.Thread(target=tap), threading.Thread(target=cancel)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        state = bill(stack, ref)["state"]
        if results["cancel"] == 200:
            assert results["tap"] == 409
            assert state in ("CANCELING", "CANCELLED")
            final = wait_status(merchant, t["id"], "canceled")
        else:
            assert results["cancel"] == 409 and results["tap"] == 200
            assert state == "SUCCESS"
            final = wait_status(merchant, t["id"], "succeeded")
        outcomes.append(final["status"])
        types = event_types(merchant, t["id"])
        assert types.count("transfer.succeeded") + types.count("transfer.canceled") == 1
    ledger_ok(stack)
    assert set(outcomes) <= {"succeeded", "canceled"}
