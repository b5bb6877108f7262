"""Profile the gateway under load: py-spy (all threads, from outside, when it is installed:
``pip install py-spy``) or pyinstrument (a dev dependency; the event-loop thread only).

Starts Redis, both sandboxes and the gateway, a merchant, drives ``POST /v1/transfers`` (or
a replay / read) for ``--seconds`` and prints the gateway's CPU ms per request from /proc,
also net of what its background loops cost with no load at all. py-spy's collapsed stacks
are summarised (busy samples by function, self and inclusive); a pyinstrument session is
written for ``pyinstrument --load FILE -r text``. A profiler slows what it watches, so its
output is a map of where the time goes; compare levers by the CPU figures of
``--profiler none`` runs.

    python -m bench.profile [--database sqlite|postgres] [--scenario new|replay|read]
                            [--concurrency 50] [--seconds 10] [--out var/profile]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import orjson

from bench import cpu
from bench.loadgen import Load, drive
from bench.run import PG_BENCH_DB, TRANSFER_BODY, postgres_url
from paymux.devstack import Stack, free_port
from paymux.redis_embedded import EmbeddedRedis


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--scenario", choices=["new", "replay", "read", "idle"], default="new")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument(
        "--profiler", choices=["auto", "py-spy", "pyinstrument", "none"], default="auto"
    )
    parser.add_argument("--interval", type=float, default=0.002, help="pyinstrument's")
    parser.add_argument("--top", type=int, default=45, help="functions listed from py-spy")
    parser.add_argument("--out", type=Path, default=Path("var/profile"))
    parser.add_argument("--gateway-env", action="append", default=[], help="KEY=VALUE")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="paymux-profile-"))
    redis = EmbeddedRedis(root / "redis")
    redis_url = redis.start()
    if args.database == "sqlite":
        url: str | None = f"sqlite+aiosqlite:///{root / 'paymux.db'}"
    else:
        url, why = postgres_url()
        if url is None:
            raise SystemExit(why)
    sandbox = ["--latency-ms", "0", "--fault-rate", "0", "--notify-schedule", "0"]
    stack = Stack(
        data_dir=root / "stack",
        database_url=url,
        redis_url=redis_url,
        gateway_port=free_port(),
        sandbox_ports={"alipay": free_port(), "wechat": free_port()},
        sandbox_args={"alipay": sandbox, "wechat": [*sandbox, "--confirmation", "preauthorized"]},
        gateway_env={
            "PAYMUX_LOG_LEVEL": "warning",
            "PAYMUX_RECONCILIATION_ENABLED": "false",
            "PAYMUX_RATE_LIMIT_PER_SECOND": "1000000",
            "PAYMUX_RATE_LIMIT_BURST": "1000000",
            "PAYMUX_PUBLIC_URL": f"http://127.0.0.1:{free_port()}",
            **dict(kv.split("=", 1) for kv in args.gateway_env),
        },
        admin_key="ak_profile_" + uuid.uuid4().hex,
        quiet=True,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if args.profiler == "auto":
        args.profiler = "py-spy" if Path(spy).is_file() else "pyinstrument"
    session = (args.out / f"{args.database}-{args.scenario}.pyisession").resolve()
    stacks = (args.out / f"{args.database}-{args.scenario}.stacks").resolve()
    try:
        stack.start_sandboxes()
        serve = [sys.executable, "-m", "paymux", "serve"]
        if args.profiler == "pyinstrument":
            serve = [
                sys.executable, "-m", "pyinstrument", "-i", str(args.interval),
                "-r", "pyisession", "-o", str(session), "-m", "paymux", "serve",
            ]  # fmt: skip
        gateway = stack._popen("gateway", serve, stack.gateway_environment())
        stack.wait_gateway(timeout=120)
        admin = {"Authorization": f"Bearer {stack.admin_key}"}
        with httpx.Client(base_url=stack.gateway_url, timeout=60, headers=admin) as client:
            made = client.post("/v1/merchants", json={"name": "Profile merchant"}).json()
            client.post(
                f"/v1/merchants/{made['id']}/topups",
                json={"amount": 10**12, "currency": "CNY"},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            ).raise_for_status()
            auth = {"Authorization": f"Bearer {made['secret_key']}"}
            body = orjson.dumps(TRANSFER_BODY)
            key = uuid.uuid4().hex
            first = client.post(
                "/v1/transfers",
                content=body,
                headers={**auth, "Content-Type": "application/json", "Idempotency-Key": key},
            ).json()
        json_auth = {**auth, "Content-Type": "application/json"}
        transfers = f"{stack.gateway_url}/v1/transfers"
        load = {
            "new": Load(transfers, "POST", body, json_auth, key_mode="fresh"),
            "replay": Load(transfers, "POST", body, json_auth, key_mode="fixed", fixed_key=key),
            "read": Load(f"{transfers}/{first['id']}", headers=auth),
            "idle": Load(f"{stack.gateway_url}/healthz"),
        }[args.scenario]
        if args.scenario != "idle":
            drive(Load(**{**load.__dict__, "concurrency": args.concurrency, "seconds": 1}))
        groups: dict[str, cpu.Selector] = {"gateway": cpu.roots(gateway.pid)}
        if args.database == "postgres":
            groups["postgres backends"] = cpu.titled("postgres:", f" {PG_BENCH_DB} ")
        meter = cpu.Meter(groups)
        # The background loops (sync, outbox relay, webhooks, batches) cost CPU with no load
        # at all; on a starved machine, with few requests, that share per request is large.
        time.sleep(1)
        idle_before = meter.snapshot()
        time.sleep(args.idle_seconds)
        idle = meter.delta_ms(idle_before, meter.snapshot())
        before = meter.snapshot()
        t0 = time.perf_counter()
        spying = None
        if args.profiler == "py-spy":
            spying = subprocess.Popen(
                [
                    spy, "record", "-p", str(gateway.pid), "-d", str(round(args.seconds)),
                    "-r", "250", "-f", "raw", "--nolineno", "-o", str(stacks),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        if args.scenario == "idle":  # the background loops alone
            time.sleep(args.seconds)
            result = {"ok": 1, "rps": 0, "p99_ms": 0, "errors": 0}
        else:
            result = drive(
                Load(**{**load.__dict__, "concurrency": args.concurrency, "seconds": args.seconds})
            )
        if spying is not None:
            spying.wait(60)
        time.sleep(0.5)
        spent = meter.delta_ms(before, meter.snapshot())
        window = time.perf_counter() - t0
        ok = max(1, result["ok"])
        net = {
            k: (v - idle[k] / args.idle_seconds * window) / ok
            for k, v in spent.items()
            if k != "_machine"
        }
        print(
            f"{args.database} {args.scenario} c={args.concurrency}: {result['rps']} req/s, "
            f"p99 {result['p99_ms']} ms, errors {result['errors']}; CPU ms per request: "
            + ", ".join(f"{k} {v / ok:.3f}" for k, v in spent.items() if k != "_machine")
            + "; net of idle ("
            + ", ".join(f"{k} {idle[k] / args.idle_seconds:.0f} ms/s" for k in net)
            + "): "
            + ", ".join(f"{k} {v:.3f}" for k, v in net.items()),
            flush=True,
        )
    finally:
        # SIGINT: uvicorn re-raises the signal it stopped on, and pyinstrument writes its
        # session only when the program ends by an exception it can catch.
        if "gateway" in stack.procs:
            stack.procs["gateway"].send_signal(signal.SIGINT)
            stack.procs["gateway"].wait(300)
        stack.stop_all()
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)
    if args.profiler == "pyinstrument":
        print(f"profile: {session}  (pyinstrument --load {session} -r text)")
    elif args.profiler == "py-spy":
        print(summarise(stacks.read_text(), args.top))
        print(f"stacks: {stacks}")
    return 0


def summarise(collapsed: str, top: int) -> str:
    """Busy samples by function from py-spy's collapsed stacks: self and inclusive shares."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"{total} busy samples", "", "self %  function"]
    out += [f"{100 * n / total:5.1f}  {f}" for f, n in own.most_common(top)]
    out += ["", "incl %  function"]
    out += [f"{100 * n / total:5.1f}  {f}" for f, n in inclusive.most_common(top * 2)]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
