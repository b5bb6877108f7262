"""Observability over the real stack: JSON log lines with request and transfer ids, and
/metrics values after a run of transfers (values, not just names)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from paymux.devstack import Stack, free_port
from tests.e2e.conftest import Api, admin_client, make_stack, new_merchant

ACCOUNTS = ["obs-alice@example.com", "obs-bob@example.com", "obs-carol@example.com"]


@pytest.fixture(scope="module")
def obs_stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    s = make_stack(
        tmp_path_factory.mktemp("obs"),
        redis_url,
        PAYMUX_LOG_FORMAT="json",
        PAYMUX_LOG_LEVEL="info",
    )
    try:
        s.start_sandboxes()
        s.start_gateway()
        s.wait_gateway()
        yield s
    finally:
        s.stop_all()


def scrape(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with admin_client(stack) as admin:
        resp = admin.get("/metrics")
    assert resp.status_code == 200, resp.text
    samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def transfer(api: Api, account: str, request_id: str | None = None) -> dict[str, Any]:
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    if request_id:
        headers["X-Request-Id"] = request_id
    resp = api.client.post(
        "/v1/transfers",
        json={
            "amount": 1000,
            "currency": "CNY",
            "payee": {"type": "alipay_account", "account": account, "name": "Wang Wu"},
        },
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    if request_id:
        assert resp.headers["x-request-id"] == request_id
    else:
        assert resp.headers["x-request-id"].startswith("req_")
    return dict(resp.json())


def wait_for(check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.2)


def test_metrics_values_after_a_run_of_transfers(obs_stack: Stack) -> None:
    merchant = new_merchant(obs_stack)
    # A webhook endpoint nobody listens on: every delivery attempt fails and stays pending.
    dead = f"http://127.0.0.1:{free_port()}/hooks"
    created = merchant.client.post("/v1/webhook_endpoints", json={"url": dead})
    assert created.status_code == 201, created.text

    ok = [transfer(merchant, a) for a in ACCOUNTS]
    failed = transfer(merchant, "fail-obs@example.com")
    delayed = transfer(merchant, "delay-obs@example.com")
    assert [t["status"] for t in ok] == ["succeeded"] * 3
    assert failed["status"] == "failed"
    assert delayed["status"] == "processing"

    during = scrape(obs_stack)
    assert value(during, "paymux_transfers_in_flight", status="processing") == 1
    assert value(during, "paymux_oldest_processing_transfer_age_seconds") > 0
    assert value(during, "paymux_transfers_in_flight", status="pending") == 0
    transitions = "paymux_transfer_transitions_total"
    assert value(during, transitions, channel="alipay", status="succeeded") == 3
    assert value(during, transitions, channel="alipay", status="failed") == 1
    assert value(during, transitions, channel="alipay", status="processing") == 1

    wait_for(lambda: merchant.get(f"/v1/transfers/{delayed['id']}").json()["status"] == "succeeded")

    # 1 topup event + 2 events for each of the 5 transfers at least; all handed to delivery.
    def settled() -> bool:
        s = scrape(obs_stack)
        return (
            value(s, "paymux_outbox_backlog") == 0
            and value(s, "paymux_webhook_failure_ratio") == 1.0
            and value(s, "paymux_transfers_in_flight", status="processing") == 0
        )

    time.sleep(1.1)  # the gauges are cached for one second between scrapes
    wait_for(settled)
    after = scrape(obs_stack)
    assert value(after, "paymux_oldest_processing_transfer_age_seconds") == 0
    assert value(after, "paymux_outbox_lag_seconds") == 0
    backlog = value(after, "paymux_webhook_backlog", due="now") + value(
        after, "paymux_webhook_backlog", due="later"
    )
    assert backlog >= 5  # every transfer event still waits for the dead endpoint

    assert value(after, "paymux_transfers_created_total", channel="alipay") == 5
    route = {"method": "POST", "route": "/v1/transfers", "status": "201"}
    assert value(after, "paymux_http_request_duration_seconds_count", **route) == 5
    get_route = {"method": "GET", "route": "/v1/transfers/{transfer_id}", "status": "200"}
    assert value(after, "paymux_http_request_duration_seconds_count", **get_route) >= 1
    send = "paymux_channel_call_duration_seconds_count"
    assert value(after, send, channel="alipay", kind="send", outcome="succeeded") == 3
    assert value(after, send, channel="alipay", kind="send", outcome="failed") == 1
    assert value(after, send, channel="alipay", kind="send", outcome="processing") == 1
    # Every sync-loop query is timed, whatever it answered.
    queries = sum(
        value(after, send, channel="alipay", kind="query", outcome=o)
        for o in ("succeeded", "processing", "failed", "not_found", "error")
    )
    assert queries == value(after, "paymux_sync_queries_total", channel="alipay")
    assert (
        value(
            after,
            "paymux_channel_call_duration_seconds_sum",
            channel="alipay",
            kind="send",
            outcome="succeeded",
        )
        > 0
    )
    assert value(after, transitions, channel="alipay", status="succeeded") == 4
    assert value(after, transitions, channel="alipay", status="failed") == 1


def test_json_logs_carry_request_and_transfer_ids_and_no_payee_data(obs_stack: Stack) -> None:
    merchant = new_merchant(obs_stack)
    rid = "e2e-" + uuid.uuid4().hex[:12]
    t = transfer(merchant, "logline-payee@example.com", request_id=rid)
    bad = httpx.post(
        f"{obs_stack.gateway_url}/v1/transfers",
        content=b"{}",
        headers={
            "Authorization": merchant.client.headers["Authorization"],
            "Idempotency-Key": "k1",
            "X-Request-Id": "bad request id with spaces",
            "Content-Type": "application/json",
        },
    )
    assert bad.status_code == 422
    assert bad.headers["x-request-id"].startswith("req_")

    log_path = obs_stack.data_dir / "logs" / "gateway.log"

    def logged() -> list[dict[str, Any]]:
        lines = [x for x in log_path.read_text().splitlines() if x.strip()]
        return [orjson.loads(x) for x in lines]  # every line is one JSON object

    settled = f"transfer {t['id']} -> succeeded"
    wait_for(lambda: any(settled in e["msg"] for e in logged()))
    entries = logged()
    mine = [e for e in entries if e.get("request_id") == rid]
    assert mine, "no log line carries the request id"
    assert all(e["transfer_id"] == t["id"] for e in mine)
    assert any(f"transfer {t['id']} created" in e["msg"] for e in mine)
    # The outcome is logged by whichever request applied it: this one, or the channel's
    # notification when the sandbox's (immediate) notification arrives first.
    assert all(e["transfer_id"] == t["id"] for e in entries if settled in e["msg"])
    for e in entries:
        assert {"ts", "level", "logger", "msg"} <= e.keys()
    text = log_path.read_text()
    assert "logline-payee" not in text and "Wang Wu" not in text
    assert merchant.client.headers["Authorization"].split()[1] not in text
