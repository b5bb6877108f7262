"""Starts a whole local Paymux as child processes: Redis, the sandboxes and the gateway.

`paymux dev` (behind `make run`), the end-to-end tests and the benchmark all use this one
launcher, so what a newcomer runs is what the tests prove.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx

from paymux.redis_embedded import EmbeddedRedis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str,
    *,
    timeout: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s: {last}")


def sandbox_settings(name: str, data_dir: Path, base_url: str) -> dict[str, Any]:
    for ep in entry_points(group="paymux.sandbox_settings"):
        if ep.name == name:
            settings: dict[str, Any] = ep.load()(data_dir, base_url)
            return settings
    raise KeyError(f"no sandbox for channel {name!r}")


@dataclass
class Stack:
    data_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    gateway_port: int = 8000
    sandbox_ports: dict[str, int] = field(default_factory=lambda: {"alipay": 8001, "wechat": 8002})
    sandbox_args: dict[str, list[str]] = field(default_factory=dict)
    gateway_env: dict[str, str] = field(default_factory=dict)
    channel_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    admin_key: str = ""
    quiet: bool = False
    # How the gateway is started; a test may run it through a module that attaches hooks
    # (paymux/hooks.py) before serving.
    gateway_argv: list[str] = field(
        default_factory=lambda: [sys.executable, "-m", "paymux", "serve"]
    )
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _redis: EmbeddedRedis | None = None

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def sandbox_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.sandbox_ports[name]}"

    def _popen(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        out = (log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            argv,
            stdout=None if not self.quiet and name == "gateway" else out,
            stderr=subprocess.STDOUT if self.quiet or name != "gateway" else None,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # Ctrl-C goes to `paymux dev`, which stops us in order
        )
        self.procs[name] = proc
        return proc

    def start_redis(self) -> str:
        if self.redis_url:
            return self.redis_url
        self._redis = EmbeddedRedis(self.data_dir / "redis")
        self.redis_url = self._redis.start()
        return self.redis_url

    def start_sandboxes(self) -> None:
        for name in self.sandbox_ports:
            self._spawn_sandbox(name)
        for name in self.sandbox_ports:
            self._wait_sandbox(name)

    def start_sandbox(self, name: str) -> None:
        """Start (or restart, after ``stop("sandbox-<name>")``) one sandbox."""
        self._spawn_sandbox(name)
        self._wait_sandbox(name)

    def _spawn_sandbox(self, name: str) -> None:
        argv = [
            sys.executable,
            "-m",
            f"paymux_{name}.sandbox",
            "--port",
            str(self.sandbox_ports[name]),
            "--data-dir",
            str(self.data_dir / "sandbox" / name),
            *self.sandbox_args.get(name, []),
        ]
        self._popen(f"sandbox-{name}", argv)

    def _wait_sandbox(self, name: str) -> None:
        wait_http(f"{self.sandbox_url(name)}/__sandbox/health", proc=self.procs[f"sandbox-{name}"])

    def channel_settings(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                **sandbox_settings(name, self.data_dir / "sandbox" / name, self.sandbox_url(name)),
                **self.channel_overrides.get(name, {}),
            }
            for name in self.sandbox_ports
        }

    def gateway_environment(self) -> dict[str, str]:
        env = {
            "PAYMUX_DATA_DIR": str(self.data_dir),
            "PAYMUX_PORT": str(self.gateway_port),
            "PAYMUX_REDIS_URL": self.start_redis(),
            "PAYMUX_ADMIN_KEY": self.admin_key,
            "PAYMUX_CHANNELS": json.dumps(self.channel_settings()),
            "PAYMUX_CHANNELS_FILE": str(self.data_dir / "no-channels-file.toml"),
        }
        if self.database_url:
            env["PAYMUX_DATABASE_URL"] = self.database_url
        env.update(self.gateway_env)
        return env

    def start_gateway(self, **extra_env: str) -> subprocess.Popen[bytes]:
        env = {**self.gateway_environment(), **extra_env}
        proc = self._popen("gateway", list(self.gateway_argv), env)
        return proc

    def wait_gateway(self, timeout: float = 60.0) -> None:
        wait_http(f"{self.gateway_url}/readyz", timeout=timeout, proc=self.procs.get("gateway"))

    def stop(self, name: str, *, kill: bool = False, timeout: float = 15.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def stop_all(self) -> None:
        for name in ["gateway", *[n for n in list(self.procs) if n != "gateway"]]:
            self.stop(name)
        if self._redis is not None:
            self._redis.stop()
            self._redis = None
