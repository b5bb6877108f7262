"""The load generator, always a separate process: wrk (with a Lua script) where it is on
PATH, else an async Python client (aiohttp on uvloop).

Both print one JSON object: requests, ok, errors, seconds, rps, p50_ms, p95_ms, p99_ms.
``key_mode`` ``fresh`` sends a new Idempotency-Key per request, ``fixed`` one key for all.

    python -m bench.loadgen --url URL [--method POST --body-file F] --header 'K: V' ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Load:
    url: str
    method: str = "GET"
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    key_mode: str = "none"  # none | fresh | fixed
    fixed_key: str = ""
    concurrency: int = 10
    seconds: float = 10.0


def percentile(sorted_ms: list[float], pct: float) -> float:
    if not sorted_ms:
        return 0.0
    index = min(len(sorted_ms) - 1, max(0, round(pct / 100 * len(sorted_ms) + 0.5) - 1))
    return sorted_ms[index]


# --- wrk -----------------------------------------------------------------------------------

_WRK_LUA = """
local body = %(body)s
local method = %(method)s
local key_mode = %(key_mode)s
local fixed_key = %(fixed_key)s
local run = %(run)s
local next_id = 1
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
function init(args)
  n = 0
  base = {}
%(headers)s
end
function request()
  n = n + 1
  if key_mode == "fresh" then
    base["Idempotency-Key"] = run .. "-" .. tid .. "-" .. n
  elseif key_mode == "fixed" then
    base["Idempotency-Key"] = fixed_key
  end
  return wrk.format(method, nil, base, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%%d,"non2xx":%%d,"socket_errors":%%d,"us":%%d,' ..
    '"p50_us":%%d,"p95_us":%%d,"p99_us":%%d}\\n',
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def _lua_str(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def wrk_script(load: Load) -> str:
    headers = "\n".join(
        f"  base[{_lua_str(k)}] = {_lua_str(v)}" for k, v in sorted(load.headers.items())
    )
    return _WRK_LUA % {
        "body": _lua_str(load.body.decode()) if load.body else "nil",
        "method": _lua_str(load.method),
        "key_mode": _lua_str(load.key_mode),
        "fixed_key": _lua_str(load.fixed_key),
        "run": _lua_str(uuid.uuid4().hex[:12]),
        "headers": headers,
    }


def run_wrk(load: Load, wrk: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(wrk_script(load))
        threads = max(1, min(2, load.concurrency))
        argv = [wrk, "-t", str(threads), "-c", str(load.concurrency)]
        argv += ["-d", f"{max(1, round(load.seconds))}s", "--timeout", "30s", "-s", str(script)]
        out = subprocess.run(
            [*argv, load.url],
            check=False,
            capture_output=True,
            text=True,
            timeout=load.seconds + 60,
        )
    line = next((x for x in reversed(out.stdout.splitlines()) if x.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out.stdout[-500:]} {out.stderr[-500:]}")
    raw = json.loads(line)
    seconds = raw["us"] / 1e6
    errors = raw["non2xx"] + raw["socket_errors"]
    return {
        "generator": "wrk",
        "requests": raw["requests"],
        "ok": raw["requests"] - raw["non2xx"],
        "errors": errors,
        "seconds": round(seconds, 3),
        "rps": round((raw["requests"] - raw["non2xx"]) / seconds, 1) if seconds else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
    }


# --- Python (aiohttp) ----------------------------------------------------------------------


async def _python_load(load: Load) -> dict[str, Any]:
    import aiohttp  # noqa: PLC0415

    latencies: list[float] = []
    counts = {"requests": 0, "ok": 0, "errors": 0}
    run = uuid.uuid4().hex[:12]
    connector = aiohttp.TCPConnector(limit=load.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    start = time.perf_counter()
    deadline = start + load.seconds

    async def worker(session: aiohttp.ClientSession, wid: int) -> None:
        n = 0
        headers = dict(load.headers)
        while time.perf_counter() < deadline:
            n += 1
            if load.key_mode == "fresh":
                headers["Idempotency-Key"] = f"{run}-{wid}-{n}"
            elif load.key_mode == "fixed":
                headers["Idempotency-Key"] = load.fixed_key
            t0 = time.perf_counter()
            try:
                async with session.request(
                    load.method, load.url, data=load.body or None, headers=headers
                ) as resp:
                    await resp.read()
                    ok = resp.status < 400
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            latencies.append((time.perf_counter() - t0) * 1000)
            counts["requests"] += 1
            counts["ok" if ok else "errors"] += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session, i) for i in range(load.concurrency)))
    seconds = time.perf_counter() - start
    latencies.sort()
    return {
        "generator": "python-aiohttp",
        **counts,
        "seconds": round(seconds, 3),
        "rps": round(counts["ok"] / seconds, 1),
        "p50_ms": round(percentile(latencies, 50), 3),
        "p95_ms": round(percentile(latencies, 95), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
    }


def run_python(load: Load) -> dict[str, Any]:
    try:
        import uvloop  # noqa: PLC0415

        return uvloop.run(_python_load(load))
    except ImportError:
        return asyncio.run(_python_load(load))


# --- entry points --------------------------------------------------------------------------


def find_wrk(choice: str) -> str | None:
    if choice == "python":
        return None
    found = shutil.which("wrk")
    if choice == "wrk" and found is None:
        raise RuntimeError("--generator wrk, but wrk is not on PATH")
    return found


def drive(load: Load, generator: str = "auto") -> dict[str, Any]:
    """Run ``load`` in a separate generator process and return its summary."""
    wrk = find_wrk(generator)
    if wrk is not None:
        return run_wrk(load, wrk)
    argv = [sys.executable, "-m", "bench.loadgen", "--url", load.url, "--method", load.method]
    argv += ["--concurrency", str(load.concurrency), "--seconds", str(load.seconds)]
    argv += ["--key-mode", load.key_mode, "--fixed-key", load.fixed_key]
    for k, v in load.headers.items():
        argv += ["--header", f"{k}: {v}"]
    with tempfile.NamedTemporaryFile("wb", suffix=".body", delete=False) as fh:
        fh.write(load.body)
        body_file = fh.name
    try:
        out = subprocess.run(
            [*argv, "--body-file", body_file],
            check=False,
            capture_output=True,
            text=True,
            timeout=load.seconds + 60,
            cwd=Path(__file__).resolve().parent.parent,
        )
    finally:
        os.unlink(body_file)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-1000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="async Python load generator")
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body-file", type=Path)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--key-mode", choices=["none", "fresh", "fixed"], default="none")
    parser.add_argument("--fixed-key", default="")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    headers = dict(h.split(": ", 1) for h in args.header)
    body = args.body_file.read_bytes() if args.body_file else b""
    load = Load(
        url=args.url,
        method=args.method,
        body=body,
        headers=headers,
        key_mode=args.key_mode,
        fixed_key=args.fixed_key,
        concurrency=args.concurrency,
        seconds=args.seconds,
    )
    print(json.dumps(run_python(load)))


if __name__ == "__main__":
    main()
