"""Keys, scopes, revocation, roll, operator roles, audit, rate limits and data at rest,
over real HTTP against the real stack."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from paymux.devstack import Stack
from paymux.sealing import new_kek_entry
from tests.e2e.conftest import Api, admin_client, make_stack, new_merchant


def _client(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.gateway_url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    )


def _transfer_body(account: str = "payee@example.com", name: str | None = None) -> dict:
    payee: dict[str, str] = {"type": "alipay_account", "account": account}
    if name:
        payee["name"] = name
    return {"amount": 1000, "currency": "CNY", "payee": payee}


def test_restricted_keys_are_refused_outside_their_scopes(stack: Stack, merchant: Api) -> None:
    created = merchant.client.post(
        "/v1/api_keys", json={"name": "reporting", "scopes": ["transfers:read"]}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith(body["prefix"]) and body["scopes"] == ["transfers:read"]
    with _client(stack, body["secret"]) as reader:
        assert reader.get("/v1/transfers").status_code == 200
        for resp in (
            reader.post("/v1/transfers", json=_transfer_body(), headers={"Idempotency-Key": "k1"}),
            reader.get("/v1/balance"),
            reader.post("/v1/api_keys", json={}),
            reader.get("/v1/webhook_endpoints"),
        ):
            assert resp.status_code == 403, resp.text
            assert resp.json()["code"] == "scope_missing"
    listed = merchant.client.get("/v1/api_keys").json()["data"]
    mine = next(k for k in listed if k["id"] == body["id"])
    assert mine["prefix"] == body["prefix"] and mine["last_used_at"] is not None
    assert all("secret" not in k and "key_hash" not in k for k in listed)


def test_a_restricted_key_cannot_mint_a_wider_key(stack: Stack, merchant: Api) -> None:
    limited = merchant.client.post(
        "/v1/api_keys", json={"scopes": ["keys:write", "transfers:read"]}
    ).json()
    with _client(stack, limited["secret"]) as client:
        wider = client.post("/v1/api_keys", json={"scopes": ["transfers:write"]})
        assert wider.status_code == 403 and wider.json()["code"] == "scope_escalation"
        unrestricted = client.post("/v1/api_keys", json={})
        assert unrestricted.status_code == 403
        narrower = client.post("/v1/api_keys", json={"scopes": ["transfers:read"]})
        assert narrower.status_code == 201


def test_revocation_is_immediate_and_401_says_bearer(stack: Stack, merchant: Api) -> None:
    key = merchant.client.post("/v1/api_keys", json={"name": "short-lived"}).json()
    with _client(stack, key["secret"]) as client:
        assert client.get("/v1/balance").status_code == 200  # now cached by the worker
        revoked = merchant.client.post(f"/v1/api_keys/{key['id']}/revoke")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        refused = client.get("/v1/balance")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "revoked" in refused.json()["detail"]
    anonymous = httpx.get(f"{stack.gateway_url}/v1/balance")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith(
        "Bearer"
    )


def test_roll_with_overlap_then_without(stack: Stack, merchant: Api) -> None:
    key = merchant.client.post("/v1/api_keys", json={"name": "rolling"}).json()
    rolled = merchant.client.post(f"/v1/api_keys/{key['id']}/roll", json={"overlap_seconds": 3600})
    assert rolled.status_code == 200, rolled.text
    new = rolled.json()["new"]
    assert rolled.json()["old"]["expires_at"] and new["name"] == "rolling"
    with _client(stack, key["secret"]) as old_client, _client(stack, new["secret"]) as new_client:
        assert old_client.get("/v1/balance").status_code == 200  # overlap: both work
        assert new_client.get("/v1/balance").status_code == 200
        again = merchant.client.post(f"/v1/api_keys/{new['id']}/roll", json={"overlap_seconds": 0})
        assert again.status_code == 200
        assert new_client.get("/v1/balance").status_code == 401  # no overlap: at once
        with _client(stack, again.json()["new"]["secret"]) as newest:
            assert newest.get("/v1/balance").status_code == 200


def test_operator_roles(stack: Stack, admin: httpx.Client, merchant: Api) -> None:
    def operator(role: str) -> tuple[dict, httpx.Client]:
        made = admin.post("/v1/operators", json={"name": f"{role} person", "role": role})
        assert made.status_code == 201, made.text
        return made.json(), _client(stack, made.json()["api_key"]["secret"])

    _, viewer = operator("viewer")
    op_row, ops = operator("operator")
    _, second_admin = operator("admin")
    topup = {"amount": 100, "currency": "CNY"}
    path = f"/v1/merchants/{merchant.merchant_id}"
    with viewer, ops, second_admin:
        assert viewer.get("/v1/merchants").status_code == 200
        assert viewer.get("/v1/audit_events").status_code == 200
        for denied in (
            viewer.post(f"{path}/topups", json=topup, headers={"Idempotency-Key": "v1"}),
            viewer.post("/v1/merchants", json={"name": "x"}),
            ops.post("/v1/merchants", json={"name": "x"}),
            ops.post("/v1/operators", json={"name": "x", "role": "admin"}),
        ):
            assert denied.status_code == 403, denied.text
            assert denied.json()["code"] == "role_missing"
        assert (
            ops.post(f"{path}/topups", json=topup, headers={"Idempotency-Key": uuid.uuid4().hex})
        ).status_code == 201
        assert second_admin.post("/v1/merchants", json={"name": "by admin 2"}).status_code == 201
        # Merchant keys never pass as operators, nor operators as merchants.
        refused = merchant.client.get("/v1/merchants")
        assert refused.status_code == 403 and refused.json()["code"] == "operator_key_required"
        assert ops.get("/v1/balance").json()["code"] == "merchant_key_required"
        # Disabling an operator stops all its keys at once.
        assert ops.get("/v1/merchants").status_code == 200
        disabled = second_admin.patch(f"/v1/operators/{op_row['id']}", json={"disabled": True})
        assert disabled.status_code == 200
        assert ops.get("/v1/merchants").status_code == 401


def test_audit_events_record_who_what_and_the_request_id(
    stack: Stack, admin: httpx.Client, merchant: Api
) -> None:
    request_id = "req-" + uuid.uuid4().hex
    made = merchant.client.post(
        "/v1/api_keys", json={"name": "audited"}, headers={"X-Request-Id": request_id}
    ).json()
    merchant.client.post(f"/v1/api_keys/{made['id']}/revoke")
    events = admin.get("/v1/audit_events", params={"object_id": made["id"]}).json()["data"]
    assert [e["action"] for e in events] == ["api_key.revoke", "api_key.create"]
    created = events[1]
    assert created["request_id"] == request_id
    assert created["actor_kind"] == "merchant" and created["merchant_id"] == merchant.merchant_id
    assert created["after"]["prefix"] == made["prefix"]
    assert made["secret"] not in str(events)
    assert events[0]["before"]["revoked_at"] is None and events[0]["after"]["revoked_at"]
    assert events[0]["prev_hash"] != events[0]["hash"]
    page = admin.get("/v1/audit_events", params={"limit": 1}).json()
    assert page["has_more"] and page["next_cursor"]
    assert merchant.client.get("/v1/audit_events").status_code == 403

    verify = subprocess.run(
        [sys.executable, "-m", "paymux", "audit", "verify"],
        env={**os.environ, "PAYMUX_DATABASE_URL": stack.database_url or ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "audit chain OK" in verify.stdout


def test_rate_limit_burst_answers_429_with_headers(stack: Stack, admin: httpx.Client) -> None:
    merchant = new_merchant(stack)
    limit = admin.put(
        f"/v1/merchants/{merchant.merchant_id}/rate_limit", json={"per_second": 1, "burst": 5}
    )
    assert limit.status_code == 200, limit.text
    responses = [merchant.get("/v1/balance") for _ in range(8)]
    statuses = [r.status_code for r in responses]
    assert statuses[:4] == [200] * 4 and statuses[-1] == 429, statuses
    first = responses[0]
    assert first.headers["ratelimit-policy"] == '"per-key";q=5;w=5'
    assert first.headers["ratelimit"].startswith('"per-key";r=4;t=')
    refused = responses[-1]
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit"].startswith('"per-key";r=0;')
    assert refused.headers["ratelimit-policy"] == '"per-key";q=5;w=5'
    assert refused.json()["code"] == "rate_limited"


def test_replays_of_an_idempotent_request_do_not_count(stack: Stack, admin: httpx.Client) -> None:
    merchant = new_merchant(stack)
    admin.put(
        f"/v1/merchants/{merchant.merchant_id}/rate_limit", json={"per_second": 1, "burst": 2}
    ).raise_for_status()
    key = uuid.uuid4().hex
    first = merchant.transfer(_transfer_body(), key=key)
    assert first.status_code == 201, first.text
    replays = [merchant.transfer(_transfer_body(), key=key) for _ in range(5)]
    assert [r.status_code for r in replays] == [201] * 5
    assert all(r.headers.get("idempotent-replayed") == "true" for r in replays)


def _plaintext_hits(stack: Stack, needles: list[str]) -> list[str]:
    url = stack.database_url or ""
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        blobs = [p.read_bytes() for p in path.parent.glob(path.name + "*")]
    else:
        dsn = url.replace("postgresql+asyncpg", "postgresql")
        dump = subprocess.run(["pg_dump", dsn], capture_output=True, check=True, timeout=120)
        blobs = [dump.stdout]
    return [n for n in needles if any(n.encode() in blob for blob in blobs)]


def test_no_payee_data_or_webhook_secret_in_plaintext_at_rest(stack: Stack, merchant: Api) -> None:
    account = f"pmx-{uuid.uuid4().hex[:10]}@example.com"
    card = "6222" + str(uuid.uuid4().int)[:15]
    name = "Plaintext" + uuid.uuid4().hex[:6]
    made = merchant.transfer(_transfer_body(account, name))
    assert made.status_code == 201, made.text
    card_body = {
        "amount": 1000,
        "currency": "CNY",
        "payee": {"type": "bank_card", "account": card, "name": name},
    }
    assert merchant.transfer(card_body).status_code == 201
    endpoint = merchant.client.post(
        "/v1/webhook_endpoints", json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}
    )
    assert endpoint.status_code == 201, endpoint.text
    secret = endpoint.json()["secret"]
    rotated = merchant.client.post(
        f"/v1/webhook_endpoints/{endpoint.json()['id']}/rotate_secret", json={}
    )
    needles = [account, card, name, secret]
    if rotated.status_code == 200:
        needles.append(rotated.json()["secret"])
    control = made.json()["id"]  # stored in clear: proves the search sees the data
    assert _plaintext_hits(stack, [*needles, control]) == [control]
    # The gateway still reads them back (masked in views, whole for the channel).
    shown = merchant.get(f"/v1/transfers/{made.json()['id']}").json()
    assert shown["payee"]["account"].endswith("@example.com")


def test_operators_reach_operator_routes_with_the_bootstrap_admin(stack: Stack) -> None:
    with admin_client(stack) as admin:
        assert admin.get("/v1/operators").status_code == 200


def test_channel_private_keys_can_be_sealed_at_rest(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> None:
    """Channel private keys (and the WeChat APIv3 key) sealed with `paymux keys seal-file`:
    the gateway opens them into memory only, and both channels still sign and verify."""
    kek = new_kek_entry()
    stack = make_stack(tmp_path_factory.mktemp("sealed-keys"), redis_url, PAYMUX_KEK=kek)
    try:
        stack.start_sandboxes()
        plain = stack.channel_settings()
        overrides: dict[str, dict[str, str]] = {}
        for channel, name in (
            ("alipay", "app_private_key_file"),
            ("wechat", "merchant_private_key_file"),
            ("wechat", "apiv3_key_file"),
        ):
            source = Path(plain[channel][name])
            sealed = subprocess.run(
                [sys.executable, "-m", "paymux", "keys", "seal-file", str(source)],
                env={**os.environ, "PAYMUX_KEK": kek},
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            target = source.with_name(source.name + ".sealed")
            assert "sealed" in sealed.stdout and target.is_file()
            assert source.read_bytes() not in target.read_bytes()
            assert b"PRIVATE KEY" not in target.read_bytes()
            overrides.setdefault(channel, {})[name] = str(target)
        for channel, values in overrides.items():
            stack.channel_overrides[channel].update(values)
        stack.start_gateway()
        stack.wait_gateway()
        merchant = new_merchant(stack)
        for account in ("alice@example.com", "o4GgauInH_RCEdvrrNGrntXDuXXX"):
            kind = "alipay_account" if "@" in account else "wechat_openid"
            resp = merchant.transfer(
                {"amount": 1000, "currency": "CNY", "payee": {"type": kind, "account": account}}
            )
            assert resp.status_code == 201, resp.text
            assert resp.json()["status"] == "succeeded", resp.json()
    finally:
        stack.stop_all()


def _worker_and_status(stack: Stack, secret: str) -> tuple[int, int]:
    """On one fresh connection (so one worker process): the merchant request's status and
    the pid of the worker that answered it (from /internal/stats, same connection)."""
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as conn:
        status = conn.get("/v1/balance", headers={"Authorization": f"Bearer {secret}"})
        stats = conn.get("/internal/stats", headers={"Authorization": f"Bearer {stack.admin_key}"})
        return int(stats.json()["pid"]), status.status_code


@pytest.mark.skipif(
    not os.environ.get("PAYMUX_TEST_DATABASE_URL"),
    reason="several workers need PostgreSQL (SQLite refuses --workers 2): the PostgreSQL pass",
)
def test_revocation_reaches_every_worker_process(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> None:
    stack = make_stack(tmp_path_factory.mktemp("workers"), redis_url, PAYMUX_WORKERS="2")
    try:
        stack.start_sandboxes()
        stack.start_gateway()
        stack.wait_gateway()
        merchant = new_merchant(stack)
        key = merchant.client.post("/v1/api_keys", json={"name": "everywhere"}).json()
        before: dict[int, int] = {}
        for _ in range(60):  # until both workers have served (and cached) the key
            pid, status = _worker_and_status(stack, key["secret"])
            before[pid] = status
            if len(before) == 2:
                break
        assert len(before) == 2, "the two workers did not both answer"
        assert set(before.values()) == {200}
        assert merchant.client.post(f"/v1/api_keys/{key['id']}/revoke").status_code == 200
        after: dict[int, set[int]] = {}
        # Fewer tries than the failed-authentication limit: a revoked key counts as a failure.
        for _ in range(15):
            pid, status = _worker_and_status(stack, key["secret"])
            after.setdefault(pid, set()).add(status)
            if len(after) == 2:
                break
        assert set(after) == set(before)
        assert all(statuses == {401} for statuses in after.values()), after
    finally:
        stack.stop_all()
