"""Secrets and payee data never reach the logs (issue 11), not even while the database
fails under the gateway: an e2e run with unique keys and payee values, then a database
outage with transfers in flight, then every log line of every process is searched."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from paymux.devstack import Stack
from tests.e2e.conftest import make_stack, new_merchant


@pytest.fixture(scope="module")
def chatty(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    s = make_stack(tmp_path_factory.mktemp("secrets"), redis_url, PAYMUX_LOG_LEVEL="info")
    try:
        s.start_sandboxes()
        s.start_gateway()
        s.wait_gateway()
        yield s
    finally:
        s.stop_all()


def unique_payees() -> list[dict[str, str]]:
    tag = uuid.uuid4().hex[:10]
    card = "62220" + str(int(uuid.uuid4().int % 10**14)).zfill(14)
    return [
        {"type": "alipay_account", "account": f"payee.{tag}@example.com", "name": f"Li{tag}"},
        {"type": "bank_card", "account": card, "name": f"Wang{tag}"},
        {"type": "wechat_openid", "account": f"o4Gg{tag}XyZ{tag}", "name": f"Zhao{tag}"},
    ]


def transfer(client: httpx.Client, payee: dict[str, str], timeout: float = 30) -> httpx.Response:
    return client.post(
        "/v1/transfers",
        json={"amount": 1234, "currency": "CNY", "payee": payee},
        headers={"Idempotency-Key": uuid.uuid4().hex},
        timeout=timeout,
    )


async def _pg(url: str, statement: str) -> None:
    engine = create_async_engine(
        make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def database_outage(stack: Stack, during: Any) -> None:
    """Run ``during()`` while the gateway's database refuses its work."""
    assert stack.database_url is not None
    url = make_url(stack.database_url)
    if url.get_backend_name() == "sqlite":
        # Another process holds the write lock: every write of the gateway times out.
        holder = sqlite3.connect(str(url.database), timeout=60, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            during()
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    name = url.database
    asyncio.run(_pg(stack.database_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
    asyncio.run(
        _pg(
            stack.database_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        )
    )
    try:
        during()
    finally:
        asyncio.run(_pg(stack.database_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))


def test_no_key_or_payee_value_in_any_log(chatty: Stack) -> None:
    merchant = new_merchant(chatty, funds=10_000_000)
    merchant_key = merchant.client.headers["Authorization"].removeprefix("Bearer ")
    secrets = [chatty.admin_key, merchant_key]
    endpoint = merchant.client.post(
        "/v1/webhook_endpoints", json={"url": "http://127.0.0.1:9/hook"}
    )
    assert endpoint.status_code == 201, endpoint.text
    secrets.append(endpoint.json()["secret"])

    payees = unique_payees()
    for payee in payees:
        assert transfer(merchant.client, payee).status_code == 201
    # Refused requests carry payee data too.
    bad = {**payees[0], "account": payees[0]["account"] + "\x00"}
    assert transfer(merchant.client, bad).status_code == 422
    wrong_key = httpx.get(
        f"{chatty.gateway_url}/v1/transfers", headers={"Authorization": "Bearer sk_" + "x" * 40}
    )
    assert wrong_key.status_code == 401

    outage_payees = unique_payees()
    answers: list[int] = []

    def during() -> None:
        threads = [
            threading.Thread(
                target=lambda p=p: answers.append(transfer(merchant.client, p, 90).status_code)
            )
            for p in outage_payees[:2]
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    database_outage(chatty, during)
    assert answers and all(a >= 500 or a == 201 for a in answers), answers
    assert any(a >= 500 for a in answers), answers  # the outage really failed the requests
    chatty.wait_gateway()
    time.sleep(1)  # let the processes flush their logs

    values = secrets + [v for p in payees + outage_payees for v in (p["account"], p["name"])]
    logs = sorted((chatty.data_dir / "logs").glob("*.log"))
    text_of_logs = "\n".join(p.read_text(errors="replace") for p in logs)
    assert "gateway" in " ".join(p.name for p in logs)
    assert len(text_of_logs) > 0
    leaked = [v for v in values if v in text_of_logs]
    assert not leaked, f"found in {[p.name for p in logs]}: {leaked}"
    assert "[parameters:" not in text_of_logs
