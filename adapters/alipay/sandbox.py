"""A faithful local simulator of the Alipay OpenAPI gateway for fund transfers.

It speaks the real wire protocol (``/gateway.do``, RSA2 signatures both ways, signed
``alipay.fund.trans.order.changed`` notifications with resends) so that Paymux's adapter
and Alipay's own public SDKs work against it unchanged. Magic payee values
(:mod:`paymux.channels.sandbox_rules`) choose deterministic outcomes. Test-support
endpoints live under ``/__sandbox/``; they never expose key material.

Run: ``python -m paymux_alipay.sandbox --port 8001`` (or ``paymux sandbox alipay``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web

from paymux.channels.sandbox_rules import Behaviour, behaviour_for

from .keys import DEFAULT_APP_ID, SandboxKeys, ensure_keys
from .mapping import (
    CODE_BUSINESS_FAILED,
    CODE_CALL_LIMITED,
    CODE_INVALID_ARGUMENTS,
    CODE_MISSING_ARGUMENTS,
    CODE_UNAVAILABLE,
    METHOD_QUERY,
    METHOD_TRANSFER,
    response_node_name,
)
from .sandbox_orders import (
    REFUND_ERROR_CODE,
    REFUND_REASON,
    TERMINAL_STATUSES,
    IdSource,
    SandboxOrder,
    notification_message,
    query_node,
    shanghai_now,
    transfer_node,
    transfer_problem,
)
from .sandbox_statements import AlipayStatements, install_routes
from .signing import (
    load_private_key_file,
    load_public_key_file,
    rsa2_sign,
    sign_content,
    sign_notification,
    verify_params,
)
from .statements import METHOD_BILL_URL

log = logging.getLogger(__name__)

# Alipay's message service resends after 2m, 10m, 10m, 1h, 2h, 6h, 15h (about 25 h).
DEFAULT_NOTIFY_SCHEDULE: Final = (120.0, 600.0, 600.0, 3600.0, 7200.0, 21600.0, 54000.0)
NOTIFY_TIMEOUT_SECONDS: Final = 10.0
ERROR_NODE: Final = "error_response"


@dataclass
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 8001
    data_dir: Path = Path("var/sandbox/alipay")
    app_id: str = DEFAULT_APP_ID
    latency_ms: int = 0
    fault_rate: Decimal | float = 0  # share of requests answered 20000, no order created
    delay_seconds: float = 2.0
    hang_seconds: float = 30.0
    notify_schedule: tuple[float, ...] = DEFAULT_NOTIFY_SCHEDULE
    seed: int | None = None
    tamper_response_signature: bool = False
    tamper_notification_signature: bool = False
    notify_timeout_seconds: float = NOTIFY_TIMEOUT_SECONDS
    shutdown_timeout_seconds: float = field(default=5.0)


Node = dict[str, Any]


def _error(code: str, msg: str, sub_code: str, sub_msg: str, **extra: str) -> Node:
    return {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg, **extra}


def _business_failed(sub_code: str, sub_msg: str, **extra: str) -> Node:
    return _error(CODE_BUSINESS_FAILED, "Business Failed", sub_code, sub_msg, **extra)


def _invalid(sub_code: str, sub_msg: str) -> Node:
    return _error(CODE_INVALID_ARGUMENTS, "Invalid Arguments", sub_code, sub_msg)


def _missing(sub_code: str, sub_msg: str) -> Node:
    return _error(CODE_MISSING_ARGUMENTS, "Missing Required Arguments", sub_code, sub_msg)


UNAVAILABLE: Final[Node] = _error(
    CODE_UNAVAILABLE, "Service Currently Unavailable", "isp.unknow-error", "系统繁忙"
)
CALL_LIMITED: Final[Node] = _error(
    CODE_CALL_LIMITED, "Call Limited", "isv.app-call-limited", "应用调用次数超限，包含调用频率超限"
)


class AlipaySandbox:
    """State and handlers of one sandbox instance (one app id)."""

    def __init__(self, config: SandboxConfig, keys: SandboxKeys) -> None:
        self.config = config
        self.keys = keys
        self._app_public_key = load_public_key_file(keys.app_public_key)
        self._alipay_private_key = load_private_key_file(keys.alipay_private_key)
        self._rng = random.Random(config.seed)  # a simulation, not security
        self.ids = IdSource(self._rng)
        self.orders: dict[str, SandboxOrder] = {}
        self.by_order_id: dict[str, SandboxOrder] = {}
        self._refused_once: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._methods: dict[str, Callable[[Node, dict[str, str]], Awaitable[Node]]] = {
            METHOD_TRANSFER: self._transfer,
            METHOD_QUERY: self._query,
        }
        # Orders persist on disk; statements and drift controls live in their own module.
        self.statements = AlipayStatements(self)
        self.statements.restore()
        self._methods[METHOD_BILL_URL] = self.statements.bill_url

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self, _app: web.Application) -> None:
        self._session = aiohttp.ClientSession()

    async def stop(self, _app: web.Application) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _later(self, seconds: float, action: Callable[[], None]) -> None:
        async def run() -> None:
            await asyncio.sleep(seconds)
            action()

        self._spawn(run())

    # --- the gateway -----------------------------------------------------------------------

    def _respond(self, node_name: str, node: Node) -> web.Response:
        # Serialize the node once, sign exactly those bytes and embed the same text.
        node_text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        signed = node_text + " " if self.config.tamper_response_signature else node_text
        sign = rsa2_sign(signed, self._alipay_private_key)
        body = f'{{"{node_name}":{node_text},"sign":"{sign}"}}'
        return web.Response(text=body, content_type="application/json", charset="utf-8")

    async def gateway(self, request: web.Request) -> web.Response:
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)
        params: dict[str, str] = {k: v for k, v in request.query.items()}
        if request.method == "POST" and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        method = params.get("method", "")
        node_name = response_node_name(method) if method in self._methods else ERROR_NODE
        problem = self._common_problem(params)
        if problem is not None:
            return self._respond(node_name, problem)
        if method not in self._methods:
            return self._respond(ERROR_NODE, _invalid("isv.invalid-method", "不存在的方法名"))
        if self.config.fault_rate and self._rng.random() < float(self.config.fault_rate):
            return self._respond(node_name, dict(UNAVAILABLE))
        try:
            biz = json.loads(params.get("biz_content") or "{}")
        except ValueError:
            biz = None
        if not isinstance(biz, dict):
            return self._respond(node_name, _invalid("isv.invalid-parameter", "参数无效"))
        return self._respond(node_name, await self._methods[method](biz, params))

    def _common_problem(self, params: dict[str, str]) -> Node | None:
        if not params.get("method"):
            return _missing("isv.missing-method", "缺少方法名参数")
        if not params.get("app_id"):
            return _missing("isv.missing-app-id", "缺少AppID参数")
        if not params.get("sign"):
            return _missing("isv.missing-signature", "缺少签名参数")
        if not params.get("timestamp"):
            return _missing("isv.missing-timestamp", "缺少时间戳参数")
        if params.get("format", "JSON").upper() != "JSON":
            return _invalid("isv.invalid-format", "无效的数据格式")
        if params["app_id"] != self.config.app_id:
            return _invalid("isv.invalid-app-id", "无效的AppID参数")
        if params.get("sign_type", "RSA") != "RSA2":
            return _invalid("isv.invalid-signature-type", "无效的签名类型")
        if not verify_params(params, self._app_public_key):
            return _invalid(
                "isv.invalid-signature", "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配"
            )
        return None

    async def _transfer(self, biz: Node, params: dict[str, str]) -> Node:
        problem = transfer_problem(biz)
        if problem is not None:
            return _business_failed("INVALID_PARAMETER", f"参数有误: {problem}")
        out_biz_no: str = biz["out_biz_no"]
        existing = self.orders.get(out_biz_no)
        if existing is not None:
            if existing.biz != biz:
                return _business_failed(
                    "PAYMENT_INFO_INCONSISTENCY",
                    "两次请求商户单号一样，但是参数不一致",
                    out_biz_no=out_biz_no,
                )
            return transfer_node(existing)
        identity: str = biz["payee_info"]["identity"]
        behaviour = behaviour_for(identity)
        if behaviour is Behaviour.FAIL:
            # Like the real gateway: refused synchronously, no order is created.
            return _business_failed("PAYEE_NOT_EXIST", "收款账号不存在", out_biz_no=out_biz_no)
        if behaviour is Behaviour.BUSY and out_biz_no not in self._refused_once:
            self._refused_once.add(out_biz_no)
            return dict(CALL_LIMITED)
        order = SandboxOrder(
            out_biz_no=out_biz_no,
            order_id=self.ids.order_id(),
            pay_fund_order_id=self.ids.fund_order_id(),
            biz=biz,
            trans_amount=biz["trans_amount"],
            product_code=biz["product_code"],
            identity=identity,
            notify_url=params.get("notify_url") or None,
            created_at=shanghai_now(),
        )
        self.orders[out_biz_no] = order
        self.by_order_id[order.order_id] = order
        self.statements.changed(order)
        delay = self.config.delay_seconds
        if behaviour is Behaviour.DELAY:
            order.history.append("DEALING")
            self._later(delay, lambda: self._set_status(order, "SUCCESS"))
        else:
            self._set_status(order, "SUCCESS")
        if behaviour is Behaviour.RETURN:
            self._later(
                delay,
                lambda: self._set_status(
                    order, "REFUND", error_code=REFUND_ERROR_CODE, fail_reason=REFUND_REASON
                ),
            )
        if behaviour is Behaviour.ERROR:
            return dict(UNAVAILABLE)
        if behaviour is Behaviour.TIMEOUT:
            await asyncio.sleep(self.config.hang_seconds)
        return transfer_node(order)

    async def _query(self, biz: Node, _params: dict[str, str]) -> Node:
        out_biz_no, order_id = biz.get("out_biz_no"), biz.get("order_id")
        order: SandboxOrder | None = None
        if isinstance(out_biz_no, str) and out_biz_no:
            if not biz.get("product_code") or not biz.get("biz_scene"):
                return _business_failed(
                    "INVALID_PARAMETER", "参数有误: 按out_biz_no查询时product_code和biz_scene必填"
                )
            order = self.orders.get(out_biz_no)
            if order is not None and order.product_code != biz.get("product_code"):
                order = None
        elif isinstance(order_id, str) and order_id:
            order = self.by_order_id.get(order_id)
        else:
            return _business_failed(
                "INVALID_PARAMETER", "参数有误: out_biz_no和order_id不能同时为空"
            )
        if order is None:
            return _business_failed("ORDER_NOT_EXIST", "转账订单不存在")
        return query_node(order)

    # --- state changes and notifications ---------------------------------------------------

    def _set_status(
        self,
        order: SandboxOrder,
        status: str,
        *,
        error_code: str | None = None,
        fail_reason: str | None = None,
    ) -> None:
        order.status = status
        order.history.append(status)
        if status == "SUCCESS":
            order.pay_date = shanghai_now()
        order.error_code, order.fail_reason = error_code, fail_reason
        self.statements.changed(order)
        if status in TERMINAL_STATUSES and order.notify_url:
            order.message = notification_message(order, self.config.app_id, self.ids.notify_id())
            order.notification_acked = False
            order.generation += 1
            self._spawn(self._deliver(order, order.generation))

    async def _deliver(self, order: SandboxOrder, generation: int) -> None:
        for wait in (0.0, *self.config.notify_schedule):
            if wait > 0:
                await asyncio.sleep(wait)
            if order.generation != generation or order.notification_acked:
                return
            if await self._post_notification(order):
                return

    async def _post_notification(self, order: SandboxOrder) -> bool:
        if order.message is None or order.notify_url is None or self._session is None:
            return False
        form = dict(order.message)
        if self.config.tamper_notification_signature:
            form["sign"] = rsa2_sign(
                sign_content(form, ("sign", "sign_type")) + " ", self._alipay_private_key
            )
        else:
            form["sign"] = sign_notification(form, self._alipay_private_key)
        generation = order.generation
        order.notifications_sent += 1
        try:
            async with self._session.post(
                order.notify_url,
                data=form,
                timeout=aiohttp.ClientTimeout(total=self.config.notify_timeout_seconds),
            ) as response:
                text = await response.text()
                acked = response.status == 200 and text == "success"
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("notification for %s not delivered: %s", order.out_biz_no, type(exc).__name__)
            return False
        if acked and order.generation == generation:
            order.notification_acked = True
        return acked

    # --- test support ------------------------------------------------------------------------

    async def list_orders(self, _request: web.Request) -> web.Response:
        return web.json_response([o.summary() for o in self.orders.values()])

    def _order_or_404(self, request: web.Request) -> SandboxOrder:
        order = self.orders.get(request.match_info["out_biz_no"])
        if order is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": "order not found"}), content_type="application/json"
            )
        return order

    async def get_order(self, request: web.Request) -> web.Response:
        order = self._order_or_404(request)
        return web.json_response({**order.summary(), "history": list(order.history)})

    async def renotify(self, request: web.Request) -> web.Response:
        order = self._order_or_404(request)
        if order.message is None or order.notify_url is None:
            return web.json_response(
                {"error": "order has no notification (no notify_url or not terminal yet)"},
                status=409,
            )
        delivered = await self._post_notification(order)
        return web.json_response({"delivered": delivered, **order.summary()})

    def settings(self) -> dict[str, Any]:
        return {
            "app_id": self.config.app_id,
            "latency_ms": self.config.latency_ms,
            "fault_rate": str(self.config.fault_rate),
            "delay_seconds": self.config.delay_seconds,
            "hang_seconds": self.config.hang_seconds,
            "notify_schedule": list(self.config.notify_schedule),
            "tamper_response_signature": self.config.tamper_response_signature,
            "tamper_notification_signature": self.config.tamper_notification_signature,
        }

    async def change_config(self, request: web.Request) -> web.Response:
        try:
            changes = json.loads(await request.text(), parse_float=Decimal)
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            updated = _validated_changes(changes)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        for key, value in updated.items():
            setattr(self.config, key, value)
        return web.json_response(self.settings())

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "app_id": self.config.app_id})


def _validated_changes(changes: dict[str, Any]) -> dict[str, Any]:
    flags = ("tamper_response_signature", "tamper_notification_signature")
    numbers = ("latency_ms", "fault_rate", "delay_seconds", "hang_seconds")
    updated: dict[str, Any] = {}
    for key, value in changes.items():
        if key in flags:
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false")
            updated[key] = value
        elif key in numbers:
            if isinstance(value, bool) or not isinstance(value, int | Decimal) or value < 0:
                raise ValueError(f"{key} must be a non-negative number")
            if key == "fault_rate":
                if value > 1:
                    raise ValueError("fault_rate must be between 0 and 1")
                updated[key] = Decimal(value)
            elif key == "latency_ms":
                updated[key] = int(value)
            else:
                updated[key] = float(value)
        else:
            raise ValueError(f"unknown setting {key}")
    return updated


SANDBOX_KEY: Final = web.AppKey("alipay_sandbox", AlipaySandbox)


def build_app(config: SandboxConfig) -> web.Application:
    """The sandbox as an aiohttp application (keys are created on first use)."""
    keys = ensure_keys(Path(config.data_dir), config.app_id)
    sandbox = AlipaySandbox(config, keys)
    app = web.Application()
    app[SANDBOX_KEY] = sandbox
    app.on_startup.append(sandbox.start)
    app.on_cleanup.append(sandbox.stop)
    app.router.add_route("GET", "/gateway.do", sandbox.gateway)
    app.router.add_route("POST", "/gateway.do", sandbox.gateway)
    app.router.add_get("/__sandbox/health", sandbox.health)
    app.router.add_get("/__sandbox/orders", sandbox.list_orders)
    app.router.add_get("/__sandbox/orders/{out_biz_no}", sandbox.get_order)
    app.router.add_post("/__sandbox/orders/{out_biz_no}/notify", sandbox.renotify)
    app.router.add_post("/__sandbox/config", sandbox.change_config)
    install_routes(app, sandbox.statements)
    return app


def _schedule(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("expected seconds separated by commas") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("intervals must not be negative")
    return values


def _fraction(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise argparse.ArgumentTypeError("expected a number between 0 and 1") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("expected a number between 0 and 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paymux_alipay.sandbox", description="Alipay OpenAPI sandbox for fund transfers"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--data-dir", type=Path, default=Path("var/sandbox/alipay"))
    parser.add_argument("--app-id", default=DEFAULT_APP_ID)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--fault-rate", type=_fraction, default=Decimal(0))
    parser.add_argument("--delay-seconds", type=float, default=2.0)
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument(
        "--notify-schedule",
        type=_schedule,
        default=DEFAULT_NOTIFY_SCHEDULE,
        help="seconds between notification resends, e.g. 0.5,1,2",
    )
    parser.add_argument("--seed", type=int, default=None)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run the sandbox until SIGINT/SIGTERM."""
    args = _parser().parse_args(argv)
    config = SandboxConfig(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        app_id=args.app_id,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        delay_seconds=args.delay_seconds,
        hang_seconds=args.hang_seconds,
        notify_schedule=args.notify_schedule,
        seed=args.seed,
    )
    keys = ensure_keys(config.data_dir, config.app_id)
    print(f"alipay sandbox app_id: {keys.app_id}", flush=True)
    for label, path in asdict(keys).items():
        if label != "app_id":
            print(f"  {label}: {Path(path).resolve()}", flush=True)
    print(f"  gateway: http://{config.host}:{config.port}/gateway.do", flush=True)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        web.run_app(
            build_app(config),
            host=config.host,
            port=config.port,
            print=None,
            shutdown_timeout=config.shutdown_timeout_seconds,
        )


if __name__ == "__main__":
    main()
