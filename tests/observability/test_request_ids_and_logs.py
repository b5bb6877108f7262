"""The request-id middleware and the log formats: ids on every line, echoed to the caller,
latency per route template, and a 500 that still carries the id."""

from __future__ import annotations

import io
import logging

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from paymux import logs, request_context
from paymux.api import problems
from paymux.api.request_ids import RequestIdMiddleware, accepted_request_id


def _app() -> FastAPI:
    app = FastAPI()
    problems.install(app)
    app.add_middleware(RequestIdMiddleware)
    log = logging.getLogger("paymux.test")

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str | None]:
        request_context.transfer_id.set("tr_" + thing_id)
        log.info("looked at a thing")
        return {"request_id": request_context.current_request_id()}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


@pytest.fixture
def captured() -> io.StringIO:
    """Root logging in JSON into a buffer, restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure("info", "json")
    buf = io.StringIO()
    root.handlers[0].setStream(buf)  # type: ignore[attr-defined]
    yield buf
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t")


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        (b"abc-123", True),
        (b"0f4c:1.2_x", True),
        (b"a" * 128, True),
        (b"a" * 129, False),
        (b"", False),
        (b"bad id", False),
        (b'x"}\n{"level":"critical"', False),
        ("中文".encode(), False),
    ],
)
def test_request_id_accepted_only_when_short_and_safe(raw: bytes, kept: bool) -> None:
    got = accepted_request_id(raw)
    if kept:
        assert got == raw.decode()
    else:
        assert got.startswith("req_") and len(got) == 36


async def test_caller_request_id_is_echoed_and_on_every_log_line(captured: io.StringIO) -> None:
    async with _client() as client:
        resp = await client.get("/things/42", headers={"X-Request-Id": "client-req-1"})
    assert resp.status_code == 200
    assert resp.headers["x-request-id"] == "client-req-1"
    assert resp.json() == {"request_id": "client-req-1"}
    lines = [orjson.loads(line) for line in captured.getvalue().splitlines()]
    mine = [line for line in lines if line["logger"] == "paymux.test"]
    assert mine == [
        {
            "ts": mine[0]["ts"],
            "level": "info",
            "logger": "paymux.test",
            "msg": "looked at a thing",
            "request_id": "client-req-1",
            "transfer_id": "tr_42",
        }
    ]
    # The context does not leak past the request.
    assert request_context.current_request_id() is None
    assert request_context.current_transfer_id() is None


async def test_generated_request_id_when_missing_or_invalid() -> None:
    async with _client() as client:
        a = await client.get("/things/1")
        b = await client.get("/things/1", headers={"X-Request-Id": "no spaces allowed"})
    for resp in (a, b):
        rid = resp.headers["x-request-id"]
        assert rid.startswith("req_")
        assert resp.json()["request_id"] == rid
    assert a.headers["x-request-id"] != b.headers["x-request-id"]


async def test_unhandled_error_is_problem_json_with_request_id(captured: io.StringIO) -> None:
    async with _client() as client:
        resp = await client.get("/boom", headers={"X-Request-Id": "boom-1"})
    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["x-request-id"] == "boom-1"
    assert resp.json()["code"] == "internal_error"
    assert "secret internals" not in resp.text
    errors = [orjson.loads(x) for x in captured.getvalue().splitlines()]
    logged = [e for e in errors if e["msg"] == "unhandled error"]
    assert logged and logged[0]["request_id"] == "boom-1"
    assert "RuntimeError" in logged[0]["exc"]


async def test_latency_histogram_is_per_route_template_not_raw_path() -> None:
    def count(route: str) -> float:
        value = REGISTRY.get_sample_value(
            "paymux_http_request_duration_seconds_count",
            {"method": "GET", "route": route, "status": "200"},
        )
        return value or 0.0

    before = count("/things/{thing_id}")
    async with _client() as client:
        for n in range(3):
            assert (await client.get(f"/things/{n}")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
    assert count("/things/{thing_id}") == before + 3
    assert count("/things/0") == 0
    unmatched = REGISTRY.get_sample_value(
        "paymux_http_request_duration_seconds_count",
        {"method": "GET", "route": "unmatched", "status": "404"},
    )
    assert unmatched is not None and unmatched >= 1


def test_console_format_is_readable_and_carries_ids() -> None:
    record = logging.LogRecord("paymux.x", logging.INFO, "f", 1, "transfer %s done", ("t1",), None)
    record.request_id = "r1"
    record.transfer_id = "t1"
    line = logs.ConsoleFormatter().format(record)
    assert "INFO" in line and "paymux.x" in line and "transfer t1 done" in line
    assert line.endswith("[req=r1 tr=t1]")


def test_quiet_by_default_and_chatty_libraries_held_back() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure("info", "console")
        for name in ("httpx", "alembic", "uvicorn.access"):
            assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING
        logs.configure("debug", "console")
        assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name in logs.QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
