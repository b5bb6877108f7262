"""A newcomer's first five minutes: `paymux dev` (what `make run` runs) prints a curl
command; pasting it into a shell gives a succeeded transfer."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paymux.devstack import free_port


def test_printed_curl_makes_a_succeeded_transfer(tmp_path: Path, redis_url: str) -> None:
    env = {
        **os.environ,
        "PAYMUX_DATA_DIR": str(tmp_path / "var"),
        "PAYMUX_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'var' / 'paymux.db'}",
        "PAYMUX_REDIS_URL": redis_url,
        "PAYMUX_PORT": str(free_port()),
        "PAYMUX_ALIPAY_SANDBOX_PORT": str(free_port()),
        "PAYMUX_WECHAT_SANDBOX_PORT": str(free_port()),
        "PAYMUX_LOG_LEVEL": "warning",
    }
    env.pop("PAYMUX_ADMIN_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "paymux", "dev"],
        cwd=Path(__file__).resolve().parents[2],  # the repository, as after `git clone`
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    banner: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            banner.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(banner)
        assert "Paymux is running" in text, text
        assert re.search(r"admin key\s+ak_", text)
        match = re.search(r"(curl -s .*?)\n\n", text, re.S)
        assert match, text
        curl = match.group(1)
        out = subprocess.run(
            ["bash", "-c", curl], capture_output=True, text=True, timeout=60, check=True
        )
        transfer = json.loads(out.stdout)
        assert transfer["status"] == "succeeded", transfer
        assert transfer["amount"] == 1234
        assert (tmp_path / "var" / "admin_key").stat().st_mode & 0o077 == 0
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C stops everything it started
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("paymux dev did not stop on Ctrl-C")
    assert proc.returncode == 0
