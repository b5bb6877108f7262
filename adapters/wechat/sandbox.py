"""A faithful WeChat Pay APIv3 transfer-bills simulator (aiohttp), used by tests and load runs.

It speaks the real wire protocol: it verifies each request's ``Authorization`` signature over
the exact body bytes with the merchant public key, signs every answer with the platform
private key (public-key mode, ``Wechatpay-Serial: PUB_KEY_ID_…``), dedupes on
``out_bill_no``, and delivers ``MCHTRANSFER.BILL.FINISHED`` callbacks encrypted with
AEAD_AES_256_GCM under the APIv3 key, resending until the receiver answers 200/204.

Payee openids choose deterministic behaviours (:mod:`paymux.channels.sandbox_rules`).
WeChat has no bounce state, so ``return`` is modelled as SUCCESS followed, after
``delay_seconds``, by FAIL (fail_reason ``OTHER_FAIL_REASON_TYPE``) and a second callback.

User confirmation (the upgraded API's 用户确认模式): with ``--confirmation required`` (the
default, as on the real channel) a bill that is not refused outright answers
``WAIT_USER_CONFIRM`` with a ``package_info``; the payee's tap is played by
``POST /__sandbox/transfer-bills/{out_bill_no}/confirm`` (then the openid's behaviour runs)
or ``…/reject`` (FAIL). ``--confirmation preauthorized`` models 免确认收款授权: no step. An
openid containing ``confirm`` or ``preauth`` forces one mode whatever the flag says. A bill
left unconfirmed for ``--confirmation-expiry-seconds`` is closed (FAIL ``OVERDUE_CLOSE``);
``POST /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}/cancel`` cancels
it before confirmation (CANCELING, then CANCELLED with its callback).

Run: ``python -m paymux_wechat.sandbox --port 8002 --data-dir var/sandbox/wechat``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import re
import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from paymux.channels.sandbox_rules import Behaviour, behaviour_for

from . import mapping
from .keys import DEFAULT_APPID, DEFAULT_MCHID, SandboxKeys, ensure_keys
from .sandbox_statements import WechatStatements, install_routes
from .signing import (
    HEADER_SERIAL,
    MAX_CLOCK_SKEW_SECONDS,
    aead_encrypt,
    load_private_key,
    load_public_key,
    oaep_decrypt,
    parse_authorization,
    signature_headers,
    verify_request,
)

log = logging.getLogger(__name__)

# WeChat's documented resend intervals after the first attempt (about 24 h in total).
WECHAT_NOTIFY_SCHEDULE: tuple[float, ...] = (
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
)  # fmt: skip
FAIL_REASON_PAYEE = "PAYEE_ACCOUNT_ABNORMAL"
FAIL_REASON_RETURN = "OTHER_FAIL_REASON_TYPE"
# GUESS: WeChat closes a bill left unconfirmed for 24 h; we model it as FAIL OVERDUE_CLOSE
# (the documented fail_reason "转账关闭").
FAIL_REASON_EXPIRED = "OVERDUE_CLOSE"
FAIL_REASON_REJECTED = "USER_REJECTED"  # GUESS: WeChat documents no reason for a refusal
CONFIRMATION_EXPIRY_SECONDS = 24 * 3600.0  # GUESS: see FAIL_REASON_EXPIRED
CONFIRMATION_MODES = ("required", "preauthorized")
NOT_CANCELABLE_MESSAGE = "当前转账单状态不支持撤销"  # GUESS: wording of the refusal
DUPLICATE_MESSAGE = "商户单号(out_bill_no)重复，且与原转账单的请求参数不一致"
RESOURCE_ORIGINAL_TYPE = "mch_payment"
SHANGHAI = ZoneInfo("Asia/Shanghai")

_OUT_BILL_NO = re.compile(r"^[0-9A-Za-z]{5,32}$")
_ALPHANUMERIC = string.ascii_letters + string.digits


@dataclass
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 8002
    data_dir: Path = Path("var/sandbox/wechat")
    mchid: str = DEFAULT_MCHID
    appid: str = DEFAULT_APPID
    latency_ms: int = 0
    fault_rate: float = 0.0  # fraction of API calls answered 500 SYSTEM_ERROR, no bill made
    delay_seconds: float = 2.0
    hang_seconds: float = 30.0
    notify_schedule: tuple[float, ...] = WECHAT_NOTIFY_SCHEDULE
    notify_timeout_seconds: float = 5.0
    seed: int | None = None
    tamper_response_signature: bool = False
    tamper_notification_signature: bool = False
    wrong_apiv3_key_for_notifications: bool = False
    confirmation: str = "required"  # or "preauthorized" (免确认收款授权)
    confirmation_expiry_seconds: float = CONFIRMATION_EXPIRY_SECONDS


def needs_confirmation(openid: str, mode: str) -> bool:
    """Whether a bill to ``openid`` waits for the payee: the openid's keyword wins."""
    lowered = openid.lower()
    if "preauth" in lowered:
        return False
    if "confirm" in lowered:
        return True
    return mode != "preauthorized"


@dataclass
class _Event:
    """One terminal-state callback; resends keep its id and content."""

    id: str
    create_time: str
    resource: dict[str, Any]


@dataclass
class Bill:
    out_bill_no: str
    transfer_bill_no: str
    appid: str
    openid: str
    transfer_amount: int
    transfer_remark: str
    transfer_scene_id: str
    notify_url: str | None
    fingerprint: str
    behaviour: Behaviour
    state: str
    create_time: str
    update_time: str
    fail_reason: str | None = None
    package_info: str | None = None  # while WAIT_USER_CONFIRM
    notifications_sent: int = 0
    notification_acked: bool = False
    event: _Event | None = None
    delivery: asyncio.Task[None] | None = field(default=None, repr=False)

    def transfer_answer(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "out_bill_no": self.out_bill_no,
            "transfer_bill_no": self.transfer_bill_no,
            "create_time": self.create_time,
            "state": self.state,
        }
        if self.fail_reason:
            answer["fail_reason"] = self.fail_reason
        if self.state == "WAIT_USER_CONFIRM" and self.package_info:
            answer["package_info"] = self.package_info
        return answer

    def query_answer(self, mchid: str) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "mch_id": mchid,
            "out_bill_no": self.out_bill_no,
            "transfer_bill_no": self.transfer_bill_no,
            "appid": self.appid,
            "state": self.state,
            "transfer_amount": self.transfer_amount,
            "transfer_remark": self.transfer_remark,
            "openid": self.openid,
            "create_time": self.create_time,
            "update_time": self.update_time,
        }
        if self.fail_reason:
            answer["fail_reason"] = self.fail_reason
        return answer

    def summary(self) -> dict[str, Any]:
        return {
            "out_bill_no": self.out_bill_no,
            "transfer_bill_no": self.transfer_bill_no,
            "state": self.state,
            "fail_reason": self.fail_reason,
            "package_info": self.package_info,
            "transfer_amount": self.transfer_amount,
            "openid": self.openid,
            "notify_url": self.notify_url,
            "notifications_sent": self.notifications_sent,
            "notification_acked": self.notification_acked,
        }


class _Rejected(Exception):  # an API error answer, raised to unwind validation
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class SandboxState:
    """Everything one sandbox app holds: keys, bills, background tasks."""

    def __init__(self, config: SandboxConfig, keys: SandboxKeys) -> None:
        self.config = config
        self.keys = keys
        self.merchant_public_key = load_public_key(keys.merchant_public_key_file)
        self.platform_private_key = load_private_key(keys.platform_private_key_file)
        self.apiv3_key = keys.read_apiv3_key()
        self.rng = random.Random(config.seed)
        self.bills: dict[str, Bill] = {}
        self.busy_refused: set[str] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.session: aiohttp.ClientSession | None = None
        self._bill_counter = 0
        # Bills persist on disk; statements and drift controls live in their own module.
        self.statements = WechatStatements(self)
        self.statements.restore(Bill)
        self._bill_counter = len(self.bills)

    # --- answers --------------------------------------------------------------------------

    def signed(self, status: int, payload: Mapping[str, Any]) -> web.Response:
        body = _dumps(payload)
        signed_over = body + b" " if self.config.tamper_response_signature else body
        headers = signature_headers(
            self.platform_private_key, serial=self.keys.platform_public_key_id, body=signed_over
        )
        headers["Content-Type"] = "application/json"
        return web.Response(status=status, body=body, headers=headers)

    def error(self, status: int, code: str, message: str) -> web.Response:
        return self.signed(status, {"code": code, "message": message})

    # --- background work ------------------------------------------------------------------

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def new_bill_no(self) -> str:
        self._bill_counter += 1
        day = datetime.now(SHANGHAI).strftime("%Y%m%d")
        return f"1330{self.config.mchid[:10]:0>10}{day}{self._bill_counter:018d}"

    def set_state(self, bill: Bill, state: str, fail_reason: str | None = None) -> None:
        bill.state = state
        bill.fail_reason = fail_reason
        bill.update_time = _now_text()
        self.statements.changed(bill)
        if state in mapping.TERMINAL_STATES:
            self.finish(bill)

    def finish(self, bill: Bill) -> None:
        """A terminal state: start delivering its callback (replacing an older one)."""
        resource: dict[str, Any] = {
            "out_bill_no": bill.out_bill_no,
            "transfer_bill_no": bill.transfer_bill_no,
            "state": bill.state,
            "mch_id": self.config.mchid,
            "transfer_amount": bill.transfer_amount,
            "openid": bill.openid,
            "create_time": bill.create_time,
            "update_time": bill.update_time,
        }
        if bill.fail_reason:
            resource["fail_reason"] = bill.fail_reason
        bill.event = _Event(id=_uuid(), create_time=_now_text(), resource=resource)
        bill.notification_acked = False
        if bill.delivery is not None:
            bill.delivery.cancel()
        if bill.notify_url:
            bill.delivery = self.spawn(self.deliver(bill, bill.event))

    def schedule(
        self, delay: float, bill: Bill, state: str, fail_reason: str | None = None
    ) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            self.set_state(bill, state, fail_reason)

        self.spawn(later())

    def pay(self, bill: Bill) -> None:
        """Move the money as the openid's behaviour says (after confirmation, if any)."""
        delay = self.config.delay_seconds
        if bill.behaviour is Behaviour.DELAY:
            if bill.package_info:  # confirmed: the money is on its way
                self.set_state(bill, "TRANSFERING")
            self.schedule(min(0.1, delay / 2), bill, "PROCESSING")
            self.schedule(delay, bill, "SUCCESS")
        else:
            self.set_state(bill, "SUCCESS")
            if bill.behaviour is Behaviour.RETURN:
                self.schedule(delay, bill, "FAIL", FAIL_REASON_RETURN)

    def await_confirmation(self, bill: Bill) -> None:
        bill.package_info = _package_info()
        self.set_state(bill, "WAIT_USER_CONFIRM")

        async def expire() -> None:
            await asyncio.sleep(self.config.confirmation_expiry_seconds)
            if bill.state == "WAIT_USER_CONFIRM":
                self.set_state(bill, "FAIL", FAIL_REASON_EXPIRED)

        self.spawn(expire())

    async def deliver(self, bill: Bill, event: _Event) -> None:
        for wait in (0.0, *self.config.notify_schedule):
            if wait:
                await asyncio.sleep(wait)
            if bill.event is not event or bill.notification_acked:
                return
            if await self.notify_once(bill, event):
                return

    def callback_body(self, event: _Event) -> bytes:
        key = self.apiv3_key
        if self.config.wrong_apiv3_key_for_notifications:
            key = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(32))
        nonce = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(12))
        ciphertext = aead_encrypt(
            key,
            nonce=nonce,
            associated_data=RESOURCE_ORIGINAL_TYPE,
            plaintext=_dumps(event.resource),
        )
        return _dumps(
            {
                "id": event.id,
                "create_time": event.create_time,
                "resource_type": "encrypt-resource",
                "event_type": mapping.EVENT_BILL_FINISHED,
                "summary": "商家转账单据终态通知",
                "resource": {
                    "original_type": RESOURCE_ORIGINAL_TYPE,
                    "algorithm": "AEAD_AES_256_GCM",
                    "ciphertext": ciphertext,
                    "associated_data": RESOURCE_ORIGINAL_TYPE,
                    "nonce": nonce,
                },
            }
        )

    async def notify_once(self, bill: Bill, event: _Event) -> bool:
        """POST one callback; True when the receiver acknowledged it (200/204)."""
        if not bill.notify_url or self.session is None:
            return False
        body = self.callback_body(event)
        signed_over = body + b" " if self.config.tamper_notification_signature else body
        headers = signature_headers(
            self.platform_private_key, serial=self.keys.platform_public_key_id, body=signed_over
        )
        headers["Content-Type"] = "application/json"
        bill.notifications_sent += 1
        try:
            timeout = aiohttp.ClientTimeout(total=self.config.notify_timeout_seconds)
            async with self.session.post(
                bill.notify_url, data=body, headers=headers, timeout=timeout
            ) as response:
                await response.read()
                acked = response.status in (200, 204)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("callback for %s not delivered: %s", bill.out_bill_no, type(exc).__name__)
            return False
        if acked and bill.event is event:
            bill.notification_acked = True
        return acked


STATE_KEY = web.AppKey("wechat_sandbox_state", SandboxState)


# --- request authentication -------------------------------------------------------------


@web.middleware
async def _api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if not request.path.startswith("/v3/"):
        return await handler(request)
    if state.config.latency_ms > 0:
        await asyncio.sleep(state.config.latency_ms / 1000)
    body = await request.read()
    refusal = _authenticate(state, request, body)
    if refusal is not None:
        return state.error(401, "SIGN_ERROR", refusal)
    if state.config.fault_rate > 0 and state.rng.random() < state.config.fault_rate:
        return state.error(500, "SYSTEM_ERROR", "系统错误，请稍后重试")
    return await handler(request)


def _authenticate(state: SandboxState, request: web.Request, body: bytes) -> str | None:
    """None when the request is signed by our merchant; else why not (no secrets)."""
    header = request.headers.get("Authorization")
    if not header:
        return "缺少 Authorization 头"
    try:
        auth = parse_authorization(header)
    except ValueError:
        return "Authorization 头格式错误"
    if auth.mchid != state.config.mchid:
        return "mchid 与签名不匹配"
    if auth.serial_no.upper() != state.keys.merchant_serial_no.upper():
        return "商户证书序列号(serial_no)不正确"
    try:
        skew = abs(time.time() - int(auth.timestamp))
    except ValueError:
        return "timestamp 格式错误"
    if skew > MAX_CLOCK_SKEW_SECONDS:
        return "请求时间戳已过期"
    if not verify_request(
        state.merchant_public_key,
        method=request.method,
        path=request.raw_path,
        body=body,
        auth=auth,
    ):
        return "错误的签名，验签失败"
    return None


# --- API handlers -----------------------------------------------------------------------


async def _create_bill(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    try:
        params = _validate_transfer(state, request, await request.read())
    except _Rejected as exc:
        return state.error(exc.status, exc.code, exc.message)
    out_bill_no: str = params["out_bill_no"]
    fingerprint = _dumps(params).decode("utf-8")
    existing = state.bills.get(out_bill_no)
    if existing is not None:
        if existing.fingerprint == fingerprint:
            return state.signed(200, existing.transfer_answer())
        return state.error(400, "INVALID_REQUEST", DUPLICATE_MESSAGE)
    behaviour = behaviour_for(params["openid"])
    if behaviour is Behaviour.BUSY and out_bill_no not in state.busy_refused:
        state.busy_refused.add(out_bill_no)
        return state.error(429, "FREQUENCY_LIMITED", "请求频率超限，请稍后重试")
    now = _now_text()
    bill = Bill(
        out_bill_no=out_bill_no,
        transfer_bill_no=state.new_bill_no(),
        appid=params["appid"],
        openid=params["openid"],
        transfer_amount=params["transfer_amount"],
        transfer_remark=params["transfer_remark"],
        transfer_scene_id=params["transfer_scene_id"],
        notify_url=params.get("notify_url"),
        fingerprint=fingerprint,
        behaviour=behaviour,
        state="ACCEPTED",
        create_time=now,
        update_time=now,
    )
    state.bills[out_bill_no] = bill
    state.statements.changed(bill)
    if behaviour is Behaviour.FAIL:
        state.set_state(bill, "FAIL", FAIL_REASON_PAYEE)
    elif needs_confirmation(bill.openid, state.config.confirmation):
        state.await_confirmation(bill)
    else:
        state.pay(bill)
    if behaviour is Behaviour.ERROR:
        return state.error(500, "SYSTEM_ERROR", "系统错误，请稍后重试")
    answer = bill.transfer_answer()
    if behaviour is Behaviour.TIMEOUT:
        await asyncio.sleep(state.config.hang_seconds)
    return state.signed(200, answer)


async def _query_by_out_bill_no(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    bill = state.bills.get(request.match_info["out_bill_no"])
    if bill is None:
        return state.error(404, "NOT_FOUND", "记录不存在")
    return state.signed(200, bill.query_answer(state.config.mchid))


async def _query_by_transfer_bill_no(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    wanted = request.match_info["transfer_bill_no"]
    for bill in state.bills.values():
        if bill.transfer_bill_no == wanted:
            return state.signed(200, bill.query_answer(state.config.mchid))
    return state.error(404, "NOT_FOUND", "记录不存在")


async def _cancel_bill(request: web.Request) -> web.StreamResponse:
    """撤销转账: only before the payee confirmed; CANCELING now, CANCELLED shortly after."""
    state = request.app[STATE_KEY]
    bill = state.bills.get(request.match_info["out_bill_no"])
    if bill is None:
        return state.error(404, "NOT_FOUND", "记录不存在")
    if bill.state == "WAIT_USER_CONFIRM":
        state.set_state(bill, "CANCELING")
        state.schedule(min(0.2, state.config.delay_seconds), bill, "CANCELLED")
    elif bill.state not in ("CANCELING", "CANCELLED"):  # GUESS: a repeat answers the state
        return state.error(400, "INVALID_REQUEST", NOT_CANCELABLE_MESSAGE)
    return state.signed(
        200,
        {
            "out_bill_no": bill.out_bill_no,
            "transfer_bill_no": bill.transfer_bill_no,
            "state": bill.state,
            "update_time": bill.update_time,
        },
    )


async def _payee_decides(request: web.Request) -> web.StreamResponse:
    """The payee's tap in WeChat: ``confirm`` pays as the openid says, ``reject`` fails."""
    state = request.app[STATE_KEY]
    bill = state.bills.get(request.match_info["out_bill_no"])
    if bill is None:
        return web.json_response({"code": "NOT_FOUND"}, status=404)
    if bill.state != "WAIT_USER_CONFIRM":
        return web.json_response(
            {"code": "NOT_WAITING_FOR_CONFIRMATION", **bill.summary()}, status=409
        )
    if request.match_info["decision"] == "confirm":
        state.pay(bill)
    else:
        state.set_state(bill, "FAIL", FAIL_REASON_REJECTED)
    return web.json_response(bill.summary())


def _validate_transfer(state: SandboxState, request: web.Request, raw: bytes) -> dict[str, Any]:
    """The request's parameters, normalised for dedupe (user_name decrypted)."""
    try:
        body = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise _Rejected(400, "PARAM_ERROR", "请求体不是合法的 JSON") from None
    if not isinstance(body, dict):
        raise _Rejected(400, "PARAM_ERROR", "请求体必须是 JSON 对象")
    params: dict[str, Any] = {}
    for name in ("appid", "out_bill_no", "transfer_scene_id", "openid", "transfer_remark"):
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise _Rejected(
                400, "PARAM_ERROR", f"输入源“/body/{name}”映射到字段“{name}”必填性规则校验失败"
            )
        params[name] = value
    if not _OUT_BILL_NO.match(params["out_bill_no"]):
        raise _Rejected(400, "PARAM_ERROR", "out_bill_no 只能由 5-32 位数字、大小写字母组成")
    if len(params["transfer_remark"]) > mapping.MAX_REMARK_CHARS:
        raise _Rejected(400, "PARAM_ERROR", "transfer_remark 长度不能超过 32 个字符")
    amount = body.get("transfer_amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise _Rejected(400, "PARAM_ERROR", "transfer_amount 必须是正整数(单位：分)")
    params["transfer_amount"] = amount
    if params["appid"] != state.config.appid:
        raise _Rejected(400, "INVALID_REQUEST", "appid 与 mchid 不匹配")
    for name in ("notify_url", "user_recv_perception"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise _Rejected(400, "PARAM_ERROR", f"{name} 必须是字符串")
            params[name] = value
    params["transfer_scene_report_infos"] = _validate_report_infos(
        params["transfer_scene_id"], body.get("transfer_scene_report_infos")
    )
    user_name = body.get("user_name")
    if user_name is not None:
        params["user_name"] = _decrypt_user_name(state, request, user_name, amount)
    elif amount >= mapping.USER_NAME_REQUIRED_FEN:
        raise _Rejected(400, "PARAM_ERROR", "转账金额 >= 2000 元时 user_name 必填")
    return params


def _validate_report_infos(scene_id: str, infos: object) -> list[dict[str, str]]:
    if infos is None:
        infos = []
    if not isinstance(infos, list):
        raise _Rejected(400, "PARAM_ERROR", "transfer_scene_report_infos 必须是数组")
    cleaned: list[dict[str, str]] = []
    for info in infos:
        if not isinstance(info, dict):
            raise _Rejected(400, "PARAM_ERROR", "transfer_scene_report_infos 元素必须是对象")
        info_type, content = info.get("info_type"), info.get("info_content")
        if not isinstance(info_type, str) or not isinstance(content, str) or not content:
            raise _Rejected(400, "PARAM_ERROR", "info_type 与 info_content 必填")
        cleaned.append({"info_type": info_type, "info_content": content})
    present = {info["info_type"] for info in cleaned}
    for required in mapping.SCENE_REPORT_INFO_TYPES.get(scene_id, ()):
        if required not in present:
            raise _Rejected(400, "PARAM_ERROR", f"转账场景 {scene_id} 需报备“{required}”")
    return cleaned


def _decrypt_user_name(
    state: SandboxState, request: web.Request, value: object, amount: int
) -> str:
    if not isinstance(value, str) or not value:
        raise _Rejected(400, "PARAM_ERROR", "user_name 必须是加密后的字符串")
    if amount < mapping.USER_NAME_MIN_FEN:
        raise _Rejected(400, "PARAM_ERROR", "转账金额小于 0.3 元时不允许填写 user_name")
    if request.headers.get(HEADER_SERIAL) != state.keys.platform_public_key_id:
        raise _Rejected(400, "PARAM_ERROR", "Wechatpay-Serial 与加密敏感信息所用的公钥不匹配")
    try:
        return oaep_decrypt(state.platform_private_key, value)
    except ValueError:
        raise _Rejected(400, "PARAM_ERROR", "user_name 解密失败") from None


# --- test-support endpoints (JSON, never secrets) -----------------------------------------


async def _list_orders(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    return web.json_response([bill.summary() for bill in state.bills.values()])


async def _get_order(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    bill = state.bills.get(request.match_info["out_bill_no"])
    if bill is None:
        return web.json_response({"code": "NOT_FOUND"}, status=404)
    return web.json_response(bill.summary())


async def _renotify(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    bill = state.bills.get(request.match_info["out_bill_no"])
    if bill is None:
        return web.json_response({"code": "NOT_FOUND"}, status=404)
    if bill.event is None or not bill.notify_url:
        return web.json_response({"code": "NOTHING_TO_NOTIFY"}, status=409)
    acked = await state.notify_once(bill, bill.event)
    return web.json_response({"acked": acked, **bill.summary()})


_CONFIG_FLOATS = ("fault_rate", "delay_seconds", "hang_seconds", "confirmation_expiry_seconds")
_CONFIG_FLAGS = (
    "tamper_response_signature",
    "tamper_notification_signature",
    "wrong_apiv3_key_for_notifications",
)


async def _update_config(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    try:
        changes = await request.json()
    except ValueError:
        return web.json_response({"code": "PARAM_ERROR", "message": "not JSON"}, status=400)
    if not isinstance(changes, dict):
        return web.json_response(
            {"code": "PARAM_ERROR", "message": "expected an object"}, status=400
        )
    config = state.config
    for name, value in changes.items():
        if name == "latency_ms" and isinstance(value, int) and not isinstance(value, bool):
            config.latency_ms = max(0, value)
        elif (
            name in _CONFIG_FLOATS
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            setattr(config, name, max(0.0, float(value)))
        elif name in _CONFIG_FLAGS and isinstance(value, bool):
            setattr(config, name, value)
        elif name == "confirmation" and value in CONFIRMATION_MODES:
            config.confirmation = value
        else:
            return web.json_response(
                {"code": "PARAM_ERROR", "message": f"unsupported setting {name}"}, status=400
            )
    return web.json_response(_public_config(state))


async def _health(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    return web.json_response({"status": "ok", **_public_config(state)})


def _public_config(state: SandboxState) -> dict[str, Any]:
    config = state.config
    return {
        "mchid": config.mchid,
        "appid": config.appid,
        "merchant_serial_no": state.keys.merchant_serial_no,
        "platform_public_key_id": state.keys.platform_public_key_id,
        "latency_ms": config.latency_ms,
        "fault_rate": config.fault_rate,
        "delay_seconds": config.delay_seconds,
        "hang_seconds": config.hang_seconds,
        "notify_schedule": list(config.notify_schedule),
        "confirmation": config.confirmation,
        "confirmation_expiry_seconds": config.confirmation_expiry_seconds,
        **{flag: getattr(config, flag) for flag in _CONFIG_FLAGS},
    }


# --- app --------------------------------------------------------------------------------


def build_app(config: SandboxConfig) -> web.Application:
    keys = ensure_keys(Path(config.data_dir), config.mchid, config.appid)
    # The data directory's identity wins, so clients configured from it keep working.
    config.mchid, config.appid = keys.mchid, keys.appid
    state = SandboxState(config, keys)
    app = web.Application(middlewares=[_api_middleware])
    app[STATE_KEY] = state
    app.router.add_post(mapping.TRANSFER_PATH, _create_bill)
    app.router.add_get(mapping.QUERY_PATH_PREFIX + "{out_bill_no}", _query_by_out_bill_no)
    app.router.add_get(
        "/v3/fund-app/mch-transfer/transfer-bills/transfer-bill-no/{transfer_bill_no}",
        _query_by_transfer_bill_no,
    )
    app.router.add_post(mapping.cancel_path("{out_bill_no}"), _cancel_bill)
    app.router.add_post(
        "/__sandbox/transfer-bills/{out_bill_no}/{decision:confirm|reject}", _payee_decides
    )
    app.router.add_get("/__sandbox/orders", _list_orders)
    app.router.add_get("/__sandbox/orders/{out_bill_no}", _get_order)
    app.router.add_post("/__sandbox/orders/{out_bill_no}/notify", _renotify)
    app.router.add_post("/__sandbox/config", _update_config)
    app.router.add_get("/__sandbox/health", _health)
    install_routes(app, state.statements, Bill)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app


async def _start(app: web.Application) -> None:
    app[STATE_KEY].session = aiohttp.ClientSession()


async def _stop(app: web.Application) -> None:
    state = app[STATE_KEY]
    for task in list(state.tasks):
        task.cancel()
    for task in list(state.tasks):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if state.session is not None:
        await state.session.close()


def _parse_schedule(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("expected comma-separated seconds") from None
    if any(value < 0 for value in values):
        raise argparse.ArgumentTypeError("intervals must be >= 0")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m paymux_wechat.sandbox", description="WeChat Pay APIv3 sandbox"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--data-dir", type=Path, default=Path("var/sandbox/wechat"))
    parser.add_argument("--mchid", default=DEFAULT_MCHID)
    parser.add_argument("--appid", default=DEFAULT_APPID)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--delay-seconds", type=float, default=2.0)
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument(
        "--notify-schedule",
        type=_parse_schedule,
        default=WECHAT_NOTIFY_SCHEDULE,
        help='seconds between callback resends, e.g. "0.5,1,2" (default: WeChat\'s)',
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--confirmation",
        choices=CONFIRMATION_MODES,
        default="required",
        help="required: payees confirm in WeChat (WAIT_USER_CONFIRM); preauthorized: no step",
    )
    parser.add_argument(
        "--confirmation-expiry-seconds",
        type=float,
        default=CONFIRMATION_EXPIRY_SECONDS,
        help="how long an unconfirmed bill lives before it is closed (default 24 h)",
    )
    args = parser.parse_args(argv)
    config = SandboxConfig(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        mchid=args.mchid,
        appid=args.appid,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        delay_seconds=args.delay_seconds,
        hang_seconds=args.hang_seconds,
        notify_schedule=args.notify_schedule,
        seed=args.seed,
        confirmation=args.confirmation,
        confirmation_expiry_seconds=args.confirmation_expiry_seconds,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    app = build_app(config)
    keys = app[STATE_KEY].keys
    print(f"wechat sandbox on http://{config.host}:{config.port}", flush=True)
    for label, value in (
        ("mchid", keys.mchid),
        ("appid", keys.appid),
        ("merchant_private_key_file", keys.merchant_private_key_file),
        ("merchant_serial_no", keys.merchant_serial_no),
        ("platform_public_key_file", keys.platform_public_key_file),
        ("platform_public_key_id", keys.platform_public_key_id),
        ("apiv3_key_file", keys.apiv3_key_file),
    ):
        print(f"  {label}: {value}", flush=True)
    web.run_app(app, host=config.host, port=config.port, print=None, handle_signals=True)


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _now_text() -> str:
    return datetime.now(SHANGHAI).isoformat(timespec="seconds")


def _uuid() -> str:
    return secrets.token_hex(16)


def _package_info() -> str:
    """An opaque token like WeChat's, for wx.requestMerchantTransfer's ``package``."""
    return "ABBQO+oYAAABAAAAAAB" + secrets.token_urlsafe(48)


if __name__ == "__main__":
    main()
