"""Channel notifications and unseen outcomes, each path proven on a stack where it is the
only one that can move the transfer.

- `sync_only`: notifications cannot reach the gateway (its public URL is a dead port), so
  only the sync loop can resolve a processing transfer.
- `notify_only`: the sync loop is off, so only the channel's notification can.
- `isolated`: neither; the test itself plays the channel, signing notifications with the
  sandbox's own channel key, to send forged, replayed, mismatched and out-of-order ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from paymux_alipay import signing

from paymux.devstack import Stack, free_port
from tests.e2e.conftest import Api, make_stack, new_merchant
from tests.e2e.test_e2e_transfers import body, payee, sandbox_orders, wait_status


def _stack(
    tmp_factory: pytest.TempPathFactory, redis_url: str, name: str, **env: str
) -> Iterator[Stack]:
    stack = make_stack(tmp_factory.mktemp(name), redis_url, **env)
    try:
        stack.start_sandboxes()
        stack.start_gateway()
        stack.wait_gateway()
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="module")
def sync_only(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    yield from _stack(
        tmp_path_factory,
        redis_url,
        "sync-only",
        PAYMUX_PUBLIC_URL=f"http://127.0.0.1:{free_port()}",
    )


@pytest.fixture(scope="module")
def notify_only(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    yield from _stack(tmp_path_factory, redis_url, "notify-only", PAYMUX_SYNC_ENABLED="false")


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    yield from _stack(
        tmp_path_factory,
        redis_url,
        "isolated",
        PAYMUX_SYNC_ENABLED="false",
        PAYMUX_PUBLIC_URL=f"http://127.0.0.1:{free_port()}",
    )


def sandbox_config(stack: Stack, channel: str, **values: Any) -> None:
    resp = httpx.post(f"{stack.sandbox_url(channel)}/__sandbox/config", json=values)
    assert resp.status_code == 200, resp.text


def stays(api: Api, transfer_id: str, status: str, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert api.get(f"/v1/transfers/{transfer_id}").json()["status"] == status
        time.sleep(0.2)


def ledger_check(stack: Stack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paymux", "ledger", "check"],
        env={"PAYMUX_DATABASE_URL": stack.database_url or "", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- the sync loop alone -------------------------------------------------------------


def test_delayed_transfer_resolved_by_sync_loop(sync_only: Stack) -> None:
    api = new_merchant(sync_only)
    for p in (payee("alipay_account", "delay@example.com"), payee("wechat_openid", "o_delay_s")):
        t = api.transfer(body(p)).json()
        assert t["status"] == "processing", t
        wait_status(api, t["id"], "succeeded")


def test_unseen_outcome_resolved_by_query(sync_only: Stack) -> None:
    api = new_merchant(sync_only)
    for p in (payee("alipay_account", "timeout@example.com"), payee("wechat_openid", "o_error")):
        t = api.transfer(body(p)).json()
        assert t["status"] == "processing", t
        wait_status(api, t["id"], "succeeded", timeout=30)


def test_tampered_response_signature_is_never_success(sync_only: Stack) -> None:
    api = new_merchant(sync_only)
    before = api.get("/v1/balance").json()
    for channel, p in (
        ("alipay", payee("alipay_account", "tamper@example.com")),
        ("wechat", payee("wechat_openid", "o_tamper")),
    ):
        sandbox_config(sync_only, channel, tamper_response_signature=True)
        try:
            t = api.transfer(body(p)).json()
            assert t["status"] == "processing", t  # the channel did pay, but we cannot know
            stays(api, t["id"], "processing", 1.5)  # tampered query answers change nothing
        finally:
            sandbox_config(sync_only, channel, tamper_response_signature=False)
        wait_status(api, t["id"], "succeeded")
    after = api.get("/v1/balance").json()
    assert after["held"] == before["held"]


# --- the notification alone ------------------------------------------------------------


def test_lost_sync_response_reaches_succeeded_by_notification(notify_only: Stack) -> None:
    api = new_merchant(notify_only)
    for p in (
        payee("alipay_account", "timeout-n@example.com"),
        payee("wechat_openid", "o_timeout_n"),
    ):
        t = api.transfer(body(p)).json()
        assert t["status"] in ("processing", "succeeded"), t
        wait_status(api, t["id"], "succeeded", timeout=20)


def test_tampered_notifications_and_wrong_apiv3_key_change_nothing(notify_only: Stack) -> None:
    api = new_merchant(notify_only)
    cases = [
        (
            "alipay",
            payee("alipay_account", "delay-t@example.com"),
            {"tamper_notification_signature": True},
        ),
        ("wechat", payee("wechat_openid", "o_delay_t"), {"tamper_notification_signature": True}),
        (
            "wechat",
            payee("wechat_openid", "o_delay_k"),
            {"wrong_apiv3_key_for_notifications": True},
        ),
    ]
    for channel, p, bad in cases:
        sandbox_config(notify_only, channel, **bad)
        try:
            t = api.transfer(body(p)).json()
            assert t["status"] == "processing"
            stays(api, t["id"], "processing", 3.0)  # the sandbox succeeded after 1 s
        finally:
            sandbox_config(notify_only, channel, **{k: False for k in bad})
        resend = httpx.post(
            f"{notify_only.sandbox_url(channel)}/__sandbox/orders/{t['channel_reference']}/notify"
        )
        assert resend.status_code < 300, resend.text
        wait_status(api, t["id"], "succeeded")
    assert ledger_check(notify_only).returncode == 0


# --- the test plays the channel ---------------------------------------------------------


class AlipayNotifier:
    """Signs notifications with the sandbox's Alipay key, as Alipay itself would."""

    def __init__(self, stack: Stack) -> None:
        keys = stack.data_dir / "sandbox" / "alipay"
        self.key = signing.load_private_key_file(keys / "alipay_private_key.pem")
        self.app_id = (keys / "app_id.txt").read_text().strip()
        self.url = f"{stack.gateway_url}/callbacks/alipay"

    def form(
        self,
        transfer: dict[str, Any],
        status: str,
        *,
        amount: str | None = None,
        app_id: str | None = None,
    ) -> dict[str, str]:
        biz = {
            "out_biz_no": transfer["channel_reference"],
            "order_id": transfer.get("channel_order_id") or "20260000000000000001",
            "status": status,
            "trans_amount": amount or f"{transfer['amount'] / 100:.2f}".replace(",", ""),
        }
        form = {
            "notify_id": uuid.uuid4().hex,
            "msg_method": "alipay.fund.trans.order.changed",
            "app_id": app_id or self.app_id,
            "version": "1.1",
            "utc_timestamp": str(int(time.time() * 1000)),
            "charset": "utf-8",
            "sign_type": "RSA2",
            "biz_content": json.dumps(biz, separators=(",", ":")),
        }
        form["sign"] = signing.sign_notification(form, self.key)
        return form

    def post(self, form: dict[str, str]) -> httpx.Response:
        return httpx.post(self.url, data=form)


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def test_forged_replayed_mismatched_and_out_of_order(isolated: Stack) -> None:
    api = new_merchant(isolated)
    notifier = AlipayNotifier(isolated)
    t = api.transfer(body(payee("alipay_account", "delay-o@example.com"), amount=2345)).json()
    assert t["status"] == "processing"
    held = api.get("/v1/balance").json()["held"]
    assert held > 0

    # Forged: signed with a key that is not Alipay's.
    forged = notifier.form(t, "SUCCESS", amount=_yuan(2345))
    forged["sign"] = signing.sign_notification(
        forged, rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    r = notifier.post(forged)
    assert r.status_code != 200 or r.text != "success"
    # Tampered: a valid signature over other content.
    tampered = notifier.form(t, "FAIL", amount=_yuan(2345))
    tampered["biz_content"] = tampered["biz_content"].replace("FAIL", "SUCCESS")
    assert notifier.post(tampered).text != "success"
    # Mismatch: genuinely signed, but the amount or our app id is wrong -> refused, alerted.
    assert notifier.post(notifier.form(t, "SUCCESS", amount="9999.00")).text != "success"
    assert (
        notifier.post(
            notifier.form(t, "SUCCESS", amount=_yuan(2345), app_id="2021999999999999")
        ).text
        != "success"
    )
    other_order = notifier.form(
        {**t, "channel_order_id": "20269999999999999999"}, "SUCCESS", amount=_yuan(2345)
    )
    assert notifier.post(other_order).text != "success"
    stays(api, t["id"], "processing", 0.5)
    assert api.get("/v1/balance").json()["held"] == held

    # Out of order: the bounce (REFUND) arrives before the success.
    refund = notifier.form(t, "REFUND", amount=_yuan(2345))
    assert notifier.post(refund).text == "success"
    assert api.get(f"/v1/transfers/{t['id']}").json()["status"] == "returned"
    # The late SUCCESS, a late FAIL and a replay of the REFUND are all no-ops.
    for late in (
        notifier.form(t, "SUCCESS", amount=_yuan(2345)),
        notifier.form(t, "FAIL", amount=_yuan(2345)),
        refund,
    ):
        assert notifier.post(late).text == "success"
        assert api.get(f"/v1/transfers/{t['id']}").json()["status"] == "returned"

    txns = api.get("/v1/balance_transactions").json()["data"]
    kinds = sorted(x["type"] for x in txns if x["source"] == t["id"])
    assert kinds == ["hold", "reverse", "settle"]  # each exactly once
    balance = api.get("/v1/balance").json()
    assert balance["held"] == 0
    fee = t["fee"]
    topped_up = 10_000_000
    assert balance["available"] == topped_up - fee  # amount came back, the fee did not
    check = ledger_check(isolated)
    assert check.returncode == 0, check.stdout + check.stderr


def test_notification_for_unknown_reference_is_refused(isolated: Stack) -> None:
    notifier = AlipayNotifier(isolated)
    fake = {"channel_reference": "PMX00000000000000000000000000", "amount": 100}
    assert notifier.post(notifier.form(fake, "SUCCESS", amount="1.00")).text != "success"
    assert httpx.post(f"{isolated.gateway_url}/callbacks/nochannel", data={}).status_code == 404


def test_send_that_never_landed_is_resent_under_the_same_reference(sync_only: Stack) -> None:
    """The channel answered a system error and created no order: the sync loop's query finds
    nothing, so it sends again under the same reference, and exactly one order exists."""
    api = new_merchant(sync_only)
    for channel, p in (
        ("alipay", payee("alipay_account", "lost@example.com")),
        ("wechat", payee("wechat_openid", "o_lost_1")),
    ):
        sandbox_config(sync_only, channel, fault_rate=1.0)
        try:
            t = api.transfer(body(p)).json()
            assert t["status"] == "processing", t
            assert sandbox_orders(sync_only, channel, t["channel_reference"]) == []
        finally:
            sandbox_config(sync_only, channel, fault_rate=0.0)
        wait_status(api, t["id"], "succeeded")
        assert len(sandbox_orders(sync_only, channel, t["channel_reference"])) == 1
    assert ledger_check(sync_only).returncode == 0
