"""The asyncio client: ``AsyncPaymux(api_key=..., base_url=...)``, same methods awaited;
lists are async iterators (``async for t in client.transfers.list()``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import date, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from paymux_client import _calls
from paymux_client._core import (
    DEFAULT_BASE_URL,
    Call,
    RetryAfterWait,
    check,
    default_headers,
    should_retry,
)
from paymux_client.errors import APIConnectionError
from paymux_client.models import (
    Balance,
    BalanceTransaction,
    Event,
    FeeReport,
    Merchant,
    Page,
    Quote,
    Redelivery,
    Topup,
    Transfer,
    TransferBatch,
    TransferBatchItem,
    WebhookAttempt,
    WebhookEndpoint,
)
from paymux_client.webhooks import Webhooks

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class AsyncPaymux:
    """A merchant's (or, with the admin key, an operator's) client of the Paymux API."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.max_retries = max_retries
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._base_url = base_url.rstrip("/")
        self._headers = default_headers(api_key)
        self._wait = RetryAfterWait()
        self.transfers = Transfers(self)
        self.transfer_batches = TransferBatches(self)
        self.balance = BalanceResource(self)
        self.balance_transactions = BalanceTransactions(self)
        self.webhook_endpoints = WebhookEndpoints(self)
        self.events = Events(self)
        self.reports = Reports(self)
        self.merchants = Merchants(self)
        self.webhooks = Webhooks()

    async def request(self, call: Call[T]) -> T:
        """Send ``call``, retrying what is safe to retry (same Idempotency-Key each time)."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: should_retry(call, exc)),
            reraise=True,
        )
        try:
            response: httpx.Response = await retrying(self._send, call)
        except httpx.TransportError as exc:
            raise APIConnectionError(f"{call.method} {call.path}: {exc!r}") from exc
        return call.parse(response)

    async def _send(self, call: Call[Any]) -> httpx.Response:
        response = await self._http.request(
            call.method,
            self._base_url + call.path,
            params=call.clean_params(),
            json=call.json,
            headers={**self._headers, **call.request_headers()},
        )
        return check(response)

    async def paginate(self, page_call: Callable[[str | None], Call[Page[M]]]) -> AsyncIterator[M]:
        cursor: str | None = None
        while True:
            page = await self.request(page_call(cursor))
            for item in page.data:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            cursor = page.next_cursor

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncPaymux:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


class _Resource:
    def __init__(self, client: AsyncPaymux) -> None:
        self._client = client


class Transfers(_Resource):
    async def create(
        self,
        *,
        amount: int,
        currency: str,
        payee: Mapping[str, Any],
        channel: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Transfer:
        """Send money once. Without ``idempotency_key`` one is generated; every retry of
        this call reuses it, so the gateway never makes a second transfer."""
        return await self._client.request(
            _calls.create_transfer(
                amount, currency, payee, channel, description, metadata, idempotency_key
            )
        )

    async def quote(
        self,
        *,
        amount: int,
        currency: str,
        payee: Mapping[str, Any],
        channel: str | None = None,
    ) -> Quote:
        return await self._client.request(_calls.quote_transfer(amount, currency, payee, channel))

    async def cancel(self, transfer_id: str, *, idempotency_key: str | None = None) -> Transfer:
        """Cancel a transfer still waiting for the payee's confirmation (409 otherwise)."""
        return await self._client.request(_calls.cancel_transfer(transfer_id, idempotency_key))

    async def retrieve(self, transfer_id: str) -> Transfer:
        return await self._client.request(_calls.retrieve_transfer(transfer_id))

    def list(
        self,
        *,
        status: str | None = None,
        channel: str | None = None,
        created_gte: datetime | str | None = None,
        created_lt: datetime | str | None = None,
        merchant_id: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Transfer]:
        """Every matching transfer, newest first, fetching pages as you iterate."""
        return self._client.paginate(
            lambda cursor: _calls.list_transfers(
                cursor,
                limit=page_size,
                status=status,
                channel=channel,
                created_gte=created_gte,
                created_lt=created_lt,
                merchant_id=merchant_id,
            )
        )


class TransferBatches(_Resource):
    async def create(
        self,
        *,
        items: list[Mapping[str, Any]],
        all_or_nothing: bool = False,
        idempotency_key: str | None = None,
    ) -> TransferBatch:
        """Accept up to 1,000 transfers; each item's ``reference`` is its idempotency key."""
        return await self._client.request(
            _calls.create_transfer_batch(items, all_or_nothing, idempotency_key)
        )

    async def retrieve(self, batch_id: str) -> TransferBatch:
        return await self._client.request(_calls.retrieve_transfer_batch(batch_id))

    def items(self, batch_id: str, *, page_size: int = 100) -> AsyncIterator[TransferBatchItem]:
        return self._client.paginate(
            lambda c: _calls.list_transfer_batch_items(c, batch_id=batch_id, limit=page_size)
        )


class BalanceResource(_Resource):
    async def retrieve(self, currency: str = "CNY") -> Balance:
        return await self._client.request(_calls.retrieve_balance(currency))


class BalanceTransactions(_Resource):
    def list(self, *, page_size: int = 100) -> AsyncIterator[BalanceTransaction]:
        return self._client.paginate(lambda c: _calls.list_balance_transactions(c, limit=page_size))


class WebhookEndpoints(_Resource):
    async def create(
        self, *, url: str, event_types: list[str] | None = None, description: str | None = None
    ) -> WebhookEndpoint:
        """The returned endpoint's ``secret`` is shown this once: store it."""
        return await self._client.request(
            _calls.create_webhook_endpoint(url, event_types, description)
        )

    async def retrieve(self, endpoint_id: str) -> WebhookEndpoint:
        return await self._client.request(_calls.retrieve_webhook_endpoint(endpoint_id))

    async def update(self, endpoint_id: str, **changes: Any) -> WebhookEndpoint:
        return await self._client.request(_calls.update_webhook_endpoint(endpoint_id, changes))

    async def delete(self, endpoint_id: str) -> None:
        await self._client.request(_calls.delete_webhook_endpoint(endpoint_id))

    async def rotate_secret(
        self, endpoint_id: str, *, overlap_seconds: int | None = None
    ) -> WebhookEndpoint:
        return await self._client.request(
            _calls.rotate_webhook_secret(endpoint_id, overlap_seconds)
        )

    def list(self, *, page_size: int = 100) -> AsyncIterator[WebhookEndpoint]:
        return self._client.paginate(lambda c: _calls.list_webhook_endpoints(c, limit=page_size))

    def attempts(self, endpoint_id: str, *, page_size: int = 100) -> AsyncIterator[WebhookAttempt]:
        return self._client.paginate(
            lambda c: _calls.list_webhook_attempts(c, endpoint_id=endpoint_id, limit=page_size)
        )


class Events(_Resource):
    def list(self, *, type: str | None = None, page_size: int = 100) -> AsyncIterator[Event]:
        return self._client.paginate(lambda c: _calls.list_events(c, limit=page_size, type=type))

    async def retrieve(self, event_id: str) -> Event:
        return await self._client.request(_calls.retrieve_event(event_id))

    async def redeliver(self, event_id: str, *, endpoint_id: str | None = None) -> Redelivery:
        return await self._client.request(_calls.redeliver_event(event_id, endpoint_id))


class Reports(_Resource):
    async def fees(
        self,
        *,
        from_: date | str,
        to: date | str,
        tz: str | None = None,
        group_by: list[str] | None = None,
        merchant_id: str | None = None,
    ) -> FeeReport:
        return await self._client.request(_calls.fee_report(from_, to, tz, group_by, merchant_id))

    async def fees_csv(
        self,
        *,
        from_: date | str,
        to: date | str,
        tz: str | None = None,
        group_by: list[str] | None = None,
        merchant_id: str | None = None,
    ) -> str:
        return await self._client.request(
            _calls.fee_report_csv(from_, to, tz, group_by, merchant_id)
        )


class Merchants(_Resource):
    """Operator endpoints (admin key)."""

    async def create(self, *, name: str) -> Merchant:
        """The returned merchant's ``secret_key`` is shown this once."""
        return await self._client.request(_calls.create_merchant(name))

    async def list(self) -> list[Merchant]:
        return (await self._client.request(_calls.list_merchants())).data

    async def topup(
        self,
        merchant_id: str,
        *,
        amount: int,
        currency: str,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Topup:
        return await self._client.request(
            _calls.create_topup(merchant_id, amount, currency, description, idempotency_key)
        )

    async def balance(self, merchant_id: str) -> Balance:
        return await self._client.request(_calls.merchant_balance(merchant_id))
