"""The WeChat sandbox's persistent order book, its fund-flow bills and its drift controls.

* Every bill change is appended to the book (:mod:`paymux.channels.sandbox_book`) under the
  sandbox's data dir, so a restarted sandbox still knows what it paid.
* ``GET /v3/bill/fundflowbill?bill_date=&account_type=BASIC[&tar_type=GZIP]`` answers a
  signed ``{download_url, hash_type: "SHA1", hash_value}``; ``GET /v3/billdownload/file``
  (signed request, UNSIGNED response) serves the file, gzipped when asked. WeChat serves a
  day from 10:00 the next morning; the sandbox also serves the current day.
* Test controls (no callback is sent for either): ``POST /__sandbox/orders/{ref}/tamper``
  with ``{"status": "SUCCESS"|"FAIL"}`` and/or ``{"amount": <fen>}`` (WeChat has no bounce
  state), and ``POST /__sandbox/ghost_orders`` with ``{"amount": <fen>, "payee": "..."}``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import fields
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol

from aiohttp import web

from paymux.channels.sandbox_book import FEE, PAYMENT, REFUND, FeeRule, SandboxBook, shanghai_text
from paymux.channels.sandbox_rules import Behaviour

from .statements import (
    BILL_PATH,
    BIZ_NAME_FEE,
    BIZ_NAME_TRANSFER,
    BIZ_TYPE_FEE,
    BIZ_TYPE_RETURN,
    BIZ_TYPE_TRANSFER,
    DOWNLOAD_PATH,
    EXPENSE,
    HASH_TYPE,
    INCOME,
    FlowRow,
    build_fundflow,
)

# What the sandbox charges per transfer; mirrors the default WeChat cost entry of
# config/fees.toml. GUESS: booked as its own 手续费 line in the BASIC account's bill.
FEE_RULE: Final = FeeRule(Decimal(10), 0, 1000)
URL_TTL_SECONDS: Final = 30
_NOT_SNAPSHOT: Final = frozenset({"event", "delivery"})
ACCOUNT_TYPES: Final = frozenset({"BASIC", "OPERATION", "FEES"})


class HostConfig(Protocol):
    @property
    def data_dir(self) -> Path: ...

    @property
    def mchid(self) -> str: ...

    @property
    def appid(self) -> str: ...


class SandboxHost(Protocol):
    """What the statements need of the sandbox's state (``sandbox.SandboxState`` is one)."""

    @property
    def config(self) -> HostConfig: ...

    @property
    def bills(self) -> dict[str, Any]: ...  # out_bill_no -> the sandbox's Bill

    def signed(self, status: int, payload: Mapping[str, Any]) -> web.Response: ...

    def error(self, status: int, code: str, message: str) -> web.Response: ...

    def new_bill_no(self) -> str: ...


class WechatStatements:
    """Book, bills and drift controls of one sandbox state (a :class:`SandboxHost`)."""

    def __init__(self, state: SandboxHost) -> None:
        self.state = state
        self.book = SandboxBook(state.config.data_dir)
        self._files: dict[str, tuple[float, bytes, bool]] = {}

    # --- the book ------------------------------------------------------------------------

    def restore(self, bill_type: type[Any]) -> None:
        names = {f.name for f in fields(bill_type)} - _NOT_SNAPSHOT
        for record in self.book.records.values():
            snapshot = {k: v for k, v in record.get("state", {}).items() if k in names}
            if not snapshot:
                continue
            snapshot["behaviour"] = Behaviour(snapshot["behaviour"])
            bill = bill_type(**snapshot)
            self.state.bills[bill.out_bill_no] = bill

    def changed(self, bill: Any) -> None:
        record = self.book.records.get(bill.out_bill_no) or {
            "reference": bill.out_bill_no,
            "channel_order_id": bill.transfer_bill_no,
            "amount": bill.transfer_amount,
            "movements": [],
        }
        record["status"] = bill.state
        record["state"] = self._snapshot(bill)
        was_paid = bool(record["movements"])
        self.book.record_status(
            record,
            paid=bill.state == "SUCCESS",
            refunded=bill.state == "FAIL" and was_paid,
            fee=FEE_RULE.fee(record["amount"]),
            flow_prefix="4200",
        )
        self.book.put(record)

    @staticmethod
    def _snapshot(bill: Any) -> dict[str, Any]:
        snapshot: dict[str, Any] = {}
        for f in fields(bill):
            if f.name in _NOT_SNAPSHOT:
                continue
            value = getattr(bill, f.name)
            snapshot[f.name] = value.value if isinstance(value, Behaviour) else value
        return snapshot

    # --- the bill ------------------------------------------------------------------------

    async def fundflowbill(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        day = request.query.get("bill_date", "")
        account_type = request.query.get("account_type", "BASIC")
        tar_type = request.query.get("tar_type")
        if not _is_day(day):
            return state.error(400, "PARAM_ERROR", "bill_date 格式应为 yyyy-MM-DD")
        if account_type not in ACCOUNT_TYPES:
            return state.error(400, "PARAM_ERROR", "account_type 取值不正确")
        if tar_type not in (None, "GZIP"):
            return state.error(400, "PARAM_ERROR", "tar_type 取值不正确")
        if day > shanghai_text()[:10]:
            return state.error(400, "NO_STATEMENT_EXIST", "账单文件不存在")
        body = build_fundflow(self._rows(day) if account_type == "BASIC" else [])
        now = time.time()
        self._files = {k: v for k, v in self._files.items() if v[0] > now}
        token = secrets.token_urlsafe(24)
        self._files[token] = (now + URL_TTL_SECONDS, body, tar_type == "GZIP")
        return state.signed(
            200,
            {
                "download_url": f"{request.url.origin()}{DOWNLOAD_PATH}?token={token}",
                "hash_type": HASH_TYPE,
                "hash_value": hashlib.sha1(body).hexdigest(),  # noqa: S324 - WeChat's choice
            },
        )

    async def download(self, request: web.Request) -> web.StreamResponse:
        entry = self._files.get(request.query.get("token", ""))
        if entry is None or entry[0] < time.time():
            return self.state.error(400, "INVALID_REQUEST", "下载链接已失效")
        _expires, body, gzipped = entry
        # The file itself is not signed: the client checks the SHA-1 from the signed answer.
        return web.Response(
            body=gzip.compress(body) if gzipped else body,
            content_type="application/octet-stream",
        )

    def _rows(self, day: str) -> list[FlowRow]:
        mchid = self.state.config.mchid
        rows = []
        for record, movement, balance in self.book.day_lines(day):
            kind = movement["kind"]
            rows.append(
                FlowRow(
                    booked_at=movement["at"],
                    business_no=record["channel_order_id"],
                    flow_no=movement["flow_no"],
                    biz_name=BIZ_NAME_FEE if kind == FEE else BIZ_NAME_TRANSFER,
                    biz_type={PAYMENT: BIZ_TYPE_TRANSFER, FEE: BIZ_TYPE_FEE}.get(
                        kind, BIZ_TYPE_RETURN
                    ),
                    direction=INCOME if kind == REFUND else EXPENSE,
                    amount=movement["amount"],
                    balance=balance,
                    applicant=mchid,
                    remark=str(record.get("state", {}).get("transfer_remark", "")),
                    voucher_no=record["reference"],
                )
            )
        return rows

    # --- drift controls (no callback) ----------------------------------------------------

    async def tamper(self, request: web.Request) -> web.StreamResponse:
        bill = self.state.bills.get(request.match_info["out_bill_no"])
        if bill is None:
            return web.json_response({"code": "NOT_FOUND"}, status=404)
        try:
            changes = json.loads(await request.text())
            if not isinstance(changes, dict) or not changes:
                raise ValueError("expected a JSON object with status and/or amount")
            status, amount = changes.pop("status", None), changes.pop("amount", None)
            if changes:
                raise ValueError(f"unknown fields: {sorted(changes)}")
            if status is not None and status not in ("SUCCESS", "FAIL"):
                raise ValueError("status must be SUCCESS or FAIL (WeChat has no bounce state)")
            if amount is not None and (
                isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0
            ):
                raise ValueError("amount must be a positive integer number of fen")
        except ValueError as exc:
            return web.json_response({"code": "PARAM_ERROR", "message": str(exc)}, status=400)
        if amount is not None:
            bill.transfer_amount = amount
            record = self.book.records.get(bill.out_bill_no)
            if record is not None:
                self.book.retamper_amount(record, amount)
        if status is not None and status != bill.state:
            bill.state = status
            bill.fail_reason = None if status == "SUCCESS" else "OTHER_FAIL_REASON_TYPE"
            bill.update_time = _now_iso()
        self.changed(bill)
        return web.json_response(bill.summary())

    async def ghost(self, request: web.Request, bill_type: type[Any]) -> web.StreamResponse:
        try:
            body = json.loads(await request.text())
            amount, payee = body.get("amount"), body.get("payee")
            if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
                raise ValueError("amount must be a positive integer number of fen")
            if not isinstance(payee, str) or not payee:
                raise ValueError("payee must be a non-empty string")
        except (ValueError, AttributeError) as exc:
            return web.json_response({"code": "PARAM_ERROR", "message": str(exc)}, status=400)
        state = self.state
        now = _now_iso()
        bill = bill_type(
            out_bill_no="GHOST" + secrets.token_hex(8).upper(),
            transfer_bill_no=state.new_bill_no(),
            appid=state.config.appid,
            openid=payee,
            transfer_amount=amount,
            transfer_remark="转账",
            transfer_scene_id="1000",
            notify_url=None,
            fingerprint="",
            behaviour=Behaviour.SUCCESS,
            state="SUCCESS",
            create_time=now,
            update_time=now,
        )
        state.bills[bill.out_bill_no] = bill
        self.changed(bill)
        return web.json_response(bill.summary())


def _is_day(text: str) -> bool:
    try:
        return len(text) == 10 and date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def _now_iso() -> str:
    return shanghai_text().replace(" ", "T") + "+08:00"


def install_routes(
    app: web.Application, statements: WechatStatements, bill_type: type[Any]
) -> None:
    async def ghost(request: web.Request) -> web.StreamResponse:
        return await statements.ghost(request, bill_type)

    app.router.add_get(BILL_PATH, statements.fundflowbill)
    app.router.add_get(DOWNLOAD_PATH, statements.download)
    app.router.add_post("/__sandbox/orders/{out_bill_no}/tamper", statements.tamper)
    app.router.add_post("/__sandbox/ghost_orders", ghost)
