"""Hostile and careless input (issue 11): every request below once crashed the gateway
(500), exhausted it, or was accepted as nonsense. Each must now be a clean problem document
with the right status, and change nothing."""

from __future__ import annotations

import json
import unicodedata
import uuid
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from paymux.api import guards
from paymux.service.merchants import create_merchant
from tests.store.store_support import ADMIN

pytestmark = pytest.mark.store

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body


async def merchant_key(gw: Any) -> dict[str, str]:
    _row, secret = await create_merchant(gw, "hostile input")
    return {"Authorization": f"Bearer {secret}"}


def transfer_body(**payee: Any) -> dict[str, Any]:
    return {
        "amount": 100,
        "currency": "CNY",
        "payee": {"type": "alipay_account", "account": "payee@example.com", **payee},
    }


async def post_json(
    api: httpx.AsyncClient, path: str, raw: bytes, headers: dict[str, str]
) -> httpx.Response:
    return await api.post(
        path,
        content=raw,
        headers={
            **headers,
            "Content-Type": "application/json",
            "Idempotency-Key": uuid.uuid4().hex,
        },
    )


# --- 500s -------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [40, 1_000, 100_000])
async def test_deeply_nested_json_is_a_422_not_a_500(
    api: httpx.AsyncClient, gw: Any, depth: int
) -> None:
    raw = b'{"amount": 100, "currency": "CNY", "payee": ' + b"[" * depth + b"]" * depth + b"}"
    r = await post_json(api, "/v1/transfers", raw, await merchant_key(gw))
    assert_problem(r, 422 if len(raw) <= 64 * 1024 else 413)


@pytest.mark.parametrize("field", ["fixed", "minimum", "maximum", "bps"])
@pytest.mark.parametrize("value", [2**63, 2**63 - 1, 10**30])
async def test_fee_rule_integers_beyond_the_column_are_refused(
    api: httpx.AsyncClient, field: str, value: int
) -> None:
    rule = {"kind": "price", "channel": "alipay", "payee_type": "alipay_account", field: value}
    r = await api.post("/v1/fee_schedule/rules", json=rule, headers=ADMIN)
    assert_problem(r, 422, "validation_error")


async def test_fee_rule_bps_with_too_many_digits_is_refused(api: httpx.AsyncClient) -> None:
    rule = {"kind": "price", "channel": "alipay", "payee_type": "alipay_account"}
    r = await api.post(
        "/v1/fee_schedule/rules", json={**rule, "bps": "0.000000000000000000001"}, headers=ADMIN
    )
    assert_problem(r, 422, "validation_error")
    raw = json.dumps(rule)[:-1] + ', "bps": 1.00000000000000000000001}'
    r = await api.post(
        "/v1/fee_schedule/rules",
        content=raw.encode(),
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert_problem(r, 422, "validation_error")


CONTROL = ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9f"]


@pytest.mark.parametrize("char", CONTROL)
@pytest.mark.parametrize("where", ["account", "name", "description"])
async def test_control_characters_in_transfer_text_are_refused(
    api: httpx.AsyncClient, gw: Any, char: str, where: str
) -> None:
    body = transfer_body(name="Zhang San")
    if where == "description":
        body["description"] = f"rent{char}"
    else:
        body["payee"][where] = f"x{char}y" if where == "name" else f"payee{char}@example.com"
    r = await post_json(api, "/v1/transfers", json.dumps(body).encode(), await merchant_key(gw))
    assert_problem(r, 422, "validation_error")


@pytest.mark.parametrize("char", CONTROL)
async def test_control_characters_in_a_merchant_name_are_refused(
    api: httpx.AsyncClient, char: str
) -> None:
    r = await api.post("/v1/merchants", json={"name": f"Shop{char}"}, headers=ADMIN)
    assert_problem(r, 422, "validation_error")


async def test_text_is_length_checked_after_nfc_normalisation(
    api: httpx.AsyncClient, gw: Any
) -> None:
    decomposed = "e\u0301" * 64  # 128 code points, 64 characters once composed (NFC)
    headers = await merchant_key(gw)
    ok = await api.post("/v1/transfers/quote", json=transfer_body(name=decomposed), headers=headers)
    assert ok.status_code == 200, ok.text
    too_long = await api.post(
        "/v1/transfers/quote", json=transfer_body(name="e\u0301" * 65), headers=headers
    )
    assert_problem(too_long, 422, "validation_error")
    created = await api.post("/v1/merchants", json={"name": decomposed}, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == unicodedata.normalize("NFC", decomposed)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/transfers/tr_%00",
        "/v1/transfers?cursor=%00",
        "/v1/transfers?channel=%C2%85",
        "/v1/events?type=%00",
        "/v1/webhook_endpoints/%00/attempts",
    ],
)
async def test_control_characters_in_the_url_are_refused(
    api: httpx.AsyncClient, gw: Any, path: str
) -> None:
    r = await api.get(path, headers=await merchant_key(gw))
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith(PROBLEM)


# --- memory -----------------------------------------------------------------------------


async def test_a_10_mb_transfer_body_is_413(api: httpx.AsyncClient, gw: Any) -> None:
    body = transfer_body()
    body["description"] = "x" * (10 * 1024 * 1024)
    r = await post_json(api, "/v1/transfers", json.dumps(body).encode(), await merchant_key(gw))
    assert_problem(r, 413, "payload_too_large")


async def test_a_large_declared_length_is_413_before_reading(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/v1/merchants",
        content=b"{}",
        headers={**ADMIN, "Content-Type": "application/json", "Content-Length": "300000000"},
    )
    assert_problem(r, 413, "payload_too_large")


async def test_a_large_callback_body_is_413(api: httpx.AsyncClient) -> None:
    r = await api.post("/callbacks/alipay", content=b"a=" + b"x" * (1024 * 1024))
    assert r.status_code == 413


# --- accepted nonsense ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0.5", "0", "1700000000", "2026-01-01", "2026-01-01T00:00:00"])
async def test_query_date_times_must_be_rfc3339_with_an_offset(
    api: httpx.AsyncClient, gw: Any, value: str
) -> None:
    r = await api.get("/v1/transfers", params={"created_lt": value}, headers=await merchant_key(gw))
    assert_problem(r, 422, "validation_error")


async def test_query_date_time_with_offset_is_accepted(api: httpx.AsyncClient, gw: Any) -> None:
    r = await api.get(
        "/v1/transfers",
        params={"created_lt": "2026-01-01T00:00:00+08:00", "created_gte": "2020-01-01T00:00:00Z"},
        headers=await merchant_key(gw),
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("value", [0, 1.5, "0", "2026-01-01T00:00:00", True])
async def test_body_date_times_must_be_rfc3339_with_an_offset(
    api: httpx.AsyncClient, value: Any
) -> None:
    rule = {
        "kind": "price",
        "channel": "alipay",
        "payee_type": "alipay_account",
        "effective_at": value,
    }
    r = await api.post("/v1/fee_schedule/rules", json=rule, headers=ADMIN)
    assert_problem(r, 422, "validation_error")


async def test_fee_rule_for_unknown_merchant_or_channel_is_refused(api: httpx.AsyncClient) -> None:
    base = {"kind": "price", "channel": "alipay", "payee_type": "alipay_account", "fixed": 1}
    r = await api.post(
        "/v1/fee_schedule/rules", json={**base, "merchant_id": "mch_nope"}, headers=ADMIN
    )
    assert_problem(r, 422, "unknown_merchant")
    r = await api.post("/v1/fee_schedule/rules", json={**base, "channel": "paypal"}, headers=ADMIN)
    assert_problem(r, 422, "unknown_channel")
    schedule = (await api.get("/v1/fee_schedule", headers=ADMIN)).json()["data"]
    assert all(e["channel"] != "paypal" for e in schedule)
    assert all(e.get("merchant_id") != "mch_nope" for e in schedule)


async def test_transfer_to_an_unconfigured_channel_is_refused(
    api: httpx.AsyncClient, gw: Any
) -> None:
    body = {**transfer_body(), "channel": "paypal"}
    r = await post_json(api, "/v1/transfers", json.dumps(body).encode(), await merchant_key(gw))
    assert 400 <= r.status_code < 500 and r.status_code != 402, r.text


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
async def test_json_must_be_sent_as_json(
    api: httpx.AsyncClient, gw: Any, content_type: str | None
) -> None:
    headers = {**await merchant_key(gw), "Idempotency-Key": uuid.uuid4().hex}
    if content_type is not None:
        headers["Content-Type"] = content_type
    r = await api.post("/v1/transfers", content=json.dumps(transfer_body()), headers=headers)
    assert_problem(r, 415, "unsupported_media_type")


async def test_json_with_charset_and_problem_suffix_types_are_json(
    api: httpx.AsyncClient, gw: Any
) -> None:
    r = await api.post(
        "/v1/transfers/quote",
        content=json.dumps(transfer_body()),
        headers={**await merchant_key(gw), "Content-Type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200, r.text


async def test_duplicate_json_keys_are_refused(api: httpx.AsyncClient, gw: Any) -> None:
    raw = (
        b'{"amount": 100, "amount": 1000000, "currency": "CNY",'
        b' "payee": {"type": "alipay_account", "account": "a@example.com"}}'
    )
    r = await post_json(api, "/v1/transfers", raw, await merchant_key(gw))
    assert_problem(r, 422, "validation_error")
    nested = (
        b'{"amount": 100, "currency": "CNY", "payee": {"type": "alipay_account",'
        b' "account": "a@example.com", "account": "b@example.com"}}'
    )
    r = await post_json(api, "/v1/transfers", nested, await merchant_key(gw))
    assert_problem(r, 422, "validation_error")


@pytest.mark.parametrize(
    "metadata",
    [{"k\x00": "v"}, {"k": "v\x00"}, {"k": "x" * 501}],
)
async def test_metadata_text_is_checked_too(
    api: httpx.AsyncClient, gw: Any, metadata: dict[str, str]
) -> None:
    body = {**transfer_body(), "metadata": metadata}
    r = await post_json(api, "/v1/transfers", json.dumps(body).encode(), await merchant_key(gw))
    assert_problem(r, 422, "validation_error")


# --- headers ----------------------------------------------------------------------------


async def test_a_pages_own_csp_gets_frame_ancestors(api: httpx.AsyncClient) -> None:
    async def page(_: Any) -> HTMLResponse:
        own = {"Content-Security-Policy": "default-src 'self'", "X-Frame-Options": "DENY"}
        return HTMLResponse("<p>hi</p>", headers=own)

    app = Starlette(routes=[Route("/dashboard", page)])
    guards.install(app)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://paymux.test"
    ) as client:
        r = await client.get("/dashboard")
    assert r.headers["content-security-policy"] == "default-src 'self'; frame-ancestors 'none'"
    assert r.headers["x-frame-options"] == "DENY"  # once, not "DENY, DENY"
    assert r.headers["strict-transport-security"].startswith("max-age=")
    assert r.headers["cache-control"] == "no-store"


async def test_audit_events_of_a_merchant_list_without_a_500(api: httpx.AsyncClient) -> None:
    # Found by the schemathesis run: the rows' keys were not plain str for orjson.
    m = (await api.post("/v1/merchants", json={"name": "audited"}, headers=ADMIN)).json()
    r = await api.get("/v1/audit_events", params={"merchant_id": m["id"]}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["data"], r.text


@pytest.mark.parametrize("value", ["0.5", "0", "2026-01-01"])
async def test_audit_filters_are_rfc3339_too(api: httpx.AsyncClient, value: str) -> None:
    r = await api.get("/v1/audit_events", params={"occurred_lt": value}, headers=ADMIN)
    assert_problem(r, 422, "validation_error")
