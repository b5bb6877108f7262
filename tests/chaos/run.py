"""The chaos suite: ``make chaos`` (``python -m tests.chaos.run``).

Starts, on loopback only: a fresh database (a uniquely named PostgreSQL database on
127.0.0.1:5432 behind a TCP proxy that can cut or blackhole it, or a SQLite file), a
private redis-server (without persistence, so a restart loses every idempotency record and
schedule), both sandboxes with fault rates (Alipay behind a proxy that can cut it), a
webhook receiver, and two gateway replicas sharing them (one on SQLite, which is
single-node). Merchants' clients drive transfers with a mix of the sandboxes' magic payees
across the replicas and retry like real integrations: the same Idempotency-Key and body on
no answer, 409, 429 and 503. Meanwhile faults are injected: kill -9 of a random replica
(restarted), a Redis restart, PostgreSQL cut and blackholed, the Alipay sandbox cut. After
a settle period every invariant of :mod:`tests.chaos.checks` is checked, a table printed,
and the exit status is 1 on any violation.

Environment (or the matching options): CHAOS_PROFILE=short|long, CHAOS_SEED=<int> (printed
at start; the same seed replays the same choices of payees, amounts, fault order and
targets, though not the machine's timing), CHAOS_DB=postgres|sqlite,
CHAOS_PG_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from paymux.devstack import free_port, sandbox_settings
from paymux.redis_embedded import EmbeddedRedis
from paymux.sealing import new_kek_entry
from tests.chaos import checks
from tests.chaos.checks import ChannelOrder, Delivery, KeyRecord, Row, TransferRow


@dataclass(frozen=True)
class Profile:
    load_seconds: float  # how long merchants send new transfers
    max_keys: int  # ... or until this many keys were sent
    clients: int  # concurrent merchant clients
    settle_seconds: float  # bound on waiting for everything to finish afterwards
    outage_seconds: float  # length of each cut / blackhole
    faults: tuple[str, ...]  # one round of faults, shuffled by the seed; repeated in long runs
    kills: int  # kill -9 of a replica, in total


PROFILES = {
    "short": Profile(
        load_seconds=45,
        max_keys=3000,
        clients=10,
        settle_seconds=60,
        outage_seconds=5,
        faults=("kill", "redis", "pg_cut", "pg_blackhole", "sandbox_cut", "kill"),
        kills=2,
    ),
    "long": Profile(
        load_seconds=1500,
        max_keys=20_000,
        clients=16,
        settle_seconds=180,
        outage_seconds=10,
        faults=("kill", "redis", "pg_cut", "kill", "pg_blackhole", "sandbox_cut"),
        kills=10,
    ),
}

# The sandboxes' magic payees (README, "Sandbox magic values"), weighted towards success.
PAYEES: dict[str, list[str]] = {
    "alipay_account": [
        *[f"user{i}@example.com" for i in range(6)],
        "fail.payee@example.com",
        "delay.payee@example.com",
        "timeout.payee@example.com",
        "error.payee@example.com",
        "busy.payee@example.com",
        "return.payee@example.com",
    ],
    "bank_card": [
        "6222020200112230001",
        "6222020200112234004",
        "6222020200112232002",
        "6222020200112237007",
        "6222020200112235000",
    ],
    "wechat_openid": [
        "o4GgauInH_RCEdvrrNGrntXDu001",
        "o4GgauInH_preauth_okXDu002",
        "o4GgauInH_fail_rrNGrntXDu003",
        "o4GgauInH_delay_rNGrntXDu004",
        "o4GgauInH_busy_NGrntXDu005",
    ],
}

SANDBOX_ARGS = [
    "--delay-seconds",
    "1.0",
    "--hang-seconds",
    "5",
    "--notify-schedule",  # resent for ~2 minutes: longer than a replica's restart here
    "0.3,0.5,1,1,2,2,3,5,5,10,10,15,15,20,30",
    "--fault-rate",
    "0.02",
]

GATEWAY_ENV = {
    "PAYMUX_SYNC_INTERVAL_SECONDS": "0.3",
    "PAYMUX_SYNC_FIRST_DELAY_SECONDS": "0.5",
    "PAYMUX_SYNC_MAX_DELAY_SECONDS": "3",
    "PAYMUX_CHANNEL_CALL_TIMEOUT_SECONDS": "4",
    "PAYMUX_PENDING_RECOVERY_AGE_SECONDS": "15",
    "PAYMUX_WEBHOOK_ALLOW_HTTP": "true",
    "PAYMUX_WEBHOOK_ALLOW_PRIVATE": "true",
    "PAYMUX_WEBHOOK_TIMEOUT_SECONDS": "3",
    "PAYMUX_LOG_LEVEL": "warning",
    "PAYMUX_DATABASE_POOL_SIZE": "4",
}

CHANNEL_TIMEOUTS = {
    "timeout_seconds": 2.0,
    "retry_attempts": 3,
    "retry_initial_seconds": 0.05,
}


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Procs:
    workdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = (logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def signal(self, name: str, sig: int) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


async def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code < 500:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} not up after {seconds}s")


# --- the run -----------------------------------------------------------------------------------


class Chaos:
    def __init__(self, profile: str, seed: int, db: str, workdir: Path) -> None:
        self.profile_name = profile
        self.profile = PROFILES[profile]
        self.seed = seed
        self.db = db
        self.rng = random.Random(seed)
        self.workdir = workdir
        self.procs = Procs(workdir)
        self.replicas = 2 if db == "postgres" else 1
        self.ports = {f"gateway-{i}": free_port() for i in range(self.replicas)}
        self.admin_key = "ak_chaos_" + uuid.uuid4().hex
        self.redis = EmbeddedRedis(workdir / "redis", port=free_port(), persistence=False)
        self.pg_admin_url = os.environ.get(
            "CHAOS_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        )
        self.pg_name = f"paymux_chaos_{uuid.uuid4().hex[:12]}"
        self.direct_url = ""
        self.gateway_db_url = ""
        self.sandbox_ports = {"alipay": free_port(), "wechat": free_port()}
        self.alipay_proxy_port = free_port()
        self.pg_proxy_port = free_port()
        self.receiver_port = free_port()
        self.merchants: dict[str, str] = {}  # id -> secret key
        self.webhook_secrets: dict[str, str] = {}
        self.topups: dict[str, int] = {}
        self.keys: list[KeyRecord] = []
        self.statuses: Counter[int] = Counter()
        self.unexpected: list[str] = []
        self.fault_log: list[str] = []
        self.kills = 0
        self.down: set[str] = set()
        self.kek_file = workdir / "kek"
        self.loading = True

    # --- set-up ------------------------------------------------------------------------------

    async def create_database(self) -> None:
        if self.db == "sqlite":
            self.direct_url = f"sqlite+aiosqlite:///{self.workdir / 'paymux.db'}"
            self.gateway_db_url = self.direct_url
            return
        engine = create_async_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{self.pg_name}"'))
        await engine.dispose()
        base = make_url(self.pg_admin_url).set(database=self.pg_name)
        self.direct_url = base.render_as_string(hide_password=False)
        self.gateway_db_url = base.set(port=self.pg_proxy_port).render_as_string(
            hide_password=False
        )
        pg = make_url(self.pg_admin_url)
        self.procs.start(
            "proxy-postgres",
            [
                sys.executable,
                "-m",
                "tests.chaos.proxy",
                "--listen",
                str(self.pg_proxy_port),
                "--target",
                f"{pg.host or '127.0.0.1'}:{pg.port or 5432}",
            ],
        )

    async def drop_database(self) -> None:
        if self.db != "postgres":
            return
        engine = create_async_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)'))
        finally:
            await engine.dispose()

    async def start_services(self) -> None:
        self.kek_file.write_text(new_kek_entry() + "\n")
        self.kek_file.chmod(0o600)
        self.redis.start()
        wechat_args = list(SANDBOX_ARGS)
        help_text = (
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "paymux_wechat.sandbox", "--help"],
                capture_output=True,
                text=True,
                check=False,
            )
        ).stdout
        if "--confirmation" in help_text:  # newer sandbox: payees confirm unless preauthorized
            wechat_args += ["--confirmation", "preauthorized"]
        for i, (name, port) in enumerate(self.sandbox_ports.items()):
            args = SANDBOX_ARGS if name == "alipay" else wechat_args
            self.procs.start(
                f"sandbox-{name}",
                [
                    sys.executable,
                    "-m",
                    f"paymux_{name}.sandbox",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(self.workdir / "sandbox" / name),
                    "--seed",
                    str(self.seed + i),
                    *args,
                ],
            )
        self.procs.start(
            "proxy-alipay",
            [
                sys.executable,
                "-m",
                "tests.chaos.proxy",
                "--listen",
                str(self.alipay_proxy_port),
                "--target",
                f"127.0.0.1:{self.sandbox_ports['alipay']}",
            ],
        )
        self.procs.start(
            "receiver",
            [
                sys.executable,
                "-m",
                "tests.chaos.receiver",
                "--port",
                str(self.receiver_port),
                "--out",
                str(self.workdir / "deliveries.jsonl"),
            ],
        )
        for name, port in self.sandbox_ports.items():
            await wait_http(f"http://127.0.0.1:{port}/__sandbox/health")
        await wait_http(f"http://127.0.0.1:{self.receiver_port}/health")

    def gateway_env(self, name: str) -> dict[str, str]:
        urls = {
            "alipay": f"http://127.0.0.1:{self.alipay_proxy_port}",
            "wechat": f"http://127.0.0.1:{self.sandbox_ports['wechat']}",
        }
        channels = {
            n: {**sandbox_settings(n, self.workdir / "sandbox" / n, url), **CHANNEL_TIMEOUTS}
            for n, url in urls.items()
        }
        return {
            **GATEWAY_ENV,
            "PAYMUX_DATA_DIR": str(self.workdir / name),
            "PAYMUX_PORT": str(self.ports[name]),
            "PAYMUX_REDIS_URL": self.redis.url,
            "PAYMUX_ADMIN_KEY": self.admin_key,
            "PAYMUX_DATABASE_URL": self.gateway_db_url,
            "PAYMUX_CHANNELS": json.dumps(channels),
            "PAYMUX_CHANNELS_FILE": str(self.workdir / "no-channels.toml"),
            "PAYMUX_KEK_FILE": str(self.kek_file),  # replicas share the key-encryption key
        }

    async def start_gateway(self, name: str) -> None:
        self.procs.start(name, [sys.executable, "-m", "paymux", "serve"], self.gateway_env(name))
        await wait_http(f"http://127.0.0.1:{self.ports[name]}/healthz", 90)
        self.down.discard(name)

    async def create_merchants(self) -> None:
        url = f"http://127.0.0.1:{self.ports['gateway-0']}"
        admin = {"Authorization": f"Bearer {self.admin_key}"}
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for i in range(4):
                r = await client.post("/v1/merchants", json={"name": f"chaos {i}"}, headers=admin)
                r.raise_for_status()
                mid, secret = r.json()["id"], r.json()["secret_key"]
                r = await client.post(  # first, so every event of theirs is delivered
                    "/v1/webhook_endpoints",
                    json={"url": f"http://127.0.0.1:{self.receiver_port}/hook/{mid}"},
                    headers={"Authorization": f"Bearer {secret}"},
                )
                r.raise_for_status()
                self.merchants[mid] = secret
                self.webhook_secrets[mid] = r.json()["secret"]
                # The receiver verifies each delivery as it arrives, with this secret.
                r = await client.post(
                    f"http://127.0.0.1:{self.receiver_port}/secrets/{mid}",
                    content=self.webhook_secrets[mid],
                )
                r.raise_for_status()
                amount = 2_000_000_000
                r = await client.post(
                    f"/v1/merchants/{mid}/topups",
                    json={"amount": amount, "currency": "CNY"},
                    headers={**admin, "Idempotency-Key": uuid.uuid4().hex},
                )
                r.raise_for_status()
                self.topups[mid] = amount

    # --- load --------------------------------------------------------------------------------

    def replica_url(self, rng: random.Random) -> str:
        return f"http://127.0.0.1:{self.ports[rng.choice(sorted(self.ports))]}"

    async def drive_key(
        self, client: httpx.AsyncClient, rng: random.Random, rec: KeyRecord, body: dict[str, Any]
    ) -> None:
        """Send until answered, as a merchant's integration would (same key, same body)."""
        headers = {
            "Authorization": f"Bearer {self.merchants[rec.merchant_id]}",
            "Idempotency-Key": rec.key,
        }
        while time.monotonic() < self.give_up_at:
            try:
                r = await client.post(
                    self.replica_url(rng) + "/v1/transfers", json=body, headers=headers
                )
            except httpx.HTTPError:
                rec.no_answer += 1
                await asyncio.sleep(rng.uniform(0.2, 0.6))
                continue
            self.statuses[r.status_code] += 1
            if r.status_code in (200, 201):
                rec.answers.append((r.status_code, r.json().get("id")))
                return
            rec.answers.append((r.status_code, None))
            if r.status_code == 402:
                return
            if r.status_code in (409, 429, 503) or r.status_code >= 500:
                if r.status_code >= 500 and r.status_code != 503:
                    self.unexpected.append(f"{r.status_code} for key {rec.key}: {r.text[:200]}")
                retry_after = r.headers.get("Retry-After", "")
                wait = float(retry_after) if retry_after.isdigit() else 0.5
                await asyncio.sleep(min(wait, 2.0) * rng.uniform(0.5, 1.0))
                continue
            self.unexpected.append(f"{r.status_code} for key {rec.key}: {r.text[:200]}")
            return

    async def client_loop(self, wid: int) -> None:
        rng = random.Random(self.seed * 1000 + wid)
        merchants = sorted(self.merchants)
        async with httpx.AsyncClient(timeout=httpx.Timeout(15, connect=3)) as client:
            while self.loading and len(self.keys) < self.profile.max_keys:
                payee_type = rng.choice(sorted(PAYEES))
                body = {
                    "amount": rng.choice([1, 100, 2_50, 10_000, rng.randrange(1, 500_000)]),
                    "currency": "CNY",
                    "payee": {
                        "type": payee_type,
                        "account": rng.choice(PAYEES[payee_type]),
                        "name": "Zhang San",
                    },
                    "description": f"chaos {wid}",
                }
                rec = KeyRecord(
                    rng.choice(merchants), f"chaos-{self.seed}-{wid}-{uuid.uuid4().hex}"
                )
                self.keys.append(rec)
                await self.drive_key(client, rng, rec, body)

    # --- faults ------------------------------------------------------------------------------

    def fault_plan(self) -> list[str]:
        p = self.profile
        kinds = [k for k in p.faults if self.db == "postgres" or not k.startswith("pg_")]
        plan: list[str] = []
        kills = 0
        while kills < p.kills:
            round_ = list(kinds)
            self.rng.shuffle(round_)
            for k in round_:
                if k == "kill":
                    if kills >= p.kills:
                        continue
                    kills += 1
                plan.append(k)
        return plan

    async def inject(self, kind: str) -> None:
        p = self.profile
        t0 = time.monotonic()
        if kind == "kill":
            name = self.rng.choice(sorted(self.ports))
            self.down.add(name)
            self.procs.kill(name)  # SIGKILL: no shutdown, in-flight requests die with it
            self.kills += 1
            await asyncio.sleep(self.rng.uniform(0.5, 3))
            await self.start_gateway(name)
            what = f"kill -9 {name}, restarted"
        elif kind == "redis":
            self.redis.stop()
            await asyncio.sleep(self.rng.uniform(0.5, 2))
            await asyncio.to_thread(self.redis.start)
            what = "Redis restarted (no persistence: every record lost)"
        elif kind in ("pg_cut", "pg_blackhole", "sandbox_cut"):
            proxy = "proxy-alipay" if kind == "sandbox_cut" else "proxy-postgres"
            sig = signal.SIGUSR2 if kind == "pg_blackhole" else signal.SIGUSR1
            self.procs.signal(proxy, sig)
            await asyncio.sleep(p.outage_seconds)
            self.procs.signal(proxy, signal.SIGHUP)
            what = {
                "pg_cut": "PostgreSQL cut (refused, connections reset)",
                "pg_blackhole": "PostgreSQL blackholed",
                "sandbox_cut": "Alipay sandbox cut",
            }[kind]
        else:
            raise ValueError(kind)
        self.fault_log.append(f"{what} ({time.monotonic() - t0:.1f}s)")
        log(self.fault_log[-1])

    async def fault_loop(self) -> None:
        plan = self.fault_plan()
        gap = self.profile.load_seconds / (len(plan) + 1)
        for i, kind in enumerate(plan):
            at = self.started + gap * (i + 1) + self.rng.uniform(-gap / 4, gap / 4)
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            await self.inject(kind)  # every planned fault runs; the load lasts until they did

    # --- settle and collect ------------------------------------------------------------------

    async def settled(self, engine: AsyncEngine) -> bool:
        async with engine.connect() as conn:
            busy = (
                await conn.execute(
                    text(
                        "SELECT COUNT(*) FROM transfers WHERE status IN"
                        " ('pending', 'processing', 'requires_confirmation')"
                    )
                )
            ).scalar_one()
            unrelayed = (
                await conn.execute(text("SELECT COUNT(*) FROM events WHERE relayed_at IS NULL"))
            ).scalar_one()
            undelivered = (
                await conn.execute(
                    text("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
                )
            ).scalar_one()
        if busy or unrelayed or undelivered:
            return False
        # The channels' notifications too (a bounce arrives only by notification here).
        async with httpx.AsyncClient(timeout=10) as client:
            for port in self.sandbox_ports.values():
                orders = (await client.get(f"http://127.0.0.1:{port}/__sandbox/orders")).json()
                if any(o["notifications_sent"] and not o["notification_acked"] for o in orders):
                    return False
        return True

    async def sandbox_orders(self) -> list[ChannelOrder]:
        out: list[ChannelOrder] = []
        async with httpx.AsyncClient(timeout=30) as client:
            ali = await client.get(
                f"http://127.0.0.1:{self.sandbox_ports['alipay']}/__sandbox/orders"
            )
            for o in ali.json():
                fen = int(Decimal(str(o["trans_amount"])) * 100)
                out.append(ChannelOrder("alipay", o["out_biz_no"], fen, o["status"]))
            wx = await client.get(
                f"http://127.0.0.1:{self.sandbox_ports['wechat']}/__sandbox/orders"
            )
            for o in wx.json():
                out.append(
                    ChannelOrder("wechat", o["out_bill_no"], int(o["transfer_amount"]), o["state"])
                )
        return out

    async def collect_and_check(self, engine: AsyncEngine) -> list[Row]:
        async with engine.connect() as conn:
            transfers = [
                TransferRow(*r)
                for r in (
                    await conn.execute(
                        text(
                            "SELECT id, merchant_id, idempotency_key, status, amount, fee,"
                            " channel, channel_reference FROM transfers"
                        )
                    )
                ).all()
            ]
            events = [
                (eid, etype, obj)
                for eid, etype, obj in (
                    await conn.execute(text("SELECT id, type, object_id FROM events ORDER BY id"))
                ).all()
            ]
            available = {
                key.split(":")[1]: int(balance)
                for key, balance in (
                    await conn.execute(
                        text(
                            "SELECT key, balance FROM accounts"
                            " WHERE kind = 'merchant_available' AND currency = 'CNY'"
                        )
                    )
                ).all()
            }
        ledger = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "paymux", "ledger", "check"],
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "PAYMUX_DATABASE_URL": self.direct_url,
                "PAYMUX_REDIS_URL": "",
                "PAYMUX_KEK_FILE": str(self.kek_file),
            },
            check=False,
        )
        deliveries = []
        path = self.workdir / "deliveries.jsonl"
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    d = json.loads(line)
                    deliveries.append(
                        Delivery(d["merchant_id"], d["headers"], d["body"], d["error"])
                    )
        return [
            checks.check_keys(self.keys, transfers),
            checks.check_channel_orders(await self.sandbox_orders(), transfers),
            checks.check_settled(transfers),
            checks.check_ledger(ledger.returncode == 0, ledger.stdout + ledger.stderr),
            checks.check_balances(transfers, self.topups, available),
            checks.check_webhooks(events, transfers, deliveries),
            checks.check_client_errors(dict(self.statuses), self.unexpected),
        ]

    # --- main --------------------------------------------------------------------------------

    async def run(self) -> int:
        p = self.profile
        await self.create_database()
        await self.start_services()
        await self.start_gateway("gateway-0")  # migrates the schema first, alone
        for name in sorted(self.ports)[1:]:
            await self.start_gateway(name)
        await self.create_merchants()
        log(f"{self.replicas} replica(s) on {self.db}; load for {p.load_seconds:.0f}s")
        self.started = time.monotonic()
        self.give_up_at = float("inf")  # set when settling starts
        faults = asyncio.create_task(self.fault_loop())
        clients = [asyncio.create_task(self.client_loop(i)) for i in range(p.clients)]
        await asyncio.sleep(p.load_seconds)
        await faults  # an injected outage always ends (healed, restarted) before settling
        self.loading = False
        for name in sorted(self.down):
            await self.start_gateway(name)
        sent = time.monotonic() - self.started
        log(f"load done: {len(self.keys)} keys in {sent:.0f}s; settling")
        # One bound for the whole settle: keys still retried and the database quiet.
        self.give_up_at = time.monotonic() + p.settle_seconds
        await asyncio.gather(*clients)
        engine = create_async_engine(self.direct_url)
        try:
            while time.monotonic() < self.give_up_at and not await self.settled(engine):  # noqa: ASYNC110
                await asyncio.sleep(1)
            log(f"settled in {time.monotonic() - self.started - sent:.0f}s; checking")
            rows = await self.collect_and_check(engine)
        finally:
            await engine.dispose()
        faults_row = Row("faults injected", "; ".join(self.fault_log) or "none", [])
        if self.kills < p.kills:
            faults_row.violations.append(f"only {self.kills} of {p.kills} kills fitted the run")
        rows.insert(0, faults_row)
        print(checks.render(rows), flush=True)
        return 0 if all(r.ok for r in rows) else 1

    async def cleanup(self) -> None:
        self.procs.stop_all()
        with contextlib.suppress(Exception):
            self.redis.stop()
        with contextlib.suppress(Exception):
            await self.drop_database()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=os.environ.get("CHAOS_PROFILE") or "short")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--db", default=os.environ.get("CHAOS_DB") or "postgres")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    env_seed = os.environ.get("CHAOS_SEED")
    seed = (
        args.seed
        if args.seed is not None
        else int(env_seed)
        if env_seed
        else random.randrange(10**6)
    )
    if args.profile not in PROFILES or args.db not in ("postgres", "sqlite"):
        parser.error("CHAOS_PROFILE is short|long and CHAOS_DB is postgres|sqlite")
    workdir = Path(tempfile.mkdtemp(prefix="paymux-chaos-"))
    print(
        f"chaos: seed {seed}, profile {args.profile}, database {args.db}"
        f" (replay: make chaos CHAOS_SEED={seed} CHAOS_PROFILE={args.profile} CHAOS_DB={args.db})",
        flush=True,
    )
    chaos = Chaos(args.profile, seed, args.db, workdir)
    began = time.monotonic()
    code = 1

    async def go() -> int:
        try:
            return await chaos.run()
        finally:
            await chaos.cleanup()

    try:
        code = asyncio.run(go())
    finally:
        took = time.monotonic() - began
        if code == 0 and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"chaos: PASSED in {took:.0f}s", flush=True)
        else:
            print(
                f"chaos: {'FAILED' if code else 'done'} in {took:.0f}s; logs in {workdir}",
                flush=True,
            )
    return code


if __name__ == "__main__":
    sys.exit(main())
