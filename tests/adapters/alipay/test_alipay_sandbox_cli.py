"""``python -m paymux_alipay.sandbox`` starts, prints its keys, serves, and stops on SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_sandbox_cli_runs_until_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paymux_alipay.sandbox",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "sbx"),
            "--app-id",
            "2021000000000777",
            "--notify-schedule",
            "0.5,1,2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/__sandbox/health", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health is not None and health.json() == {
            "status": "ok",
            "app_id": "2021000000000777",
        }
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 0
    assert "2021000000000777" in output
    assert str((tmp_path / "sbx" / "app_private_key.pem").resolve()) in output
    assert str((tmp_path / "sbx" / "alipay_public_key.pem").resolve()) in output
    assert "BEGIN" not in output  # paths only, never key material
    assert (tmp_path / "sbx" / "app_id.txt").read_text().strip() == "2021000000000777"
