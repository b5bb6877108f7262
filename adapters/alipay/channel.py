"""The Alipay channel: OpenAPI gateway calls (form POST + RSA2) mapped into Paymux outcomes."""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from paymux.channels.base import (
    Ack,
    ChannelResult,
    InvalidSignature,
    MalformedNotification,
    Notification,
    TransferOrder,
)
from paymux.channels.errors import RetryableBeforeAcceptance
from paymux.channels.http_channel import ChannelHttpSettings, HttpChannel
from paymux.channels.transport import NoAnswer
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType
from paymux.domain.statement_lines import StatementLine

from .failure_codes import FAILURE_CODES
from .mapping import (
    METHOD_QUERY,
    METHOD_TRANSFER,
    MSG_METHOD_ORDER_CHANGED,
    OrderNotMappable,
    is_retry_later,
    map_query_response,
    map_transfer_response,
    outcome_for_status,
    query_biz_content,
    response_node_name,
    transfer_biz_content,
    yuan_to_fen,
)
from .signing import (
    load_private_key_file,
    load_public_key_file,
    sign_params,
    verify_notification,
    verify_response,
)
from .statement_download import download_bill
from .statements import iter_bill

log = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
GATEWAY_PATH = "/gateway.do"


class AlipaySettings(ChannelHttpSettings):
    """Settings of one Alipay app (``[alipay]`` in the channel settings); the connection
    and retry names are every channel's (:class:`ChannelHttpSettings`)."""

    # base_url: e.g. "https://openapi.alipay.com" or "http://127.0.0.1:8001"
    app_id: str
    app_private_key_file: Path
    alipay_public_key_file: Path

    deprecated_names: ClassVar[Mapping[str, str]] = {
        **ChannelHttpSettings.deprecated_names,
        "gateway_url": "base_url",
    }


def _gateway_base(url: str) -> str:
    # Accept both "https://host" and "https://host/gateway.do".
    url = url.rstrip("/")
    return url[: -len(GATEWAY_PATH)] if url.endswith(GATEWAY_PATH) else url


class AlipayChannel(HttpChannel):
    """Alipay single transfers (``alipay.fund.trans.uni.transfer``) for one app."""

    name = "alipay"
    failure_codes = FAILURE_CODES  # channel code -> Paymux failure code (data)
    payee_types = frozenset({PayeeType.ALIPAY_ACCOUNT, PayeeType.BANK_CARD})

    def __init__(self, settings: AlipaySettings) -> None:
        super().__init__(settings, base_url=_gateway_base(settings.base_url))
        self.settings = settings
        self.account_id = settings.app_id
        self._private_key = load_private_key_file(settings.app_private_key_file)
        self._alipay_public_key = load_public_key_file(settings.alipay_public_key_file)

    # --- Channel protocol --------------------------------------------------------------

    async def send(self, order: TransferOrder) -> ChannelResult:
        try:
            biz = transfer_biz_content(order)
        except OrderNotMappable as exc:
            return ChannelResult(
                outcome=Outcome.FAILED, failure_code="INVALID_PARAMETER", failure_message=str(exc)
            )
        answer = await self._call(METHOD_TRANSFER, biz, order.reference, order.notify_url)
        if isinstance(answer, NoAnswer):
            return ChannelResult(outcome=Outcome.PROCESSING, failure_message=answer.reason)
        return map_transfer_response(answer)

    async def query(self, order: TransferOrder) -> ChannelResult:
        try:
            biz = query_biz_content(order)
        except OrderNotMappable as exc:
            return ChannelResult(outcome=Outcome.PROCESSING, failure_message=str(exc))
        answer = await self._call(METHOD_QUERY, biz, order.reference, None)
        if isinstance(answer, NoAnswer):
            return ChannelResult(outcome=Outcome.PROCESSING, failure_message=answer.reason)
        return map_query_response(answer)

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        try:
            pairs = urllib.parse.parse_qsl(
                body.decode("utf-8"), keep_blank_values=True, strict_parsing=True
            )
        except (UnicodeDecodeError, ValueError):
            raise InvalidSignature("notification body is not a form") from None
        params = dict(pairs)
        if len(params) != len(pairs):
            raise InvalidSignature("notification repeats a field")
        if not verify_notification(params, self._alipay_public_key):
            raise InvalidSignature("notification signature does not verify")
        return _notification_from(params)

    def notification_ack(self, ok: bool) -> Ack:
        if ok:
            return Ack(status_code=200, body=b"success", content_type="text/plain")
        return Ack(status_code=400, body=b"fail", content_type="text/plain")

    # --- statements (optional capability, see paymux.channels.base.StatementSource) -----

    async def download_statement(self, bill_date: str, dest_dir: Path) -> Path:
        return await download_bill(self, bill_date, dest_dir)

    def iter_statement(self, path: Path) -> Iterator[StatementLine]:
        return iter_bill(path)

    async def call_api(
        self, method: str, biz: Mapping[str, Any], reference: str
    ) -> dict[str, Any] | str:
        """A signed gateway call: the verified response node, or why it was not seen."""
        answer = await self._call(method, biz, reference, None)
        return answer.reason if isinstance(answer, NoAnswer) else answer

    # --- gateway calls -----------------------------------------------------------------

    def _signed_params(
        self, method: str, biz_content: str, notify_url: str | None
    ) -> dict[str, str]:
        params = {
            "app_id": self.settings.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
            "biz_content": biz_content,
        }
        if notify_url:
            params["notify_url"] = notify_url
        params["sign"] = sign_params(params, self._private_key)
        return params

    async def _call(
        self, method: str, biz: Mapping[str, Any], reference: str, notify_url: str | None
    ) -> dict[str, Any] | NoAnswer:
        # One biz_content for every attempt: a retry is the same request, same out_biz_no.
        biz_content = json.dumps(biz, ensure_ascii=False, separators=(",", ":"))
        return await self._retry.run(
            lambda: self._post_once(method, biz_content, reference, notify_url),
            label=f"alipay {method} for {reference}",
            exhausted=NoAnswer,
        )

    async def _post_once(
        self, method: str, biz_content: str, reference: str, notify_url: str | None
    ) -> dict[str, Any] | NoAnswer:
        params = self._signed_params(method, biz_content, notify_url)
        response = await self._request(
            "POST",
            GATEWAY_PATH,
            label=f"alipay {method} for {reference}",
            data=params,
            headers={"Accept": "application/json"},
        )
        if isinstance(response, NoAnswer):
            return response
        if response.status_code == 429:
            raise RetryableBeforeAcceptance("HTTP 429")
        if response.status_code != 200:
            log.warning(
                "alipay %s for %s: HTTP %d, outcome unknown",
                method,
                reference,
                response.status_code,
            )
            return NoAnswer(f"HTTP {response.status_code}")
        try:
            body = response.content.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("alipay %s for %s: undecodable body, outcome unknown", method, reference)
            return NoAnswer("undecodable response body")
        node_text = verify_response(body, response_node_name(method), self._alipay_public_key)
        if node_text is None:
            log.warning(
                "alipay %s for %s: response missing or signature does not verify, outcome unknown",
                method,
                reference,
            )
            return NoAnswer("response signature does not verify")
        node = json.loads(node_text, parse_float=Decimal)
        if not isinstance(node, dict):  # pragma: no cover - the scanner checked "{"
            return NoAnswer("response node is not an object")
        if is_retry_later(node):
            raise RetryableBeforeAcceptance(str(node.get("sub_code") or node.get("code")))
        return node


def _notification_from(params: Mapping[str, str]) -> Notification:
    if params.get("msg_method") != MSG_METHOD_ORDER_CHANGED:
        raise MalformedNotification("not an alipay.fund.trans.order.changed message")
    try:
        biz = json.loads(params.get("biz_content", ""), parse_float=Decimal)
    except ValueError:
        raise MalformedNotification("biz_content is not JSON") from None
    if not isinstance(biz, dict):
        raise MalformedNotification("biz_content is not an object")
    reference = biz.get("out_biz_no")
    status = biz.get("status")
    outcome = outcome_for_status(status if isinstance(status, str) else None)
    if not isinstance(reference, str) or not reference or outcome is None:
        raise MalformedNotification("notification lacks out_biz_no or a known status")
    amount: int | None = None
    if biz.get("trans_amount") is not None:
        try:
            amount = yuan_to_fen(biz["trans_amount"])
        except (TypeError, ValueError):
            raise MalformedNotification("trans_amount is not a yuan amount") from None
    failure_code = failure_message = None
    if outcome in (Outcome.FAILED, Outcome.RETURNED):
        failure_code = biz.get("error_code") or None
        failure_message = biz.get("fail_reason") or None
    order_id = biz.get("order_id")
    return Notification(
        reference=reference,
        outcome=outcome,
        channel_order_id=order_id if isinstance(order_id, str) and order_id else None,
        amount=amount,
        currency="CNY",
        channel_account=params.get("app_id") or None,
        failure_code=failure_code,
        failure_message=failure_message,
        raw_status=status,
        notification_id=params.get("notify_id") or None,
        raw=biz,
    )


def create_channel(settings: Mapping[str, Any]) -> AlipayChannel:
    """Entry point (``paymux.channels: alipay``): build the channel from its settings."""
    return AlipayChannel(AlipaySettings.model_validate(dict(settings)))
