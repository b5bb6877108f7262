"""Keys, revocation through the auth cache, failed-authentication limits, Redis outages,
the audit chain and encryption at rest, against the real store and Redis."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import text

from paymux.api.app import create_app
from paymux.domain.access import Principal, Role
from paymux.domain.audit_chain import first_break
from paymux.domain.outcomes import Outcome
from paymux.service import access
from paymux.service.access import (
    Authenticator,
    AuthFailed,
    RateLimiterUnavailable,
    TooManyFailures,
    hash_key,
)
from paymux.service.gateway import Gateway
from paymux.service.merchants import create_merchant
from paymux.service.transfers import get_transfer
from paymux.service.webhook_endpoints import create_endpoint
from paymux.settings import Settings
from paymux.store import audit_repo, keys_repo
from paymux.store.audit_repo import all_in_order
from tests.store.store_support import new_funded_merchant, transfer

ADMIN = Principal("key_admin_env", "operator", None, role=Role.admin)


async def _merchant_with_key(gw: Gateway) -> tuple[str, str, str]:
    row, secret = await create_merchant(gw, "access test", ADMIN)
    key = await keys_repo.find_by_hash(gw.db, hash_key(secret))
    assert key is not None
    return row["id"], secret, key.id


def _auth_failures(reason: str) -> float:
    return REGISTRY.get_sample_value("paymux_auth_failures_total", {"reason": reason}) or 0.0


async def test_revocation_takes_effect_at_once_on_every_worker(gw: Gateway) -> None:
    """Regression: a deactivated key kept working for up to 30 s through the auth cache."""
    merchant_id, secret, key_id = await _merchant_with_key(gw)
    workers = [Authenticator(gw), Authenticator(gw)]  # two processes' caches
    for worker in workers:
        ok = await worker.authenticate(secret, "192.0.2.1", money_moving=False)
        assert ok.principal.merchant_id == merchant_id
    # A cached key costs no database statement.
    before = gw.db.counters.statements
    await workers[0].authenticate(secret, "192.0.2.1", money_moving=False)
    assert gw.db.counters.statements == before

    await access.revoke_key(gw, ADMIN, key_id, merchant_id=None)
    for worker in workers:
        with pytest.raises(AuthFailed) as refused:
            await worker.authenticate(secret, "192.0.2.1", money_moving=False)
        assert refused.value.extra["reason"] == "revoked"


async def test_roll_keeps_the_old_key_until_the_overlap_ends(
    gw: Gateway, clock: Callable[[datetime], None]
) -> None:
    merchant_id, old_secret, key_id = await _merchant_with_key(gw)
    worker = Authenticator(gw)
    await worker.authenticate(old_secret, "192.0.2.2", money_moving=False)
    rolled, new, new_secret = await access.roll_key(
        gw, ADMIN, key_id, merchant_id=merchant_id, overlap_seconds=3600
    )
    assert rolled.expires_at is not None and new.scopes == rolled.scopes
    for secret in (old_secret, new_secret):
        ok = await worker.authenticate(secret, "192.0.2.2", money_moving=False)
        assert ok.principal.merchant_id == merchant_id
    clock(rolled.expires_at + timedelta(seconds=1))
    with pytest.raises(AuthFailed) as refused:
        await worker.authenticate(old_secret, "192.0.2.2", money_moving=False)
    assert refused.value.extra["reason"] == "expired"
    ok = await worker.authenticate(new_secret, "192.0.2.2", money_moving=False)
    assert ok.principal.key_id == new.id


async def test_redis_down_fails_closed_for_money_and_still_honours_revocation(
    gw: Gateway,
) -> None:
    merchant_id, secret, key_id = await _merchant_with_key(gw)
    dead = dataclasses.replace(
        gw, redis=Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    )
    try:
        worker = Authenticator(dead)
        with pytest.raises(RateLimiterUnavailable):
            await worker.authenticate(secret, "192.0.2.3", money_moving=True)
        read = await worker.authenticate(secret, "192.0.2.3", money_moving=False)
        assert read.principal.merchant_id == merchant_id and read.admission is None
        await access.revoke_key(gw, ADMIN, key_id, merchant_id=None)  # through live Redis
        with pytest.raises(AuthFailed):
            await worker.authenticate(secret, "192.0.2.3", money_moving=False)
    finally:
        await dead.redis.aclose()


async def test_failed_authentication_is_limited_per_address_and_per_prefix(
    gw: Gateway,
) -> None:
    """Regression: 200 wrong admin keys in 0.27 s were all plain 401s."""
    _, secret, _ = await _merchant_with_key(gw)
    worker = Authenticator(gw)
    limit = gw.settings.auth_failure_limit
    address = f"198.51.100.{uuid.uuid4().int % 250}"
    unknown_before = _auth_failures("unknown")
    outcomes: list[str] = []
    for _ in range(limit + 3):
        try:
            await worker.authenticate("sk_" + uuid.uuid4().hex, address, money_moving=False)
        except AuthFailed:
            outcomes.append("401")
        except TooManyFailures as exc:
            assert exc.extra["retry_after"] >= 1
            outcomes.append("429")
    assert outcomes[: limit - 1] == ["401"] * (limit - 1)
    assert outcomes[-3:] == ["429"] * 3
    assert _auth_failures("unknown") >= unknown_before + limit
    # Guessing one key's secret from many addresses is limited by its prefix.
    prefix = secret[:11]
    refused = []
    for i in range(limit + 1):
        try:
            await worker.authenticate(
                prefix + uuid.uuid4().hex, f"203.0.113.{i}", money_moving=False
            )
        except AuthFailed:
            refused.append(401)
        except TooManyFailures:
            refused.append(429)
    assert refused[-1] == 429


async def test_http_401_carries_www_authenticate_and_429_retry_after(
    gw: Gateway, store_settings: Settings
) -> None:
    app = create_app(store_settings)
    app.state.gateway = gw
    app.state.merchant_auth = Authenticator(gw)
    address = f"192.0.2.{100 + uuid.uuid4().int % 100}"
    transport = httpx.ASGITransport(app=app, client=(address, 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://paymux.test") as client:
        missing = await client.get("/v1/balance")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        statuses = []
        for _ in range(gw.settings.auth_failure_limit + 1):
            resp = await client.get("/v1/balance", headers={"Authorization": "Bearer sk_nope"})
            statuses.append(resp.status_code)
            if resp.status_code == 401:
                assert resp.headers["www-authenticate"].startswith("Bearer")
        assert statuses[0] == 401 and statuses[-1] == 429
        assert int(resp.headers["retry-after"]) >= 1
        assert resp.json()["code"] == "too_many_failed_authentications"


async def test_audit_chain_verifies_and_detects_tampering(gw: Gateway) -> None:
    merchant_id, _, key_id = await _merchant_with_key(gw)
    await access.revoke_key(gw, ADMIN, key_id, merchant_id=merchant_id)
    records = await all_in_order(gw.db)
    assert first_break(records) is None
    mine = [r for r in records if r["merchant_id"] == merchant_id]
    assert [r["action"] for r in mine] == ["merchant.create", "api_key.revoke"]
    assert all(r["actor_key_id"] == "key_admin_env" and r["actor_role"] == "admin" for r in mine)
    for later, earlier in zip(records[1:], records, strict=False):
        assert later["prev_hash"] == earlier["hash"]

    target = mine[0]
    async with gw.db.write() as conn:
        await conn.execute(
            text("UPDATE audit_events SET after = :a WHERE seq = :s"),
            {"a": '{"name":"someone else"}', "s": target["seq"]},
        )
    try:
        broken = first_break(await all_in_order(gw.db))
        assert broken is not None and broken[0] == target["seq"]
    finally:
        async with gw.db.write() as conn:
            await conn.execute(
                text("UPDATE audit_events SET after = :a WHERE seq = :s"),
                {"a": target["after"], "s": target["seq"]},
            )
    assert first_break(await all_in_order(gw.db)) is None


async def test_audit_appends_are_serialised_under_concurrency(gw: Gateway) -> None:
    import asyncio  # noqa: PLC0415

    merchant_id, _, _ = await _merchant_with_key(gw)
    await asyncio.gather(
        *(
            access.create_merchant_key(gw, ADMIN, merchant_id, name=f"k{i}", scopes=None)
            for i in range(8)
        )
    )
    assert first_break(await all_in_order(gw.db)) is None


async def test_payee_data_and_webhook_secrets_are_sealed_at_rest(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: payee accounts, names and webhook secrets were stored in plaintext."""
    monkeypatch.setattr(gw.settings, "webhook_allow_http", True)
    monkeypatch.setattr(gw.settings, "webhook_allow_private", True)
    merchant_id = await new_funded_merchant(gw, 1_000_000)
    created = await transfer(gw, merchant_id, 1000, Outcome.SUCCEEDED)
    async with gw.db.read() as conn:
        raw = (
            (
                await conn.execute(
                    text(
                        "SELECT payee_account, payee_name, payee_account_hmac FROM transfers "
                        "WHERE id = :id"
                    ),
                    {"id": created.transfer.id},
                )
            )
            .mappings()
            .one()
        )
    assert raw["payee_account"].startswith("pmx1:") and "payee@example.com" not in str(raw)
    assert raw["payee_name"].startswith("pmx1:") and "Zhang San" not in str(raw)
    assert len(raw["payee_account_hmac"]) == 64
    row = await get_transfer(gw, created.transfer.id, merchant_id)
    assert (row.payee_account, row.payee_name) == ("payee@example.com", "Zhang San")

    endpoint, secret = await create_endpoint(
        gw, merchant_id, url="http://127.0.0.1:9/paymux", event_types=["*"], description=None
    )
    async with gw.db.read() as conn:
        stored = (
            await conn.execute(
                text("SELECT secret FROM webhook_secrets WHERE endpoint_id = :id"),
                {"id": endpoint["id"]},
            )
        ).scalar_one()
    assert stored.startswith("pmx1:") and secret not in stored


async def test_audit_list_filters_and_pages(gw: Gateway) -> None:
    merchant_id, _, _ = await _merchant_with_key(gw)
    for i in range(3):
        await access.create_merchant_key(gw, ADMIN, merchant_id, name=f"p{i}", scopes=None)
    first, more = await audit_repo.list_events(
        gw.db, audit_repo.AuditFilter(merchant_id=merchant_id, action="api_key.create", limit=2)
    )
    assert more and len(first) == 2
    rest, more = await audit_repo.list_events(
        gw.db,
        audit_repo.AuditFilter(
            merchant_id=merchant_id,
            action="api_key.create",
            before_seq=int(first[-1]["seq"]),
            limit=2,
        ),
    )
    assert not more and len(rest) == 1
    assert {r["id"] for r in first}.isdisjoint({r["id"] for r in rest})


async def test_keys_rotate_rewraps_under_the_new_kek_and_seals_old_plaintext(
    gw: Gateway, store_settings: Settings
) -> None:
    from paymux.sealing import Sealer, new_kek_entry, parse_keks  # noqa: PLC0415
    from paymux.service.bootstrap import resolve_keks  # noqa: PLC0415
    from paymux.store import data_keys_repo  # noqa: PLC0415

    old = resolve_keks(store_settings)
    new = parse_keks(new_kek_entry())
    merchant_id = await new_funded_merchant(gw, 100_000)
    created = await transfer(gw, merchant_id, 1000, Outcome.SUCCEEDED)
    # A row written before encryption existed: plaintext in the sealed columns.
    async with gw.db.write() as conn:
        await conn.execute(
            text(
                "UPDATE transfers SET payee_account = 'legacy@example.com', payee_name = NULL "
                "WHERE id = :id"
            ),
            {"id": created.transfer.id},
        )
    try:
        report = await data_keys_repo.rewrap_data_keys(gw.db, [*new, *old], gw.clock())
        assert report.rewrapped >= 1
        fresh = Sealer()  # a worker started with only the new KEK configured
        await data_keys_repo.load_data_keys(gw.db, new, gw.clock(), fresh)
        assert fresh.ready
        assert await data_keys_repo.seal_plaintext_rows(gw.db) >= 1
        async with gw.db.read() as conn:
            raw = (
                await conn.execute(
                    text("SELECT payee_account FROM transfers WHERE id = :id"),
                    {"id": created.transfer.id},
                )
            ).scalar_one()
        assert raw.startswith("pmx1:")
        assert fresh.open(raw, "transfers.payee_account") == "legacy@example.com"
        row = await get_transfer(gw, created.transfer.id, merchant_id)
        assert row.payee_account == "legacy@example.com"
    finally:
        # Put the session's KEK back, so other tests (and workers) still open the data key.
        await data_keys_repo.rewrap_data_keys(gw.db, [*old, *new], gw.clock())


async def test_a_revocation_racing_the_first_read_is_not_cached_as_current(gw: Gateway) -> None:
    """The key is read from the database, then revoked (commit + version bump) before this
    worker asks Redis for the version: the worker must not cache the stale read."""
    _, secret, key_id = await _merchant_with_key(gw)
    worker = Authenticator(gw)
    real_load = worker._load
    raced = False

    async def load_then_revoke(digest: str) -> Any:
        nonlocal raced
        loaded = await real_load(digest)
        if not raced:
            raced = True
            await access.revoke_key(gw, ADMIN, key_id, merchant_id=None)
        return loaded

    worker._load = load_then_revoke  # type: ignore[method-assign]
    for _ in range(2):
        with pytest.raises(AuthFailed):
            await worker.authenticate(secret, "192.0.2.9", money_moving=False)


async def test_a_revoked_key_in_use_does_not_lock_its_owner_out(gw: Gateway) -> None:
    merchant_id, old_secret, key_id = await _merchant_with_key(gw)
    _, new_secret = await access.create_merchant_key(
        gw, ADMIN, merchant_id, name="new", scopes=None
    )
    await access.revoke_key(gw, ADMIN, key_id, merchant_id=None)
    worker = Authenticator(gw)
    address = "192.0.2.200"
    for _ in range(gw.settings.auth_failure_limit + 2):  # a stale process keeps trying
        with pytest.raises(AuthFailed):
            await worker.authenticate(old_secret, address, money_moving=False)
    ok = await worker.authenticate(new_secret, address, money_moving=False)  # first use
    assert ok.principal.merchant_id == merchant_id
