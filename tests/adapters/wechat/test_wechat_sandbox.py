"""WechatChannel against the real sandbox over HTTP (in-process aiohttp, free ports)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from paymux_wechat.channel import WechatChannel
from paymux_wechat.keys import SandboxKeys, ensure_keys
from paymux_wechat.mapping import TRANSFER_PATH
from paymux_wechat.sandbox import STATE_KEY, SandboxState, _parse_schedule
from paymux_wechat.signing import build_authorization, load_private_key, oaep_encrypt
from paymux_wechat.signing import load_public_key as load_pub
from wechat_test_support import (
    channel_for,
    fast_config,
    order_for,
    running_receiver,
    running_sandbox,
    wait_until,
)

from paymux.channels.base import InvalidSignature
from paymux.domain.outcomes import Outcome


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SandboxKeys:
    return ensure_keys(tmp_path_factory.mktemp("wechat-sandbox-keys"))


class Env:
    def __init__(self, base_url: str, app: web.Application, channel: WechatChannel) -> None:
        self.base_url = base_url
        self.app = app
        self.channel = channel

    @property
    def state(self) -> SandboxState:
        return self.app[STATE_KEY]

    async def admin(self, method: str, path: str, payload: object = None) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as client:
            return await client.request(method, path, json=payload)


@pytest.fixture
async def env(keys: SandboxKeys) -> AsyncIterator[Env]:
    # The order book persists under the data dir; each test here wants an empty one.
    (keys.data_dir / "orders.jsonl").unlink(missing_ok=True)
    async with running_sandbox(fast_config(keys.data_dir)) as (base_url, app):
        channel = channel_for(keys, base_url)
        try:
            yield Env(base_url, app, channel)
        finally:
            await channel.aclose()


async def test_success_and_query(env: Env) -> None:
    order = order_for("o-happy-user")
    sent = await env.channel.send(order)
    assert sent.outcome is Outcome.SUCCEEDED
    assert sent.channel_order_id
    queried = await env.channel.query(order)
    assert queried.outcome is Outcome.SUCCEEDED
    assert queried.channel_order_id == sent.channel_order_id
    assert queried.raw["transfer_amount"] == order.amount
    listing = (await env.admin("GET", "/__sandbox/orders")).json()
    assert [o["out_bill_no"] for o in listing] == [order.reference]


async def test_fail_behaviour(env: Env) -> None:
    order = order_for("o-fail-user")
    sent = await env.channel.send(order)
    assert sent.outcome is Outcome.FAILED
    assert sent.failure_code == "PAYEE_ACCOUNT_ABNORMAL"
    queried = await env.channel.query(order)
    assert queried.outcome is Outcome.FAILED
    assert queried.failure_code == "PAYEE_ACCOUNT_ABNORMAL"


async def test_delay_behaviour(env: Env) -> None:
    order = order_for("o-delay-user")
    sent = await env.channel.send(order)
    assert sent.outcome is Outcome.PROCESSING
    assert sent.raw_status == "ACCEPTED"
    first = await env.channel.query(order)
    assert first.outcome is Outcome.PROCESSING
    await wait_until(lambda: env.state.bills[order.reference].state == "SUCCESS", 3)
    assert (await env.channel.query(order)).outcome is Outcome.SUCCEEDED


async def test_timeout_behaviour(env: Env, keys: SandboxKeys) -> None:
    impatient = channel_for(keys, env.base_url, timeout_seconds=0.3)
    try:
        order = order_for("o-timeout-user")
        started = time.monotonic()
        sent = await impatient.send(order)
        assert time.monotonic() - started < 1.0
        assert sent.outcome is Outcome.PROCESSING
        assert (await impatient.query(order)).outcome is Outcome.SUCCEEDED
    finally:
        await impatient.aclose()


async def test_error_behaviour_then_resend_returns_original(env: Env) -> None:
    order = order_for("o-error-user")
    sent = await env.channel.send(order)
    assert sent.outcome is Outcome.PROCESSING
    assert sent.failure_code == "SYSTEM_ERROR"
    assert (await env.channel.query(order)).outcome is Outcome.SUCCEEDED
    again = await env.channel.send(order)
    assert again.outcome is Outcome.SUCCEEDED
    assert len(env.state.bills) == 1


async def test_busy_behaviour_is_retried_under_same_bill(env: Env) -> None:
    order = order_for("o-busy-user")
    sent = await env.channel.send(order)
    assert sent.outcome is Outcome.SUCCEEDED
    assert order.reference in env.state.busy_refused
    assert list(env.state.bills) == [order.reference]


async def test_busy_without_retries_is_processing_and_creates_nothing(
    env: Env, keys: SandboxKeys
) -> None:
    no_retry = channel_for(keys, env.base_url, retry_attempts=1)
    try:
        order = order_for("o-busy-user")
        assert (await no_retry.send(order)).outcome is Outcome.PROCESSING
        assert env.state.bills == {}
        assert (await no_retry.query(order)).outcome is Outcome.NOT_FOUND
    finally:
        await no_retry.aclose()


async def test_return_behaviour_fails_after_success(env: Env) -> None:
    order = order_for("o-return-user")
    assert (await env.channel.send(order)).outcome is Outcome.SUCCEEDED
    await wait_until(lambda: env.state.bills[order.reference].state == "FAIL", 3)
    queried = await env.channel.query(order)
    assert queried.outcome is Outcome.FAILED
    assert queried.failure_code == "OTHER_FAIL_REASON_TYPE"


async def test_dedupe_same_and_different_params(env: Env) -> None:
    order = order_for("o-dedupe-user", amount=500)
    first = await env.channel.send(order)
    second = await env.channel.send(order)
    assert first.outcome is second.outcome is Outcome.SUCCEEDED
    assert first.channel_order_id == second.channel_order_id
    changed = order_for("o-dedupe-user", amount=501, reference=order.reference)
    conflict = await env.channel.send(changed)
    assert conflict.outcome is Outcome.PROCESSING  # a bill exists: never a failure
    assert conflict.failure_code == "INVALID_REQUEST"
    assert list(env.state.bills) == [order.reference]
    assert env.state.bills[order.reference].transfer_amount == 500


async def test_dedupe_with_encrypted_user_name(env: Env) -> None:
    # OAEP ciphertexts differ per call; dedupe compares the decrypted name.
    order = order_for("o-named-user", amount=5000, payee_name="张三")
    first = await env.channel.send(order)
    second = await env.channel.send(order)
    assert first.channel_order_id == second.channel_order_id
    assert "张三" in env.state.bills[order.reference].fingerprint
    renamed = order_for("o-named-user", amount=5000, payee_name="李四", reference=order.reference)
    assert (await env.channel.send(renamed)).outcome is Outcome.PROCESSING
    assert len(env.state.bills) == 1


async def test_query_unknown_is_not_found(env: Env) -> None:
    assert (await env.channel.query(order_for("o-nobody"))).outcome is Outcome.NOT_FOUND


async def _raw_post(
    env: Env,
    keys: SandboxKeys,
    content: bytes,
    *,
    mchid: str | None = None,
    serial: str | None = None,
    signed_content: bytes | None = None,
    extra_headers: dict[str, str] | None = None,
) -> httpx.Response:
    auth = build_authorization(
        mchid=mchid or keys.mchid,
        serial_no=serial or keys.merchant_serial_no,
        private_key=load_private_key(keys.merchant_private_key_file),
        method="POST",
        path=TRANSFER_PATH,
        body=signed_content if signed_content is not None else content,
    )
    headers = {"Authorization": auth, "Content-Type": "application/json", **(extra_headers or {})}
    async with httpx.AsyncClient(base_url=env.base_url, timeout=5) as client:
        return await client.post(TRANSFER_PATH, content=content, headers=headers)


def _body(keys: SandboxKeys, reference: str, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "appid": keys.appid,
        "out_bill_no": reference,
        "transfer_scene_id": "1000",
        "openid": "o-raw-user",
        "transfer_amount": 100,
        "transfer_remark": "测试",
        "transfer_scene_report_infos": [
            {"info_type": "活动名称", "info_content": "测试"},
            {"info_type": "奖励说明", "info_content": "测试"},
        ],
    }
    body.update(overrides)
    return body


async def test_signature_is_checked_over_exact_bytes_any_spacing(
    env: Env, keys: SandboxKeys
) -> None:
    pretty = json.dumps(_body(keys, "RAWSPACING01"), indent=4, ensure_ascii=True).encode()
    accepted = await _raw_post(env, keys, pretty)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["state"] == "SUCCESS"
    compact = json.dumps(_body(keys, "RAWSPACING02"), separators=(",", ":")).encode()
    refused = await _raw_post(env, keys, compact, signed_content=compact + b" ")
    assert refused.status_code == 401
    assert refused.json()["code"] == "SIGN_ERROR"
    assert "Wechatpay-Signature" in refused.headers
    assert "RAWSPACING02" not in env.state.bills


async def test_wrong_mchid_or_serial_is_sign_error(env: Env, keys: SandboxKeys) -> None:
    content = json.dumps(_body(keys, "RAWIDENT01")).encode()
    assert (await _raw_post(env, keys, content, mchid="1234567890")).status_code == 401
    assert (await _raw_post(env, keys, content, serial="00" * 20)).status_code == 401
    async with httpx.AsyncClient(base_url=env.base_url, timeout=5) as client:
        unsigned = await client.post(TRANSFER_PATH, content=content)
    assert unsigned.status_code == 401
    assert env.state.bills == {}


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"transfer_amount": 0}, "PARAM_ERROR"),
        ({"transfer_amount": 1.5}, "PARAM_ERROR"),
        ({"transfer_amount": "100"}, "PARAM_ERROR"),
        ({"transfer_remark": "x" * 33}, "PARAM_ERROR"),
        ({"out_bill_no": "bad-no!"}, "PARAM_ERROR"),
        ({"openid": ""}, "PARAM_ERROR"),
        ({"transfer_scene_report_infos": []}, "PARAM_ERROR"),
        ({"appid": "wx_not_ours"}, "INVALID_REQUEST"),
        ({"transfer_amount": 200_000}, "PARAM_ERROR"),  # user_name required from 2000 yuan
        ({"user_name": "not-a-ciphertext"}, "PARAM_ERROR"),
    ],
)
async def test_body_validation(
    env: Env, keys: SandboxKeys, overrides: dict[str, object], code: str
) -> None:
    content = json.dumps(_body(keys, "RAWVALID01", **overrides)).encode()
    answer = await _raw_post(env, keys, content)
    assert answer.status_code == 400
    assert answer.json()["code"] == code
    assert answer.json()["message"]
    assert env.state.bills == {}


async def test_user_name_needs_the_serial_header(env: Env, keys: SandboxKeys) -> None:
    name = oaep_encrypt(load_pub(keys.platform_public_key_file), "张三")
    content = json.dumps(_body(keys, "RAWNAME01", user_name=name)).encode()
    assert (await _raw_post(env, keys, content)).status_code == 400
    ok = await _raw_post(
        env, keys, content, extra_headers={"Wechatpay-Serial": keys.platform_public_key_id}
    )
    assert ok.status_code == 200


async def test_callbacks_are_resent_until_acknowledged(env: Env) -> None:
    async with running_receiver([500, 503, 204]) as receiver:
        order = order_for("o-notify-user", notify_url=receiver.url)
        assert (await env.channel.send(order)).outcome is Outcome.SUCCEEDED
        await receiver.wait_for(3)
        await wait_until(lambda: env.state.bills[order.reference].notification_acked, 3)
        notes = [env.channel.parse_notification(h, b) for h, b in receiver.received]
        assert {n.notification_id for n in notes} == {notes[0].notification_id}
        note = notes[-1]
        assert note.reference == order.reference
        assert note.outcome is Outcome.SUCCEEDED
        assert note.amount == order.amount
        assert note.currency == "CNY"
        assert note.channel_account == env.channel.account_id
        summary = (await env.admin("GET", f"/__sandbox/orders/{order.reference}")).json()
        assert summary["notifications_sent"] == 3
        assert summary["notification_acked"] is True
        # Acknowledged: nothing more arrives; a manual resend does.
        assert len(receiver.received) == 3
        resent = await env.admin("POST", f"/__sandbox/orders/{order.reference}/notify")
        assert resent.json()["acked"] is True
        assert len(receiver.received) == 4


async def test_callback_for_failed_bill(env: Env) -> None:
    async with running_receiver() as receiver:
        order = order_for("o-fail-user", notify_url=receiver.url)
        await env.channel.send(order)
        await receiver.wait_for(1)
        headers, body = receiver.received[0]
        note = env.channel.parse_notification({k.lower(): v for k, v in headers.items()}, body)
        assert note.outcome is Outcome.FAILED
        assert note.failure_code == "PAYEE_ACCOUNT_ABNORMAL"


async def test_tampered_callback_and_wrong_apiv3_key_are_rejected(env: Env) -> None:
    async with running_receiver([500, 500, 500, 500, 500, 500]) as receiver:
        await env.admin("POST", "/__sandbox/config", {"tamper_notification_signature": True})
        order = order_for("o-tamper-user", notify_url=receiver.url)
        await env.channel.send(order)
        await receiver.wait_for(1)
        with pytest.raises(InvalidSignature):
            env.channel.parse_notification(*receiver.received[0])
        await env.admin(
            "POST",
            "/__sandbox/config",
            {"tamper_notification_signature": False, "wrong_apiv3_key_for_notifications": True},
        )
        await env.admin("POST", f"/__sandbox/orders/{order.reference}/notify")
        with pytest.raises(InvalidSignature, match="decrypt"):
            env.channel.parse_notification(*receiver.received[-1])


async def test_tampered_response_signature_is_processing(env: Env) -> None:
    await env.admin("POST", "/__sandbox/config", {"tamper_response_signature": True})
    order = order_for("o-happy-user")
    assert (await env.channel.send(order)).outcome is Outcome.PROCESSING
    assert env.state.bills[order.reference].state == "SUCCESS"
    await env.admin("POST", "/__sandbox/config", {"tamper_response_signature": False})
    assert (await env.channel.query(order)).outcome is Outcome.SUCCEEDED


async def test_fault_rate_answers_500_without_bill(env: Env) -> None:
    changed = await env.admin("POST", "/__sandbox/config", {"fault_rate": 1.0})
    assert changed.json()["fault_rate"] == 1.0
    order = order_for("o-happy-user")
    sent = await env.channel.send(order)
    assert sent.outcome is Outcome.PROCESSING
    assert env.state.bills == {}
    await env.admin("POST", "/__sandbox/config", {"fault_rate": 0})
    assert (await env.channel.query(order)).outcome is Outcome.NOT_FOUND


async def test_latency_and_config_validation(env: Env) -> None:
    await env.admin("POST", "/__sandbox/config", {"latency_ms": 200})
    started = time.monotonic()
    await env.channel.query(order_for("o-nobody"))
    assert time.monotonic() - started >= 0.2
    bad = await env.admin("POST", "/__sandbox/config", {"apiv3_key": "x"})
    assert bad.status_code == 400


async def test_test_endpoints_expose_no_secrets(env: Env, keys: SandboxKeys) -> None:
    health = await env.admin("GET", "/__sandbox/health")
    assert health.json()["status"] == "ok"
    assert health.json()["platform_public_key_id"] == keys.platform_public_key_id
    order = order_for("o-happy-user", payee_name="张三", amount=5000)
    await env.channel.send(order)
    for path in ("/__sandbox/health", "/__sandbox/orders", f"/__sandbox/orders/{order.reference}"):
        text = (await env.admin("GET", path)).text
        assert keys.read_apiv3_key() not in text
        assert "PRIVATE KEY" not in text
        assert "张三" not in text
    assert (await env.admin("GET", "/__sandbox/orders/NOPE0001")).status_code == 404


def test_parse_schedule() -> None:
    assert _parse_schedule("0.5,1,2") == (0.5, 1.0, 2.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_runs_as_module_and_stops_on_sigterm(keys: SandboxKeys, tmp_path: Path) -> None:
    port = _free_port()
    env_vars = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paymux_wechat.sandbox",
            "--port",
            str(port),
            "--data-dir",
            str(keys.data_dir),
            "--notify-schedule",
            "0.5,1,2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env_vars,
    )
    try:
        deadline = time.monotonic() + 15
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/__sandbox/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health is not None and health.json()["notify_schedule"] == [0.5, 1.0, 2.0]
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    text = output.decode()
    assert keys.platform_public_key_id in text
    assert str(keys.merchant_private_key_file) in text
    assert keys.read_apiv3_key() not in text
    assert proc.returncode == 0
