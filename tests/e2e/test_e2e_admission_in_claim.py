"""Money-moving POSTs fold the key's revocation check and rate limit into the idempotency
claim (one Redis round trip). These prove the folded path is as strict as the plain one:
a revoked key is refused at once, a limited request claims nothing, replays are free."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from paymux.devstack import Stack
from tests.e2e.conftest import Api, new_merchant


def _body(account: str = "alice@example.com") -> dict[str, Any]:
    return {
        "amount": 100,
        "currency": "CNY",
        "payee": {"type": "alipay_account", "account": account, "name": "Alice"},
    }


def _key_client(stack: Stack, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.gateway_url, timeout=30, headers={"Authorization": f"Bearer {secret}"}
    )


def _count_transfers(m: Api) -> int:
    """The merchant's transfers, read once its rate limit lets a GET through."""
    for _ in range(40):
        listed = m.get("/v1/transfers", params={"limit": 100})
        if listed.status_code != 429:
            break
        time.sleep(0.25)
    assert listed.status_code == 200, listed.text
    return len(listed.json()["data"])


def _post(client: httpx.Client, key: str) -> httpx.Response:
    return client.post("/v1/transfers", json=_body(), headers={"Idempotency-Key": key})


def test_a_revoked_key_cannot_create_even_when_its_worker_cached_it(
    stack: Stack, merchant: Api
) -> None:
    key = merchant.client.post("/v1/api_keys", json={"name": "payouts"}).json()
    with _key_client(stack, key["secret"]) as client:
        for _ in range(2):  # cached, and its version known: the next POST defers admission
            assert _post(client, uuid.uuid4().hex).status_code == 201
        revoked = merchant.client.post(f"/v1/api_keys/{key['id']}/revoke")
        assert revoked.status_code == 200, revoked.text
        idem = uuid.uuid4().hex
        refused = _post(client, idem)
        assert refused.status_code == 401, refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer")
    # Nothing was created under that key.
    assert _count_transfers(merchant) == 2


def test_a_rate_limited_create_claims_nothing_and_headers_are_sent(
    stack: Stack, admin: httpx.Client
) -> None:
    m = new_merchant(stack)
    admin.put(
        f"/v1/merchants/{m.merchant_id}/rate_limit", json={"per_second": 1, "burst": 3}
    ).raise_for_status()
    answers = [m.transfer(_body(), key=f"burst-{i}") for i in range(6)]
    statuses = [r.status_code for r in answers]
    assert statuses[:2] == [201, 201] and 429 in statuses, statuses
    ok = answers[0]
    assert ok.headers["ratelimit-policy"] == '"per-key";q=3;w=3'
    assert ok.headers["ratelimit"].startswith('"per-key";r=')
    limited = next(r for r in answers if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["code"] == "rate_limited"
    # The limited request's key was not claimed: once the bucket refills, the same key
    # creates exactly one transfer (not a 409, not a replay of nothing).
    limited_key = f"burst-{statuses.index(429)}"
    for _ in range(40):
        again = m.transfer(_body(), key=limited_key)
        if again.status_code != 429:
            break
        time.sleep(0.25)
    assert again.status_code == 201, again.text
    assert again.headers.get("idempotent-replayed") is None
    assert _count_transfers(m) == statuses.count(201) + 1


def test_replays_are_free_and_answer_without_a_rate_limit_charge(
    stack: Stack, admin: httpx.Client
) -> None:
    m = new_merchant(stack)
    admin.put(
        f"/v1/merchants/{m.merchant_id}/rate_limit", json={"per_second": 1, "burst": 2}
    ).raise_for_status()
    key = uuid.uuid4().hex
    assert m.transfer(_body(), key=key).status_code == 201
    assert m.transfer(_body(), key=key).status_code == 201  # the version is cached now
    replays = [m.transfer(_body(), key=key) for _ in range(6)]
    assert [r.status_code for r in replays] == [201] * 6
    assert all(r.headers.get("idempotent-replayed") == "true" for r in replays)
    # The bucket still holds a request: replays took nothing from it.
    fresh = m.transfer(_body(), key=uuid.uuid4().hex)
    assert fresh.status_code == 201, fresh.text


def test_creates_refused_by_validation_still_count_against_the_rate_limit(
    stack: Stack, admin: httpx.Client
) -> None:
    m = new_merchant(stack)
    admin.put(
        f"/v1/merchants/{m.merchant_id}/rate_limit", json={"per_second": 1, "burst": 3}
    ).raise_for_status()
    bad = [
        m.client.post(
            "/v1/transfers", json={"amount": "x"}, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        for _ in range(3)
    ]
    assert all(400 <= r.status_code < 500 and r.status_code != 429 for r in bad), [
        r.status_code for r in bad
    ]
    after = [m.transfer(_body()).status_code for _ in range(2)]
    assert 429 in after, after
