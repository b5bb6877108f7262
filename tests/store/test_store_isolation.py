"""A merchant key reaches no other merchant's object, through ANY route of the API.

The test walks every route the application serves (a new route is covered without editing
this file, unless it has a path parameter this file does not know: then it fails and asks
for one), calls it with merchant A's unrestricted key aimed at merchant B's objects, and
checks that no response carries B's ids and that B's objects are unchanged afterwards.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from paymux.api.app import create_app
from paymux.domain.access import Principal, Role
from paymux.domain.outcomes import Outcome
from paymux.service import access
from paymux.service.access import Authenticator
from paymux.service.batches import NewItem, create_batch
from paymux.service.gateway import Gateway
from paymux.service.merchants import create_merchant
from paymux.service.transfers import NewTransfer
from paymux.service.webhook_endpoints import create_endpoint, get_endpoint, list_events
from paymux.settings import Settings
from tests.store.store_support import topup, transfer

ADMIN = Principal("key_admin_env", "operator", None, role=Role.admin)
# Bodies that pass validation, so a refusal proves isolation rather than a bad request.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/webhook_endpoints/{endpoint_id}"): {"description": "hijacked"},
    ("POST", "/v1/webhook_endpoints/{endpoint_id}/rotate_secret"): {},
    ("POST", "/v1/events/{event_id}/redeliver"): {},
    ("POST", "/v1/api_keys/{key_id}/roll"): {"overlap_seconds": 0},
}


def every_route(app: FastAPI) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for item in app.routes:
        contexts = getattr(item, "effective_route_contexts", None)
        routes = list(contexts() if callable(contexts) else contexts) if contexts else [item]
        for route in routes:
            path = getattr(route, "path", None)
            if not path or path.startswith(("/docs", "/redoc")):
                continue
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    found.append((method, path))
    return sorted(set(found))


async def test_a_merchant_key_reaches_no_other_merchants_object_on_any_route(
    gw: Gateway, store_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gw.settings, "webhook_allow_http", True)
    monkeypatch.setattr(gw.settings, "webhook_allow_private", True)
    a_row, a_secret = await create_merchant(gw, "merchant A", ADMIN)
    b_row, b_secret = await create_merchant(gw, "merchant B", ADMIN)
    b_id = b_row["id"]
    for merchant_id in (a_row["id"], b_id):
        await topup(gw, merchant_id, 1_000_000)
    b_transfer = (await transfer(gw, b_id, 1000, Outcome.SUCCEEDED)).transfer
    b_endpoint, _ = await create_endpoint(
        gw, b_id, url="http://127.0.0.1:9/b", event_types=["*"], description="B's"
    )
    b_events, _ = await list_events(gw, b_id, limit=5, starting_after=None, event_type=None)
    b_key, b_key_secret = await access.create_merchant_key(
        gw, ADMIN, b_id, name="B's second", scopes=None
    )
    item = NewTransfer(
        amount=100,
        currency="CNY",
        payee_type="alipay_account",
        payee_account="b-batch@example.com",
        payee_name=None,
        channel=None,
        description=None,
    )
    b_batch = (
        await create_batch(
            gw,
            b_id,
            uuid.uuid4().hex,
            uuid.uuid4().hex,
            [NewItem(reference="b-1", transfer=item, body={"amount": 100})],
            all_or_nothing=False,
        )
    ).batch
    values = {
        "batch_id": b_batch.id,
        "transfer_id": b_transfer.id,
        "endpoint_id": b_endpoint["id"],
        "event_id": b_events[0]["id"],
        "key_id": b_key.id,
        "merchant_id": b_id,
        "operator_id": "op_" + uuid.uuid4().hex,
        # Operator-only objects (no merchant owns them): any id, the key must be refused.
        "run_id": "rr_" + uuid.uuid4().hex,
        "discrepancy_id": "dis_" + uuid.uuid4().hex,
        # No delivery exists here (webhook workers are off in the store stack): a made-up id
        # only proves the route refuses, not isolation of a real delivery.
        "delivery_id": "wd_" + uuid.uuid4().hex,
        "channel": "no_such_channel",  # the fake channels do not parse callbacks
    }
    b_ids = {b_id, b_transfer.id, b_endpoint["id"], b_events[0]["id"], b_key.id, b_batch.id}

    app = create_app(store_settings)
    app.state.gateway = gw
    app.state.merchant_auth = Authenticator(gw)
    routes = every_route(app)
    assert len(routes) > 30  # the walk really found the API
    transport = httpx.ASGITransport(app=app, client=("192.0.2.77", 1000))
    headers = {"Authorization": f"Bearer {a_secret}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://paymux.test") as client:
        # Signed in to the dashboard too, so its pages are walked as merchant A.
        form = await client.get("/dashboard/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None, "the dashboard sign-in form changed"
        signed_in = await client.post(
            "/dashboard/login", data={"csrf_token": token.group(1), "key": a_secret}
        )
        assert signed_in.status_code == 303, signed_in.text
        for method, template in routes:
            names = re.findall(r"{(\w+)(?::\w+)?}", template)
            unknown = [n for n in names if n not in values]
            assert not unknown, f"{template}: give this test a value for {unknown}"
            path = re.sub(r"{(\w+)(?::\w+)?}", lambda m: values[m.group(1)], template)
            resp = await client.request(
                method,
                path,
                json=BODIES.get((method, template), {}) if method != "GET" else None,
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
            where = f"{method} {template} -> {resp.status_code}"
            assert resp.status_code < 500, where
            # A 404 may echo the id it was asked for; any other B id is a leak.
            leaked = [i for i in b_ids if i in resp.text and i not in path]
            assert not leaked, f"{where} shows merchant B's {leaked}"
            targets_b = any(
                n in names for n in ("transfer_id", "endpoint_id", "event_id", "key_id")
            )
            if targets_b or "merchant_id" in names:
                assert resp.status_code in (403, 404), where

    # B's objects are as they were.
    endpoint = await get_endpoint(gw, b_id, b_endpoint["id"])
    assert endpoint["description"] == "B's" and endpoint["deleted_at"] is None
    worker = Authenticator(gw)
    for secret in (b_secret, b_key_secret):
        ok = await worker.authenticate(secret, "192.0.2.78", money_moving=False)
        assert ok.principal.merchant_id == b_id
