"""Dashboard sessions against the access layer, over the in-process app: a revoked key ends
its sessions at once, a restricted key opens only the pages its scopes allow, a viewer
operator reads but cannot move money, and a form without its CSRF token changes nothing."""

from __future__ import annotations

import re

import httpx

from paymux.service.gateway import Gateway
from tests.store.store_support import ADMIN, ADMIN_KEY, bearer, new_funded_merchant


async def sign_in(api: httpx.AsyncClient, key: str) -> httpx.AsyncClient:
    """A fresh browser-like client (own cookie jar) signed in with ``key``."""
    client = httpx.AsyncClient(transport=api._transport, base_url=str(api.base_url))
    form = await client.get("/dashboard/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    done = await client.post("/dashboard/login", data={"key": key, "csrf_token": token.group(1)})
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/dashboard/overview"
    return client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


async def test_revoking_the_key_ends_the_dashboard_session(
    gw: Gateway, api: httpx.AsyncClient
) -> None:
    merchant = await new_funded_merchant(gw, 100_000)
    created = await api.post(
        f"/v1/merchants/{merchant}/api_keys", json={"name": "dashboard"}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    key = created.json()
    browser = await sign_in(api, key["secret"])
    assert (await browser.get("/dashboard/overview")).status_code == 200

    revoked = await api.post(f"/v1/api_keys/{key['id']}/revoke", headers=bearer(key["secret"]))
    assert revoked.status_code == 200, revoked.text
    after = await browser.get("/dashboard/overview")
    assert after.status_code == 303
    assert after.headers["location"] == "/dashboard/login"


async def test_a_restricted_key_opens_only_what_its_scopes_allow(
    gw: Gateway, api: httpx.AsyncClient
) -> None:
    merchant = await new_funded_merchant(gw, 100_000)
    created = await api.post(
        f"/v1/merchants/{merchant}/api_keys",
        json={"name": "reports only", "scopes": ["reports:read"]},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    browser = await sign_in(api, created.json()["secret"])
    assert (await browser.get("/dashboard/reports/fees")).status_code == 200
    for path in ("/dashboard/overview", "/dashboard/transfers", "/dashboard/balance"):
        assert (await browser.get(path)).status_code == 403, path
    page = await browser.get("/dashboard/reports/fees")
    webhooks = await browser.post(
        "/dashboard/webhooks",
        data={"url": "https://example.com/hook", "csrf_token": csrf_of(page.text)},
    )
    assert webhooks.status_code == 403


async def test_a_viewer_reads_but_cannot_top_up_and_forms_need_their_token(
    gw: Gateway, api: httpx.AsyncClient
) -> None:
    merchant = await new_funded_merchant(gw, 100_000)
    viewer = await api.post("/v1/operators", json={"name": "Vera", "role": "viewer"}, headers=ADMIN)
    assert viewer.status_code == 201, viewer.text
    browser = await sign_in(api, viewer.json()["api_key"]["secret"])
    page = await browser.get(f"/dashboard/merchants/{merchant}")
    assert page.status_code == 200
    form = {"amount": "10.00", "idempotency_key": "k1", "csrf_token": csrf_of(page.text)}
    refused = await browser.post(f"/dashboard/merchants/{merchant}/topups", data=form)
    assert refused.status_code == 403
    assert "operator role" in refused.text

    admin = await sign_in(api, ADMIN_KEY)
    page = await admin.get(f"/dashboard/merchants/{merchant}")
    before = (await api.get(f"/v1/merchants/{merchant}/balance", headers=ADMIN)).json()
    no_token = {"amount": "10.00", "idempotency_key": "k2"}
    assert (
        await admin.post(f"/dashboard/merchants/{merchant}/topups", data=no_token)
    ).status_code == 403
    wrong = {**no_token, "csrf_token": "x" * 43}
    assert (
        await admin.post(f"/dashboard/merchants/{merchant}/topups", data=wrong)
    ).status_code == 403
    cross_site = await admin.post(
        f"/dashboard/merchants/{merchant}/topups",
        data={**no_token, "csrf_token": csrf_of(page.text)},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    after = (await api.get(f"/v1/merchants/{merchant}/balance", headers=ADMIN)).json()
    assert after == before  # nothing moved
    ok = await admin.post(
        f"/dashboard/merchants/{merchant}/topups",
        data={**no_token, "csrf_token": csrf_of(page.text)},
    )
    assert ok.status_code == 303
    paid = (await api.get(f"/v1/merchants/{merchant}/balance", headers=ADMIN)).json()
    assert paid["available"] == before["available"] + 1_000
