"""WeChat Pay APIv3 channel: transfer bills (商家转账) over signed HTTP.

The pure field mapping lives in :mod:`.mapping`, the cryptography in :mod:`.signing`;
this module is the glue: settings, signed requests, response verification. Transport,
retries before acceptance and the connection settings' names are every channel's
(:mod:`paymux.channels.http_channel`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import Field, SecretStr, ValidationError, model_validator

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

from . import mapping
from .failure_codes import FAILURE_CODES
from .signing import (
    APIV3_KEY_LENGTH,
    HEADER_SERIAL,
    aead_decrypt,
    build_authorization,
    load_private_key,
    load_public_key,
    oaep_encrypt,
    verify_platform_signature,
)
from .statement_download import download_bill
from .statements import iter_fundflow

log = logging.getLogger(__name__)

RESOURCE_ALGORITHM = "AEAD_AES_256_GCM"
_FAIL_ACK_BODY = b'{"code":"FAIL","message":"notification not accepted"}'


class WechatSettings(ChannelHttpSettings):
    """Settings of the ``wechat`` channel (``config/channels.toml`` / environment); the
    connection and retry names are every channel's (:class:`ChannelHttpSettings`), whose
    validation errors never echo inputs (the mapping may hold the APIv3 key)."""

    base_url: str = "https://api.mch.weixin.qq.com"
    mchid: str
    appid: str
    merchant_private_key_file: Path
    merchant_serial_no: str
    platform_public_key_file: Path
    platform_public_key_id: str
    apiv3_key: SecretStr | None = None
    apiv3_key_file: Path | None = None
    transfer_scene_id: str = mapping.DEFAULT_SCENE_ID
    # How long WeChat keeps a bill waiting for the payee (next_action.expires_at).
    confirmation_expiry_seconds: float = Field(
        default=mapping.DEFAULT_CONFIRMATION_EXPIRY_SECONDS, gt=0
    )
    user_recv_perception: str | None = None
    notify_url: str | None = None  # used when an order carries none

    @model_validator(mode="after")
    def _one_apiv3_key_source(self) -> WechatSettings:
        # Safe to raise here: hide_input_in_errors keeps the key out of the message.
        if self.apiv3_key is None and self.apiv3_key_file is None:
            raise ValueError("apiv3_key or apiv3_key_file is required")
        return self

    def resolve_apiv3_key(self) -> SecretStr:
        """The APIv3 key from ``apiv3_key`` or ``apiv3_key_file`` (one is required)."""
        if self.apiv3_key is not None:
            key = self.apiv3_key.get_secret_value().strip()
        elif self.apiv3_key_file is not None:
            key = self.apiv3_key_file.read_text(encoding="utf-8").strip()
        else:
            raise ValueError("wechat settings need apiv3_key or apiv3_key_file")
        if len(key.encode("utf-8")) != APIV3_KEY_LENGTH:
            raise ValueError("the wechat APIv3 key must be 32 characters")
        return SecretStr(key)


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    payload: Any  # parsed JSON (floats as Decimal) or None
    verified: bool
    verify_error: str | None


class WechatChannel(HttpChannel):
    """:class:`paymux.channels.base.Channel` for WeChat Pay transfers to openids."""

    name = "wechat"
    failure_codes = FAILURE_CODES  # channel code -> Paymux failure code (data)
    payee_types: frozenset[PayeeType] = frozenset({PayeeType.WECHAT_OPENID})

    def __init__(self, settings: WechatSettings) -> None:
        super().__init__(settings)
        self.settings = settings
        self.account_id = settings.mchid
        self._apiv3_key = settings.resolve_apiv3_key()
        self._merchant_key = load_private_key(Path(settings.merchant_private_key_file))
        self._platform_key = load_public_key(Path(settings.platform_public_key_file))
        self._path_prefix = urlsplit(settings.base_url).path.rstrip("/")

    # --- Channel protocol -----------------------------------------------------------------

    async def send(self, order: TransferOrder) -> ChannelResult:
        try:
            content = orjson.dumps(self._transfer_body(order))
        except ValueError as exc:
            # Nothing was sent: the order is not one this channel can pay.
            return ChannelResult(
                outcome=Outcome.FAILED, failure_code="UNSUPPORTED_ORDER", failure_message=str(exc)
            )

        async def attempt() -> ChannelResult:
            reply = await self._exchange("POST", mapping.TRANSFER_PATH, content, order.reference)
            if reply is None:
                return _unknown("no response (timeout or transport error after sending)")
            return self._send_result(order, reply)

        return await self._retry.run(attempt, label=f"wechat {order.reference}", exhausted=_unknown)

    async def query(self, order: TransferOrder) -> ChannelResult:
        path = mapping.query_path(order.reference)

        async def attempt() -> ChannelResult:
            reply = await self._exchange("GET", path, b"", order.reference)
            if reply is None:
                return _unknown("no response to the query")
            return self._query_result(order, reply)

        return await self._retry.run(attempt, label=f"wechat {order.reference}", exhausted=_unknown)

    async def cancel(self, order: TransferOrder) -> ChannelResult:
        """撤销转账 (only before the payee confirmed): CANCELED when WeChat accepted it."""
        path = mapping.cancel_path(order.reference)

        async def attempt() -> ChannelResult:
            reply = await self._exchange("POST", path, b"", order.reference)
            if reply is None:
                return _unknown("no response to the cancel")
            if 200 <= reply.status < 300:
                if not reply.verified:
                    return self._unverified(order, reply)
                if not isinstance(reply.payload, Mapping):
                    return _unknown("cancel answer is not a JSON object")
                return self._bill_result(reply.payload)
            code, message = mapping.error_fields(reply.payload)
            if reply.status == 429 or code == "FREQUENCY_LIMITED":
                raise RetryableBeforeAcceptance(code or f"HTTP {reply.status}")
            # Refused (e.g. already confirmed) or unknown: the caller asks query().
            return ChannelResult(
                outcome=Outcome.PROCESSING,
                failure_code=code,
                failure_message=message,
                raw_status=f"HTTP {reply.status}",
            )

        return await self._retry.run(attempt, label=f"wechat {order.reference}", exhausted=_unknown)

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        verify_platform_signature(
            headers,
            body,
            public_key=self._platform_key,
            public_key_id=self.settings.platform_public_key_id,
        )
        event = _json_or_none(body)
        if not isinstance(event, Mapping):
            raise MalformedNotification("callback body is not a JSON object")
        resource = event.get("resource")
        if not isinstance(resource, Mapping):
            raise MalformedNotification("callback has no resource")
        if resource.get("algorithm") != RESOURCE_ALGORITHM:
            raise MalformedNotification("unsupported resource algorithm")
        nonce, ciphertext = resource.get("nonce"), resource.get("ciphertext")
        associated_data = resource.get("associated_data") or ""
        if not (isinstance(nonce, str) and isinstance(ciphertext, str)) or not isinstance(
            associated_data, str
        ):
            raise MalformedNotification("resource lacks nonce or ciphertext")
        plaintext = aead_decrypt(
            self._apiv3_key.get_secret_value(),
            nonce=nonce,
            associated_data=associated_data,
            ciphertext=ciphertext,
        )
        decrypted = _json_or_none(plaintext)
        if not isinstance(decrypted, Mapping):
            raise MalformedNotification("decrypted resource is not a JSON object")
        if event.get("event_type") != mapping.EVENT_BILL_FINISHED:
            raise MalformedNotification("unexpected event_type")
        return mapping.notification_from_resource(event, decrypted)

    def notification_ack(self, ok: bool) -> Ack:
        if ok:
            return Ack(204, b"", "application/json")
        # WeChat resends on any 4XX or 5XX with a {code, message} body; 400 keeps a refused
        # (forged, malformed, unknown) notification from reading as a gateway failure.
        return Ack(400, _FAIL_ACK_BODY, "application/json")

    # --- statements (optional capability, see paymux.channels.base.StatementSource) -----

    async def download_statement(self, bill_date: str, dest_dir: Path) -> Path:
        return await download_bill(self, bill_date, dest_dir)

    def iter_statement(self, path: Path) -> Iterator[StatementLine]:
        return iter_fundflow(path)

    async def signed_get(self, path: str, reference: str) -> _Reply | None:
        """One signed GET; None when no answer was seen."""
        try:
            return await self._exchange("GET", path, b"", reference)
        except RetryableBeforeAcceptance:
            return None

    def signed_headers(self, method: str, path: str) -> dict[str, str]:
        """Authorization for a request to exactly ``path`` (with its query), e.g. a download."""
        return {
            "Authorization": build_authorization(
                mchid=self.settings.mchid,
                serial_no=self.settings.merchant_serial_no,
                private_key=self._merchant_key,
                method=method,
                path=path,
                body=b"",
            ),
            "User-Agent": "paymux-wechat/0.1",
        }

    # --- internals ------------------------------------------------------------------------

    def _transfer_body(self, order: TransferOrder) -> dict[str, Any]:
        encrypted_name = None
        if mapping.wants_user_name(order) and order.payee_name:
            encrypted_name = oaep_encrypt(self._platform_key, order.payee_name)
        return mapping.build_transfer_body(
            order,
            appid=self.settings.appid,
            transfer_scene_id=self.settings.transfer_scene_id,
            encrypted_user_name=encrypted_name,
            user_recv_perception=self.settings.user_recv_perception,
            default_notify_url=self.settings.notify_url,
        )

    def _headers(self, method: str, path: str, content: bytes) -> dict[str, str]:
        authorization = build_authorization(
            mchid=self.settings.mchid,
            serial_no=self.settings.merchant_serial_no,
            private_key=self._merchant_key,
            method=method,
            path=self._path_prefix + path,
            body=content,
        )
        headers = {
            "Authorization": authorization,
            "Accept": "application/json",
            # Names the platform key user_name is encrypted with (harmless otherwise).
            HEADER_SERIAL: self.settings.platform_public_key_id,
            "User-Agent": "paymux-wechat/0.1",
        }
        if content:
            headers["Content-Type"] = "application/json"
        return headers

    async def _exchange(
        self, method: str, path: str, content: bytes, reference: str
    ) -> _Reply | None:
        """One signed request. None when the outcome is unknown (sent, no answer seen).

        Raises RetryableBeforeAcceptance when the connection was never made.
        """
        response = await self._request(
            method,
            path,
            label=f"wechat {method} {path} for {reference}",
            content=content or None,
            headers=self._headers(method, path, content),
        )
        if isinstance(response, NoAnswer):
            return None
        body = response.content
        verify_error: str | None = None
        try:
            verify_platform_signature(
                response.headers,
                body,
                public_key=self._platform_key,
                public_key_id=self.settings.platform_public_key_id,
            )
        except InvalidSignature as exc:
            verify_error = str(exc)
        return _Reply(
            response.status_code, body, _json_or_none(body), verify_error is None, verify_error
        )

    def _send_result(self, order: TransferOrder, reply: _Reply) -> ChannelResult:
        if 200 <= reply.status < 300:
            if not reply.verified:
                return self._unverified(order, reply)
            if not isinstance(reply.payload, Mapping):
                return _unknown("transfer answer is not a JSON object")
            if not self._same_bill(order, reply.payload):
                return _unknown("transfer answer names another out_bill_no")
            return self._bill_result(reply.payload)
        code, message = mapping.error_fields(reply.payload)
        disposition = mapping.classify_send_error(reply.status, code, message)
        if disposition is mapping.ErrorDisposition.RETRY:
            # Safe even unverified: a resend carries the same out_bill_no.
            raise RetryableBeforeAcceptance(code or f"HTTP {reply.status}")
        if not reply.verified and disposition is not mapping.ErrorDisposition.PROCESSING:
            return self._unverified(order, reply)
        return mapping.result_from_error(
            disposition, status=reply.status, code=code, message=message, raw=_raw(reply)
        )

    def _query_result(self, order: TransferOrder, reply: _Reply) -> ChannelResult:
        if 200 <= reply.status < 300:
            if not reply.verified:
                return self._unverified(order, reply)
            if not isinstance(reply.payload, Mapping):
                return _unknown("query answer is not a JSON object")
            if not self._same_bill(order, reply.payload):
                return _unknown("query answer names another out_bill_no")
            return self._bill_result(reply.payload)
        code, message = mapping.error_fields(reply.payload)
        disposition = mapping.classify_query_error(reply.status, code)
        if disposition is mapping.ErrorDisposition.RETRY:
            raise RetryableBeforeAcceptance(code or f"HTTP {reply.status}")
        if not reply.verified and disposition is mapping.ErrorDisposition.NOT_FOUND:
            return self._unverified(order, reply)
        return mapping.result_from_error(
            disposition, status=reply.status, code=code, message=message, raw=_raw(reply)
        )

    def _bill_result(self, payload: Mapping[str, Any]) -> ChannelResult:
        return mapping.result_from_bill(
            payload,
            mchid=self.settings.mchid,
            appid=self.settings.appid,
            confirmation_expiry_seconds=self.settings.confirmation_expiry_seconds,
        )

    def _same_bill(self, order: TransferOrder, payload: Mapping[str, Any]) -> bool:
        named = payload.get("out_bill_no")
        return named is None or named == order.reference

    def _unverified(self, order: TransferOrder, reply: _Reply) -> ChannelResult:
        log.warning(
            "wechat answer for %s (HTTP %s) not trusted: %s",
            order.reference,
            reply.status,
            reply.verify_error,
        )
        return ChannelResult(
            outcome=Outcome.PROCESSING,
            failure_message=f"response signature did not verify: {reply.verify_error}",
            raw_status=f"HTTP {reply.status} (unverified)",
        )


def create_channel(settings: Mapping[str, Any]) -> WechatChannel:
    """Entry point ``paymux.channels: wechat``."""
    try:
        parsed = WechatSettings.model_validate(dict(settings))
    except ValidationError as exc:
        messages = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ValueError(f"invalid wechat channel settings: {messages}") from None
    return WechatChannel(parsed)


def _unknown(message: str) -> ChannelResult:
    return ChannelResult(outcome=Outcome.PROCESSING, failure_message=message)


def _raw(reply: _Reply) -> Mapping[str, Any]:
    return reply.payload if isinstance(reply.payload, Mapping) else {}


def _json_or_none(data: bytes) -> Any:
    """Parse JSON with floats as Decimal (no float ever touches an amount)."""
    try:
        return json.loads(data, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return None
