"""The Alipay sandbox's persistent order book, its account-flow bills and its drift controls.

* Every order change is appended to the book (:mod:`paymux.channels.sandbox_book`) under the
  sandbox's data dir, so a restarted sandbox still knows what it paid.
* ``alipay.data.dataservice.bill.downloadurl.query`` (``bill_type=signcustomer``) answers a
  ``bill_download_url`` valid for 30 s; ``GET /downloadBillFile.resource`` serves the day's
  GBK ``csv.zip`` built from the book. Real Alipay serves a day from the next morning (T+1);
  the sandbox also serves the current day so a test can reconcile at once.
* Test controls (no notification is sent for either): ``POST /__sandbox/orders/{ref}/tamper``
  with ``{"status": "SUCCESS"|"FAIL"|"REFUND"}`` and/or ``{"amount": <fen>}``, and
  ``POST /__sandbox/ghost_orders`` with ``{"amount": <fen>, "payee": "..."}``.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, fields
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol

from aiohttp import web
from aiohttp.typedefs import Handler

from paymux.channels.sandbox_book import FEE, PAYMENT, REFUND, FeeRule, SandboxBook, shanghai_text

from .mapping import BIZ_SCENE, CODE_SUCCESS, PRODUCT_ACCOUNT, PRODUCT_BANKCARD, fen_to_yuan
from .sandbox_orders import IdSource, SandboxOrder, shanghai_now
from .statements import (
    BILL_TYPE,
    BIZ_TYPE_FEE,
    BIZ_TYPE_REFUND,
    BIZ_TYPE_TRANSFER,
    SUB_CODE_BILL_NOT_EXIST,
    BillRow,
    build_bill_zip,
)

DOWNLOAD_PATH: Final = "/downloadBillFile.resource"
URL_TTL_SECONDS: Final = 30
# What the sandbox charges per transfer; it mirrors the default cost entries of
# config/fees.toml so an untouched setup reconciles without fee mismatches.
# GUESS: real contracts differ per merchant; Alipay books the charge as its own 收费 line.
FEE_RULES: Final = {
    PRODUCT_ACCOUNT: FeeRule(Decimal(10), 0, 1000),
    PRODUCT_BANKCARD: FeeRule(Decimal(5), 100, None),
}
_NOT_SNAPSHOT: Final = frozenset({"message", "generation"})


def _mask(identity: str) -> str:
    # The channel's file shows the counterparty masked.
    return identity[:1] + "***" + identity[-2:] if len(identity) > 3 else "***"


class HostConfig(Protocol):
    @property
    def data_dir(self) -> Path: ...

    @property
    def app_id(self) -> str: ...


class SandboxHost(Protocol):
    """What the statements need of the sandbox (``sandbox.AlipaySandbox`` is one)."""

    @property
    def config(self) -> HostConfig: ...

    @property
    def ids(self) -> IdSource: ...

    @property
    def orders(self) -> dict[str, SandboxOrder]: ...  # by out_biz_no

    @property
    def by_order_id(self) -> dict[str, SandboxOrder]: ...


class AlipayStatements:
    """Book, bills and drift controls of one sandbox (a :class:`SandboxHost`)."""

    def __init__(self, sandbox: SandboxHost) -> None:
        self.sandbox = sandbox
        self.book = SandboxBook(sandbox.config.data_dir)
        self._url_key = secrets.token_bytes(32)
        digest = int(hashlib.sha256(sandbox.config.app_id.encode()).hexdigest(), 16)
        self.account_no = f"2088{digest % 10**12:012d}"  # the account's Alipay user id (PID)

    # --- the book ------------------------------------------------------------------------

    def restore(self) -> None:
        """Load the orders a previous run of this sandbox held."""
        names = {f.name for f in fields(SandboxOrder)}
        for record in self.book.records.values():
            snapshot = {k: v for k, v in record.get("state", {}).items() if k in names}
            if not snapshot:
                continue
            order = SandboxOrder(**snapshot)
            self.sandbox.orders[order.out_biz_no] = order
            self.sandbox.by_order_id[order.order_id] = order

    def changed(self, order: SandboxOrder) -> None:
        """Persist ``order`` and the money movements its status implies."""
        record = self.book.records.get(order.out_biz_no) or {
            "reference": order.out_biz_no,
            "channel_order_id": order.order_id,
            "amount": _fen(order.trans_amount),
            "movements": [],
        }
        record["status"] = order.status
        record["state"] = {k: v for k, v in asdict(order).items() if k not in _NOT_SNAPSHOT}
        was_paid = bool(record["movements"])
        self.book.record_status(
            record,
            paid=order.status in ("SUCCESS", "REFUND"),
            refunded=order.status == "REFUND" or (order.status == "FAIL" and was_paid),
            fee=FEE_RULES.get(order.product_code, FeeRule(Decimal(0))).fee(record["amount"]),
            flow_prefix="2024",
        )
        self.book.put(record)

    # --- the bill ------------------------------------------------------------------------

    async def bill_url(self, biz: dict[str, Any], _params: dict[str, str]) -> dict[str, Any]:
        if biz.get("bill_type") != BILL_TYPE:
            return _failed("isv.invalid-bill-type", "账单类型不支持")
        day = biz.get("bill_date")
        if not isinstance(day, str) or not _is_day(day):
            return _failed("isv.invalid-bill-date", "账单日期格式不正确")
        if day > shanghai_text()[:10]:
            return _failed(SUB_CODE_BILL_NOT_EXIST, "账单不存在")
        expires = int(time.time()) + URL_TTL_SECONDS
        compact = day.replace("-", "")
        token = self._token(day, expires)
        url = (
            f"{_ORIGIN.get()}{DOWNLOAD_PATH}?bizType={BILL_TYPE}"
            f"&userId={self.account_no}&fileType=csv.zip&bizDates={compact}"
            f"&downloadFileName={self.account_no}_{compact}.csv.zip"
            f"&timestamp={expires * 1000}&token={token}"
        )
        return {"code": CODE_SUCCESS, "msg": "Success", "bill_download_url": url}

    def _token(self, day: str, expires: int) -> str:
        return hmac.new(self._url_key, f"{day}|{expires}".encode(), hashlib.sha256).hexdigest()

    async def download(self, request: web.Request) -> web.StreamResponse:
        compact = request.query.get("bizDates", "")
        try:
            day = f"{compact[:4]}-{compact[4:6]}-{compact[6:8]}"
            expires = int(request.query.get("timestamp", "")) // 1000
        except ValueError:
            raise web.HTTPNotFound() from None
        token = request.query.get("token", "")
        if not hmac.compare_digest(token, self._token(day, expires)) or time.time() > expires:
            # An expired or forged link: the real download centre answers an error page.
            return web.Response(status=403, text="链接已失效", content_type="text/plain")
        body = build_bill_zip(
            self.account_no,
            day,
            (date.fromisoformat(day) + timedelta(days=1)).isoformat(),
            self._rows(day),
            shanghai_text(),
        )
        name = f"{self.account_no}_{compact}.csv.zip"
        return web.Response(
            body=body,
            content_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    def _rows(self, day: str) -> list[BillRow]:
        rows = []
        for record, movement, balance in self.book.day_lines(day):
            state = record.get("state", {})
            identity = str(state.get("identity", ""))
            title = str(state.get("biz", {}).get("order_title") or "转账")
            kind, amount = movement["kind"], movement["amount"]
            rows.append(
                BillRow(
                    flow_no=movement["flow_no"],
                    biz_no=record["channel_order_id"],
                    out_biz_no=record["reference"],
                    title=title if kind != FEE else "转账手续费",
                    booked_at=movement["at"],
                    counterparty=_mask(identity) if kind != FEE else "",
                    income=amount if kind == REFUND else 0,
                    expense=amount if kind in (PAYMENT, FEE) else 0,
                    balance=balance,
                    biz_type={PAYMENT: BIZ_TYPE_TRANSFER, FEE: BIZ_TYPE_FEE}.get(
                        kind, BIZ_TYPE_REFUND
                    ),
                    remark="收款银行退票" if kind == REFUND else "",
                )
            )
        return rows

    # --- drift controls (no notification) ------------------------------------------------

    async def tamper(self, request: web.Request) -> web.StreamResponse:
        order = self.sandbox.orders.get(request.match_info["out_biz_no"])
        if order is None:
            return web.json_response({"error": "order not found"}, status=404)
        try:
            changes = json.loads(await request.text())
            if not isinstance(changes, dict) or not changes:
                raise ValueError("expected a JSON object with status and/or amount")
            status, amount = changes.pop("status", None), changes.pop("amount", None)
            if changes:
                raise ValueError(f"unknown fields: {sorted(changes)}")
            if status is not None and status not in ("SUCCESS", "FAIL", "REFUND"):
                raise ValueError("status must be SUCCESS, FAIL or REFUND")
            if amount is not None and (
                isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0
            ):
                raise ValueError("amount must be a positive integer number of fen")
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if amount is not None:
            order.trans_amount = fen_to_yuan(amount)
            record = self.book.records.get(order.out_biz_no)
            if record is not None:
                self.book.retamper_amount(record, amount)
        if status is not None and status != order.status:
            order.status = status
            order.history.append(f"{status} (tampered)")
            if status == "SUCCESS":
                order.pay_date = order.pay_date or shanghai_now()
                order.error_code = order.fail_reason = None
            elif status == "REFUND":
                order.error_code, order.fail_reason = "BANK_REFUND", "收款银行退票"
            else:
                order.error_code, order.fail_reason = (
                    "PAYEE_ACCOUNT_STATUS_ERROR",
                    "收款账户状态异常",
                )
        self.changed(order)
        return web.json_response({**order.summary(), "history": list(order.history)})

    async def ghost(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.text())
            amount, payee = body.get("amount"), body.get("payee")
            if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
                raise ValueError("amount must be a positive integer number of fen")
            if not isinstance(payee, str) or not payee:
                raise ValueError("payee must be a non-empty string")
        except (ValueError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        ids = self.sandbox.ids
        out_biz_no = "GHOST" + secrets.token_hex(8).upper()
        biz: dict[str, Any] = {
            "out_biz_no": out_biz_no,
            "trans_amount": fen_to_yuan(amount),
            "product_code": PRODUCT_ACCOUNT,
            "biz_scene": BIZ_SCENE,
            "order_title": "转账",
            "payee_info": {"identity": payee, "identity_type": "ALIPAY_LOGON_ID"},
        }
        order = SandboxOrder(
            out_biz_no=out_biz_no,
            order_id=ids.order_id(),
            pay_fund_order_id=ids.fund_order_id(),
            biz=biz,
            trans_amount=fen_to_yuan(amount),
            product_code=PRODUCT_ACCOUNT,
            identity=payee,
            notify_url=None,
            created_at=shanghai_now(),
            status="SUCCESS",
            pay_date=shanghai_now(),
            history=["SUCCESS (ghost)"],
        )
        self.sandbox.orders[out_biz_no] = order
        self.sandbox.by_order_id[order.order_id] = order
        self.changed(order)
        return web.json_response({**order.summary(), "history": list(order.history)})


def _is_day(text: str) -> bool:
    try:
        return len(text) == 10 and date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def _fen(yuan: str) -> int:
    whole, _, frac = yuan.partition(".")
    return int(whole) * 100 + int((frac or "0").ljust(2, "0")[:2])


def _failed(sub_code: str, sub_msg: str) -> dict[str, Any]:
    return {"code": "40004", "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_msg}


# The origin the client reached this request on: the download URL points back at it.
_ORIGIN: contextvars.ContextVar[str] = contextvars.ContextVar("origin", default="")


@web.middleware
async def _remember_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = _ORIGIN.set(str(request.url.origin()))
    try:
        return await handler(request)
    finally:
        _ORIGIN.reset(token)


def install_routes(app: web.Application, statements: AlipayStatements) -> None:
    app.middlewares.append(_remember_origin)
    app.router.add_get(DOWNLOAD_PATH, statements.download)
    app.router.add_post("/__sandbox/orders/{out_biz_no}/tamper", statements.tamper)
    app.router.add_post("/__sandbox/ghost_orders", statements.ghost)
