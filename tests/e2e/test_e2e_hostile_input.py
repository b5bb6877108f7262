"""Hostile input over real HTTP (issue 11): huge streamed bodies, NUL bytes in channel
callbacks, and the security headers, against the real gateway process."""

from __future__ import annotations

import asyncio
import select
import socket
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select as sql_select
from sqlalchemy.ext.asyncio import create_async_engine

from paymux.devstack import Stack
from paymux.store.tables import channel_notifications

MB = 1024 * 1024


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def stream_until_answered(stack: Stack, path: str, total: int) -> tuple[int, bytes]:
    """POST ``total`` bytes chunked, 1 MB at a time; stop as soon as the gateway answers.
    Returns (bytes sent, what the gateway answered)."""
    port = int(stack.gateway_url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent = 0
    answer = b""
    try:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"%x\r\n" % MB + b"a" * MB + b"\r\n"
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += MB
        sock.settimeout(30)
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    return sent, answer


@pytest.mark.parametrize("path", ["/callbacks/alipay", "/v1/transfers", "/v1/merchants"])
def test_a_300_mb_streamed_body_is_refused_early_and_memory_stays_flat(
    stack: Stack, path: str
) -> None:
    pid = stack.procs["gateway"].pid
    before = rss_kb(pid)
    sent, answer = stream_until_answered(stack, path, 300 * MB)
    after = rss_kb(pid)
    status_line = answer.split(b"\r\n", 1)[0]
    assert b" 413 " in status_line or (path != "/callbacks/alipay" and b" 415 " in status_line), (
        answer[:300]
    )
    # The answer came long before 300 MB were sent (kernel buffers hold a few MB at most).
    assert sent < 64 * MB, sent
    assert after - before < 64 * 1024, (before, after)


def test_a_declared_length_over_the_limit_is_413_before_the_body(stack: Stack) -> None:
    port = int(stack.gateway_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /callbacks/alipay HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 314572800\r\n\r\n"
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"application/problem+json" in answer


async def _notifications(url: str, channel: str) -> list[dict[str, object]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sql_select(channel_notifications).where(channel_notifications.c.channel == channel)
            )
            return [dict(r) for r in rows.mappings()]
    finally:
        await engine.dispose()


def test_a_callback_with_a_nul_byte_is_refused_as_the_channel_expects_and_audited(
    stack: Stack,
) -> None:
    assert stack.database_url is not None
    marker = f"nul-probe-{time.monotonic_ns()}"
    alipay = httpx.post(
        f"{stack.gateway_url}/callbacks/alipay",
        content=f"notify_id={marker}&out_biz_no=a\x00b&sign=x".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert alipay.status_code == 400 and alipay.text == "fail"  # anything but "success"
    wechat = httpx.post(
        f"{stack.gateway_url}/callbacks/wechat",
        content=f'{{"id": "{marker}", "summary": "a\x00b"}}'.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert wechat.status_code >= 400 and wechat.json()["code"] == "FAIL"
    for channel in ("alipay", "wechat"):
        rows = asyncio.run(_notifications(stack.database_url, channel))
        stored = [r for r in rows if marker in str(r["body"])]
        assert len(stored) == 1, rows
        assert "\x00" not in str(stored[0]["body"])
        assert "\\x00" in str(stored[0]["body"])
        assert stored[0]["verified"] is False or stored[0]["verified"] == 0


def test_security_headers_on_every_kind_of_response(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url) as client:
        for response in (
            client.get("/healthz"),
            client.get("/v1/transfers"),  # 401
            client.get("/nowhere"),  # 404
            client.delete("/v1/transfers"),  # 405
            client.get("/openapi.json"),
        ):
            assert response.headers["cache-control"] == "no-store", response.url
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert "strict-transport-security" not in response.headers
        behind_tls = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert behind_tls.headers["strict-transport-security"].startswith("max-age=")


def test_405_names_every_method_of_the_path(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url) as client:
        r = client.delete("/v1/transfers")
        assert r.status_code == 405
        assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "POST"}
        r = client.put("/v1/webhook_endpoints/we_x")
        assert r.status_code == 405
        assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "PATCH", "DELETE"}
