"""paymux_client without a gateway: retries with one Idempotency-Key, Retry-After, typed
errors, pagination, tolerant models, webhook verification (respx for the HTTP edges)."""

from __future__ import annotations

import time

import httpx
import pytest
import respx
from paymux_client import (
    APIConnectionError,
    AsyncPaymux,
    ConflictError,
    IdempotencyKeyReusedError,
    InsufficientFundsError,
    NotFoundError,
    Paymux,
    ServerError,
    Transfer,
    TransferStatus,
    WebhookVerificationError,
)
from paymux_client._core import RetryAfterWait
from paymux_client.errors import ServiceUnavailableError
from tenacity import RetryCallState

from paymux.webhooks.signing import generate_secret, sign

BASE = "http://gw.test"
PAYEE = {"type": "alipay_account", "account": "alice@example.com", "name": "Alice"}


def transfer_json(tid: str = "tr_1", status: str = "succeeded", **extra: object) -> dict:
    return {
        "id": tid,
        "object": "transfer",
        "status": status,
        "amount": 1234,
        "currency": "CNY",
        "fee": 12,
        "payee": {"type": "alipay_account", "account": "al***@example.com", "name": "A****"},
        "channel": "alipay",
        "channel_reference": "P" + tid,
        "channel_order_id": "2026",
        "failure_code": None,
        "failure_message": None,
        "description": None,
        "metadata": {},
        "created_at": "2026-11-26T10:00:00Z",
        "updated_at": "2026-11-26T10:00:01Z",
        "completed_at": None,
        **extra,
    }


def problem(status: int, code: str, detail: str = "no", **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "type": f"https://paymux.dev/problems/{code}",
            "title": "t",
            "status": status,
            "detail": detail,
            "code": code,
        },
        headers={"content-type": "application/problem+json", "x-request-id": "req_x", **headers},
    )


@pytest.fixture
def client() -> Paymux:
    # No real sleeping between retries in unit tests.
    c = Paymux(api_key="sk_test", base_url=BASE)
    c._wait = lambda state: 0.0  # type: ignore[assignment]
    return c


@respx.mock
def test_create_generates_one_key_and_retries_network_409_and_5xx_with_it(
    client: Paymux,
) -> None:
    route = respx.post(f"{BASE}/v1/transfers").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("answer lost"),
            problem(409, "idempotency_request_in_flight"),
            problem(503, "not_ready", **{"retry-after": "0"}),
            httpx.Response(201, json=transfer_json()),
        ]
    )
    client.max_retries = 5
    t = client.transfers.create(amount=1234, currency="CNY", payee=PAYEE)
    assert isinstance(t, Transfer) and t.id == "tr_1" and t.status == TransferStatus.SUCCEEDED
    keys = {call.request.headers["idempotency-key"] for call in route.calls}
    assert len(route.calls) == 5 and len(keys) == 1
    assert next(iter(keys)).startswith("pmx_")
    assert route.calls[0].request.headers["authorization"] == "Bearer sk_test"


@respx.mock
def test_given_key_is_used_and_retries_stop_at_max(client: Paymux) -> None:
    route = respx.post(f"{BASE}/v1/transfers").mock(return_value=problem(500, "internal_error"))
    client.max_retries = 2
    with pytest.raises(ServerError) as info:
        client.transfers.create(amount=1, currency="CNY", payee=PAYEE, idempotency_key="order-7")
    assert info.value.status == 500 and info.value.code == "internal_error"
    assert info.value.request_id == "req_x"
    assert len(route.calls) == 3
    assert {c.request.headers["idempotency-key"] for c in route.calls} == {"order-7"}


@respx.mock
def test_client_errors_are_typed_and_not_retried(client: Paymux) -> None:
    route = respx.post(f"{BASE}/v1/transfers").mock(
        side_effect=[
            problem(422, "idempotency_key_reused", "this key was used with another body"),
            problem(402, "insufficient_funds", "available balance does not cover"),
        ]
    )
    with pytest.raises(IdempotencyKeyReusedError) as reused:
        client.transfers.create(amount=1, currency="CNY", payee=PAYEE)
    assert reused.value.code == "idempotency_key_reused"
    assert reused.value.status == 422
    assert reused.value.detail == "this key was used with another body"
    with pytest.raises(InsufficientFundsError) as poor:
        client.transfers.create(amount=1, currency="CNY", payee=PAYEE)
    assert poor.value.code == "insufficient_funds"
    assert len(route.calls) == 2


@respx.mock
def test_unkeyed_post_is_not_resent_after_an_unknown_outcome(client: Paymux) -> None:
    route = respx.post(f"{BASE}/v1/webhook_endpoints").mock(
        side_effect=httpx.ReadTimeout("answer lost")
    )
    with pytest.raises(APIConnectionError):
        client.webhook_endpoints.create(url="https://example.com/hook")
    assert len(route.calls) == 1  # a second POST could create a second endpoint


@respx.mock
def test_exhausted_network_retries_raise_connection_error(client: Paymux) -> None:
    respx.get(f"{BASE}/v1/transfers/tr_1").mock(side_effect=httpx.ConnectError("down"))
    client.max_retries = 1
    with pytest.raises(APIConnectionError):
        client.transfers.retrieve("tr_1")


def test_retry_after_is_honoured_and_bounded() -> None:
    wait = RetryAfterWait(initial=0.5, maximum=8)

    def state_with(exc: BaseException) -> RetryCallState:
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.set_exception((type(exc), exc, None))
        return state

    e503 = ServiceUnavailableError(503, "not_ready", "x", retry_after=7.0)
    assert wait(state_with(e503)) == 7.0
    huge = ServiceUnavailableError(503, "not_ready", "x", retry_after=10_000.0)
    assert wait(state_with(huge)) == 60.0
    plain = ConflictError(409, "in_flight", "x")
    assert 0 <= wait(state_with(plain)) <= 8.5


@respx.mock
def test_retry_after_header_is_parsed_from_the_response() -> None:
    c = Paymux(api_key="sk", base_url=BASE, max_retries=0)
    respx.get(f"{BASE}/v1/balance").mock(
        return_value=problem(503, "not_ready", **{"retry-after": "3"})
    )
    with pytest.raises(ServiceUnavailableError) as info:
        c.balance.retrieve()
    assert info.value.retry_after == 3.0


@respx.mock
def test_list_iterates_every_page_with_the_cursor(client: Paymux) -> None:
    pages = {
        None: {
            "object": "list",
            "data": [transfer_json("tr_3"), transfer_json("tr_2")],
            "has_more": True,
            "next_cursor": "tr_2",
        },
        "tr_2": {
            "object": "list",
            "data": [transfer_json("tr_1")],
            "has_more": False,
            "next_cursor": None,
        },
    }

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.params["status"] == "succeeded"
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    route = respx.get(f"{BASE}/v1/transfers").mock(side_effect=answer)
    ids = [t.id for t in client.transfers.list(status="succeeded", page_size=2)]
    assert ids == ["tr_3", "tr_2", "tr_1"]
    assert len(route.calls) == 2
    assert route.calls[0].request.url.params["limit"] == "2"


@respx.mock
def test_models_tolerate_new_fields_and_statuses(client: Paymux) -> None:
    respx.get(f"{BASE}/v1/transfers/tr_9").mock(
        return_value=httpx.Response(
            200, json=transfer_json("tr_9", status="on_hold_by_bank", brand_new={"x": 1})
        )
    )
    t = client.transfers.retrieve("tr_9")
    assert t.status == "on_hold_by_bank" and not t.is_final
    assert t.model_extra == {"brand_new": {"x": 1}}


@respx.mock
def test_not_found_is_typed(client: Paymux) -> None:
    respx.get(f"{BASE}/v1/transfers/nope").mock(
        return_value=problem(404, "not_found", "no transfer nope")
    )
    with pytest.raises(NotFoundError) as info:
        client.transfers.retrieve("nope")
    assert (info.value.status, info.value.code) == (404, "not_found")


def test_amount_must_be_integer_minor_units(client: Paymux) -> None:
    for bad in (12.34, "1234", True):
        with pytest.raises(TypeError):
            client.transfers.create(amount=bad, currency="CNY", payee=PAYEE)  # type: ignore[arg-type]


@respx.mock
async def test_async_client_creates_with_retries_and_paginates() -> None:
    create = respx.post(f"{BASE}/v1/transfers").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json=transfer_json())]
    )
    respx.get(f"{BASE}/v1/transfers").mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "object": "list",
                    "data": [transfer_json("tr_2")],
                    "has_more": True,
                    "next_cursor": "tr_2",
                },
            ),
            httpx.Response(
                200,
                json={
                    "object": "list",
                    "data": [transfer_json("tr_1")],
                    "has_more": False,
                    "next_cursor": None,
                },
            ),
        ]
    )
    async with AsyncPaymux(api_key="sk", base_url=BASE) as client:
        client._wait = lambda state: 0.0  # type: ignore[assignment]
        t = await client.transfers.create(amount=1234, currency="CNY", payee=PAYEE)
        assert t.id == "tr_1"
        assert len({c.request.headers["idempotency-key"] for c in create.calls}) == 1
        ids = [x.id async for x in client.transfers.list()]
    assert ids == ["tr_2", "tr_1"]


def test_webhook_verify_accepts_paymux_signatures_and_refuses_tampering(client: Paymux) -> None:
    secret = generate_secret()
    body = (
        b'{"id":"evt_1","type":"transfer.succeeded","created_at":"2026-11-26T10:00:00Z",'
        b'"data":{"object":' + __import__("json").dumps(transfer_json()).encode() + b"}}"
    )
    ts = int(time.time())
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, "evt_1", ts, body),
    }
    event = client.webhooks.verify(body, headers, secret)
    assert event.type == "transfer.succeeded"
    transfer = event.transfer()
    assert transfer is not None and transfer.id == "tr_1"
    # Header names in any case, as frameworks deliver them.
    assert client.webhooks.verify(body, {k.title(): v for k, v in headers.items()}, secret).id
    with pytest.raises(WebhookVerificationError):
        client.webhooks.verify(body.replace(b"1234", b"9999"), headers, secret)
    with pytest.raises(WebhookVerificationError):
        client.webhooks.verify(body, headers, generate_secret())
    old = {
        **headers,
        "webhook-timestamp": str(ts - 3600),
        "webhook-signature": sign(secret, "evt_1", ts - 3600, body),
    }
    with pytest.raises(WebhookVerificationError):
        client.webhooks.verify(body, old, secret)
    with pytest.raises(WebhookVerificationError):
        client.webhooks.verify(body, {"webhook-id": "evt_1"}, secret)


@respx.mock
def test_business_conflict_is_not_retried(client: Paymux) -> None:
    route = respx.post(f"{BASE}/v1/transfers/tr_1/cancel").mock(
        return_value=problem(409, "transfer_not_cancelable", "already succeeded")
    )
    with pytest.raises(ConflictError) as info:
        client.transfers.cancel("tr_1")
    assert info.value.code == "transfer_not_cancelable"
    assert len(route.calls) == 1
