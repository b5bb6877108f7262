"""Reconciliation (对账) end to end: the real gateway and both sandboxes over HTTP.

A clean day reconciles with exit 0. Then the books drift without Paymux being told (sandbox
controls, no notification): a silent bounce on a paid Alipay transfer, a silent success on
a WeChat transfer Paymux recorded as failed, an amount change, and a ghost order on each
channel. ``paymux reconcile`` finds exactly those, heals the bounce through the state
machine (returned, money back, events), leaves the success-after-failure critical and the
amount and ghost discrepancies open (exit 1); a second run changes nothing; the ledger
check still passes. The merchant statement balances against the ledger.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from paymux.devstack import Stack
from tests.e2e.conftest import Api, admin_client, make_stack, new_merchant

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def recon_stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    # Sandboxes of its own: their order books (and so their statements) hold only this
    # module's transfers.
    s = make_stack(tmp_path_factory.mktemp("e2e-recon"), redis_url)
    try:
        s.start_sandboxes()
        s.start_gateway()
        s.wait_gateway()
        yield s
    finally:
        s.stop_all()


def today() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d")


def reconcile(stack: Stack, channel: str, day: str) -> tuple[int, dict[str, Any] | None, str]:
    done = subprocess.run(
        [sys.executable, "-m", "paymux", "reconcile", "--channel", channel, "--date", day,
         "--json", "--url", stack.gateway_url],
        env={"PAYMUX_ADMIN_KEY": stack.admin_key, "PATH": "/usr/bin:/bin",
             "PAYMUX_LOG_LEVEL": "warning"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    body = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, body, done.stderr


def ledger_check(stack: Stack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paymux", "ledger", "check"],
        env={"PAYMUX_DATABASE_URL": stack.database_url or "", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def pay(api: Api, payee_type: str, account: str, amount: int, name: str | None = None) -> dict:  # type: ignore[type-arg]
    payee: dict[str, Any] = {"type": payee_type, "account": account}
    if name:
        payee["name"] = name
    resp = api.transfer({"amount": amount, "currency": "CNY", "payee": payee})
    assert resp.status_code in (200, 201), resp.text
    return resp.json()  # type: ignore[no-any-return]


def sandbox(stack: Stack, channel: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(f"{stack.sandbox_url(channel)}{path}", json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def wait_status(api: Api, transfer_id: str, status: str, seconds: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        found = api.get(f"/v1/transfers/{transfer_id}").json()
        if found["status"] == status or time.monotonic() > deadline:
            assert found["status"] == status, found
            return found  # type: ignore[no-any-return]
        time.sleep(0.2)


def open_of(run: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (d["kind"], d["reference"], d["severity"])
        for d in run["discrepancies"]
        if d["state"] == "open"
    }


def test_drift_is_found_healed_where_safe_and_rerun_is_idempotent(recon_stack: Stack) -> None:
    stack, day = recon_stack, today()
    api = new_merchant(stack, funds=5_000_000)
    bounced = pay(api, "alipay_account", "alice@example.com", 10_000)
    card = pay(api, "bank_card", "6222020200001234", 20_000, name="张三")
    clean = pay(api, "alipay_account", "carol@example.com", 3_000)
    refused = pay(api, "wechat_openid", "o-fail-user", 5_000)
    paid_wx = pay(api, "wechat_openid", "o-good-user", 7_000)
    for t in (bounced, card, clean, paid_wx):
        wait_status(api, t["id"], "succeeded")
    wait_status(api, refused["id"], "failed")
    refs = {
        t["id"]: api.get(f"/v1/transfers/{t['id']}").json()
        for t in (bounced, card, clean, refused, paid_wx)
    }
    admin = admin_client(stack)
    reference = {
        tid: admin.get(f"/v1/transfers/{tid}").json().get("channel_reference") for tid in refs
    }
    assert all(reference.values()), reference

    # A clean day: every line matches (fees agree with the cost schedule too).
    for channel in ("alipay", "wechat"):
        code, run, err = reconcile(stack, channel, day)
        assert code == 0, (channel, err, run)
        assert run is not None and run["open"] == 0

    # Drift, silently.
    sandbox(stack, "alipay", f"/__sandbox/orders/{reference[bounced['id']]}/tamper",
            {"status": "REFUND"})  # fmt: skip
    sandbox(stack, "alipay", f"/__sandbox/orders/{reference[card['id']]}/tamper",
            {"amount": 20_001})  # fmt: skip
    sandbox(stack, "wechat", f"/__sandbox/orders/{reference[refused['id']]}/tamper",
            {"status": "SUCCESS"})  # fmt: skip
    ghost_a = sandbox(stack, "alipay", "/__sandbox/ghost_orders", {"amount": 888, "payee": "x@y"})
    ghost_w = sandbox(stack, "wechat", "/__sandbox/ghost_orders", {"amount": 999, "payee": "o-x"})
    balance_before = api.get("/v1/balance").json()

    code, run_a, err = reconcile(stack, "alipay", day)
    assert code == 1, err
    assert run_a is not None
    assert open_of(run_a) == {
        ("amount_mismatch", reference[card["id"]], "normal"),
        ("missing_in_paymux", ghost_a["out_biz_no"], "normal"),
    }
    healed = [d for d in run_a["discrepancies"] if d["kind"] == "status_mismatch"]
    assert [(d["reference"], d["state"]) for d in healed] == [
        (reference[bounced["id"]], "resolved")
    ]
    assert healed[0]["evidence"]["query_outcome"] == "returned"
    assert run_a["statement"]["sha256"] and len(run_a["statement"]["sha256"]) == 64

    # The bounce went through the state machine: returned, amount back, events sent.
    wait_status(api, bounced["id"], "returned", seconds=1)
    balance_after = api.get("/v1/balance").json()
    assert _available(balance_after) == _available(balance_before) + 10_000
    types = [e["type"] for e in api.get("/v1/events", params={"limit": 100}).json()["data"]]
    assert "transfer.returned" in types

    code, run_w, err = reconcile(stack, "wechat", day)
    assert code == 1, err
    assert run_w is not None
    assert open_of(run_w) == {
        ("status_mismatch", reference[refused["id"]], "critical"),
        ("missing_in_paymux", ghost_w["out_bill_no"], "normal"),
    }
    wait_status(api, refused["id"], "failed", seconds=1)  # never moved backwards

    assert ledger_check(stack).returncode == 0

    # A second run changes nothing: same discrepancies, no second healing.
    events_before = len(api.get("/v1/events", params={"limit": 100}).json()["data"])
    for channel, first in (("alipay", run_a), ("wechat", run_w)):
        code, again, _ = reconcile(stack, channel, day)
        assert code == 1 and again is not None
        assert {d["id"] for d in again["discrepancies"]} == {
            d["id"] for d in first["discrepancies"]
        }
        assert open_of(again) == open_of(first)
    assert len(api.get("/v1/events", params={"limit": 100}).json()["data"]) == events_before
    assert _available(api.get("/v1/balance").json()) == _available(balance_after)

    # Operator API: filter, CSV export, resolve with a reason (kept with who and when).
    filtered = admin.get(
        f"/v1/reconciliation/runs/{run_a['id']}", params={"kind": "amount_mismatch"}
    ).json()
    assert [d["kind"] for d in filtered["discrepancies"]] == ["amount_mismatch"]
    csv_text = admin.get(f"/v1/reconciliation/runs/{run_a['id']}", params={"format": "csv"}).text
    assert csv_text.splitlines()[0].startswith("id,kind,state,severity,reference")
    assert ghost_a["out_biz_no"] in csv_text
    target = filtered["discrepancies"][0]["id"]
    resolved = admin.post(
        f"/v1/reconciliation/discrepancies/{target}/resolve",
        json={"reason": "the bank confirmed 200.01; difference booked by finance", "by": "ops-li"},
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["resolved_by"] == "ops-li" and resolved.json()["resolved_at"]
    audit = admin.get("/v1/audit_events", params={"object_id": target}).json()["data"]
    # Newest first: the operator's resolution, then the opening (an operator-facing event).
    assert [a["action"] for a in audit] == [
        "discrepancy.resolve",
        "reconciliation.discrepancy_opened",
    ]
    assert (
        admin.post(
            f"/v1/reconciliation/discrepancies/{target}/resolve", json={"reason": "again"}
        ).status_code
        == 409
    )
    listing = admin.get("/v1/reconciliation/runs", params={"channel": "alipay"}).json()["data"]
    assert run_a["id"] in {r["id"] for r in listing}
    metrics = admin.get("/metrics").text
    gauge = "paymux_reconciliation_open_discrepancies"
    critical = 'channel="wechat",kind="status_mismatch",severity="critical"'
    assert f"{gauge}{{{critical}}} 1.0" in metrics

    # The merchant's own statement balances against the ledger.
    statement = api.get("/v1/statements", params={"date": day}).json()
    assert statement["balanced"] is True
    assert statement["closing_balance"] == _available(api.get("/v1/balance").json())
    assert [m["type"] for m in statement["movements"]][:1] == ["topup"]
    assert "return" in [m["type"] for m in statement["movements"]]


def _available(balance: dict[str, Any]) -> int:
    if "available" in balance:
        return int(balance["available"])
    for row in balance.get("data", balance.get("balances", [])):
        if row.get("currency") == "CNY":
            return int(row["available"])
    raise AssertionError(f"no CNY balance in {balance}")


def test_unreachable_channel_exits_2_and_writes_nothing(recon_stack: Stack) -> None:
    admin = admin_client(recon_stack)
    before = admin.get("/v1/reconciliation/runs").json()["data"]
    resp = httpx.post(
        f"{recon_stack.sandbox_url('wechat')}/__sandbox/config",
        json={"tamper_response_signature": True},
    )
    assert resp.status_code == 200
    try:
        code, run, err = reconcile(recon_stack, "wechat", today())
    finally:
        httpx.post(
            f"{recon_stack.sandbox_url('wechat')}/__sandbox/config",
            json={"tamper_response_signature": False},
        )
    assert code == 2 and run is None
    assert "does not verify" in err or "statement" in err
    assert admin.get("/v1/reconciliation/runs").json()["data"] == before
    code, _, err = reconcile(recon_stack, "alipay", "2024-02-30")
    assert code == 2
