"""The Python client library (clients/python, ``paymux_client``) against the real stack:
typed resources, auto-pagination, idempotent creates, typed errors, webhook verification."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from paymux_client import (
    AsyncPaymux,
    AuthenticationError,
    Balance,
    ConflictError,
    Event,
    IdempotencyKeyReusedError,
    InsufficientFundsError,
    NotFoundError,
    Paymux,
    Transfer,
    TransferStatus,
    UnprocessableEntityError,
)

from paymux.devstack import Stack

ALICE = {"type": "alipay_account", "account": "client-alice@example.com", "name": "Alice"}
WECHAT = {"type": "wechat_openid", "account": "o_client_user_1"}


@pytest.fixture
def operator(stack: Stack) -> Iterator[Paymux]:
    with Paymux(api_key=stack.admin_key, base_url=stack.gateway_url) as client:
        yield client


def new_merchant(operator: Paymux, stack: Stack, funds: int) -> Paymux:
    merchant = operator.merchants.create(name="Client library merchant")
    assert merchant.secret_key and merchant.id.startswith("mer_")
    if funds:
        topup = operator.merchants.topup(merchant.id, amount=funds, currency="CNY")
        assert topup.amount == funds and topup.merchant_id == merchant.id
    return Paymux(api_key=merchant.secret_key, base_url=stack.gateway_url)


def test_create_retrieve_list_and_balance(operator: Paymux, stack: Stack) -> None:
    client = new_merchant(operator, stack, funds=1_000_000)
    created = [
        client.transfers.create(amount=100 + n, currency="CNY", payee=ALICE, metadata={"n": str(n)})
        for n in range(5)
    ]
    created.append(client.transfers.create(amount=200, currency="CNY", payee=WECHAT))
    for t in created:
        assert isinstance(t, Transfer)
        assert t.status == TransferStatus.SUCCEEDED and t.is_final
        assert t.payee.account != ALICE["account"]  # masked by the gateway
    assert created[0].metadata == {"n": "0"}
    fetched = client.transfers.retrieve(created[0].id)
    assert (fetched.id, fetched.status, fetched.amount) == (created[0].id, "succeeded", 100)

    # Auto-pagination: 6 transfers, pages of 2, newest first.
    listed = [t.id for t in client.transfers.list(page_size=2)]
    assert listed == [t.id for t in reversed(created)]
    assert [t.id for t in client.transfers.list(channel="wechat")] == [created[-1].id]

    fees = sum(t.fee for t in created)
    sent = sum(t.amount for t in created)
    balance = client.balance.retrieve()
    assert isinstance(balance, Balance)
    assert (balance.available, balance.held) == (1_000_000 - sent - fees, 0)
    txns = list(client.balance_transactions.list(page_size=3))
    assert sum(x.available_change for x in txns) == balance.available

    quote = client.transfers.quote(amount=10_000, currency="CNY", payee=ALICE)
    assert quote.total == quote.amount + quote.fee and quote.channel == "alipay"

    today = datetime.now(UTC).date()
    report = client.reports.fees(from_=today - timedelta(days=1), to=today + timedelta(days=1))
    assert sum(line.fees for line in report.totals) == fees
    assert all(line.channel_cost is None for line in report.data)  # operators only
    csv_text = client.reports.fees_csv(
        from_=today - timedelta(days=1), to=today + timedelta(days=1)
    )
    assert csv_text.startswith("line,")


def test_idempotency_and_typed_errors(operator: Paymux, stack: Stack) -> None:
    client = new_merchant(operator, stack, funds=10_000)
    key = "order-" + uuid.uuid4().hex
    first = client.transfers.create(amount=500, currency="CNY", payee=ALICE, idempotency_key=key)
    again = client.transfers.create(amount=500, currency="CNY", payee=ALICE, idempotency_key=key)
    assert again.id == first.id
    assert len(list(client.transfers.list())) == 1

    with pytest.raises(IdempotencyKeyReusedError) as reused:
        client.transfers.create(amount=501, currency="CNY", payee=ALICE, idempotency_key=key)
    assert reused.value.status == 422 and reused.value.code == "idempotency_key_reused"

    with pytest.raises(InsufficientFundsError) as poor:
        client.transfers.create(amount=1_000_000, currency="CNY", payee=ALICE)
    assert poor.value.code == "insufficient_funds" and poor.value.detail

    with pytest.raises(NotFoundError) as missing:
        client.transfers.retrieve("tr_does_not_exist")
    assert missing.value.status == 404 and missing.value.request_id

    with pytest.raises(UnprocessableEntityError) as invalid:
        client.transfers.create(amount=100, currency="CNY", payee={"type": "carrier_pigeon"})
    assert invalid.value.code == "validation_error"

    with pytest.raises(AuthenticationError):
        Paymux(api_key="sk_wrong", base_url=stack.gateway_url).balance.retrieve()

    failed = client.transfers.create(
        amount=100, currency="CNY", payee={**ALICE, "account": "fail-client@example.com"}
    )
    assert failed.status == TransferStatus.FAILED and failed.failure_code


class Receiver:
    """Keeps the raw body and headers of every webhook POST it gets."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.got.append((body, dict(self.headers.items())))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"


def test_webhooks_verify_real_deliveries_and_events(operator: Paymux, stack: Stack) -> None:
    client = new_merchant(operator, stack, funds=10_000)
    receiver = Receiver()
    try:
        endpoint = client.webhook_endpoints.create(
            url=receiver.url, event_types=["transfer.succeeded", "transfer.failed"]
        )
        assert endpoint.secret and endpoint.secret.startswith("whsec_")
        t = client.transfers.create(amount=300, currency="CNY", payee=ALICE)
        deadline = time.monotonic() + 20
        while not receiver.got and time.monotonic() < deadline:
            time.sleep(0.1)
        assert receiver.got, "no webhook arrived"
        body, headers = receiver.got[0]
        event = client.webhooks.verify(body, headers, endpoint.secret)
        assert isinstance(event, Event) and event.type.startswith("transfer.")
        carried = event.transfer()
        assert carried is not None and carried.id == t.id

        events = list(client.events.list(type=event.type))
        assert event.id in {e.id for e in events}
        detail = client.events.retrieve(event.id)
        assert detail.deliveries and detail.deliveries[0].endpoint_id == endpoint.id
        redelivery = client.events.redeliver(event.id)
        assert redelivery.event_id == event.id
        assert [e.id for e in client.webhook_endpoints.list()] == [endpoint.id]
        rotated = client.webhook_endpoints.rotate_secret(endpoint.id, overlap_seconds=0)
        assert rotated.secret and rotated.secret != endpoint.secret
        assert list(client.webhook_endpoints.attempts(endpoint.id))
        client.webhook_endpoints.delete(endpoint.id)
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


async def test_async_client_against_the_stack(operator: Paymux, stack: Stack) -> None:
    sync = new_merchant(operator, stack, funds=100_000)
    key = sync._headers["Authorization"].split()[1]
    async with AsyncPaymux(api_key=key, base_url=stack.gateway_url) as client:
        made = [
            await client.transfers.create(amount=100 + n, currency="CNY", payee=ALICE)
            for n in range(3)
        ]
        assert all(t.status == "succeeded" for t in made)
        ids = [t.id async for t in client.transfers.list(page_size=1)]
        assert ids == [t.id for t in reversed(made)]
        balance = await client.balance.retrieve()
        assert balance.available == 100_000 - sum(t.amount + t.fee for t in made)


def created_ok(client: Paymux) -> Transfer:
    return client.transfers.create(amount=100, currency="CNY", payee=ALICE)


def test_cancel_and_batches(operator: Paymux, stack: Stack) -> None:
    client = new_merchant(operator, stack, funds=100_000)
    waiting = client.transfers.create(
        amount=1500,
        currency="CNY",
        payee={"type": "wechat_openid", "account": f"o_confirm_{uuid.uuid4().hex[:12]}"},
    )
    assert waiting.status == TransferStatus.REQUIRES_CONFIRMATION
    assert waiting.next_action and waiting.next_action["wechat"]["package_info"]
    canceled = client.transfers.cancel(waiting.id)
    assert canceled.id == waiting.id
    assert canceled.status == TransferStatus.CANCELED and canceled.is_final
    with pytest.raises(ConflictError) as refused:  # a final transfer cannot be canceled
        client.transfers.cancel(created_ok(client).id)
    assert refused.value.code == "transfer_not_cancelable"

    batch = client.transfer_batches.create(
        items=[
            {"reference": f"b-{n}", "amount": 100 + n, "currency": "CNY", "payee": ALICE}
            for n in range(3)
        ]
    )
    assert batch.item_count == 3 and batch.totals.amount == 303
    deadline = time.monotonic() + 30
    while client.transfer_batches.retrieve(batch.id).status != "completed":
        assert time.monotonic() < deadline, "batch did not complete"
        time.sleep(0.2)
    items = list(client.transfer_batches.items(batch.id, page_size=2))
    assert [i.reference for i in items] == ["b-0", "b-1", "b-2"]
    assert all(i.transfer is not None and i.transfer.status == "succeeded" for i in items)
