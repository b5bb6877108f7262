"""The `paymux` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from paymux.settings import Settings

log = logging.getLogger("paymux")


def _admin_key(settings: Settings) -> str:
    """The configured admin key, or one generated once and kept in var/ (mode 600)."""
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value()
    path = settings.data_dir / "admin_key"
    if path.is_file():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = "ak_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415

    from paymux.redis_embedded import EmbeddedRedis  # noqa: PLC0415

    settings = Settings()
    workers = args.workers or settings.workers
    if workers > 1 and settings.database_url.startswith("sqlite"):
        # One writer: each process would have its own writer thread over one file, their
        # transactions failing on SQLite's file lock instead of queueing (docs/SCALING.md).
        print(
            f"paymux serve: --workers {workers} needs PostgreSQL (PAYMUX_DATABASE_URL="
            "postgresql+asyncpg://...); SQLite has a single writer, so it runs one worker",
            file=sys.stderr,
        )
        return 2
    embedded: EmbeddedRedis | None = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.data_dir / "redis")
        os.environ["PAYMUX_REDIS_URL"] = embedded.start()
        log.info("started embedded Redis (data under %s)", settings.data_dir / "redis")
    if settings.admin_key is None:
        os.environ["PAYMUX_ADMIN_KEY"] = _admin_key(settings)
        log.info("admin key is in %s", settings.data_dir / "admin_key")
    if workers > 1:
        # Migrate once here, not in every worker at the same time.
        asyncio.run(_upgrade(Settings()))
        os.environ["PAYMUX_AUTO_MIGRATE"] = "false"
    try:
        uvicorn.run(
            "paymux.api.app:create_served_app",
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            log_level=settings.log_level,
            log_config=None,  # our handler and format (paymux.logs), not uvicorn's
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    for ep in entry_points(group="paymux.sandboxes"):
        if ep.name == args.channel:
            try:
                run = ep.load()
            except ModuleNotFoundError:
                # The production image leaves the sandboxes out (see the Dockerfile).
                print(f"the {args.channel} sandbox is not installed here", file=sys.stderr)
                return 2
            run(args.rest)
            return 0
    print(f"no sandbox named {args.channel!r}", file=sys.stderr)
    return 2


async def _upgrade(settings: Settings) -> None:
    from paymux.store.db import Database  # noqa: PLC0415
    from paymux.store.migrate import upgrade  # noqa: PLC0415

    db = Database(settings.database_url)
    try:
        await upgrade(db.engine)
    finally:
        await db.dispose()


def cmd_db_upgrade(_: argparse.Namespace) -> int:
    asyncio.run(_upgrade(Settings()))
    print("database schema is up to date")
    return 0


async def _ledger_check(settings: Settings) -> list[str]:
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    from paymux.progress import progress  # noqa: PLC0415
    from paymux.service.ledger_digests import verify  # noqa: PLC0415
    from paymux.store.db import Database  # noqa: PLC0415
    from paymux.store.ledger_repo import LedgerRepo  # noqa: PLC0415

    db = Database(settings.database_url)
    try:
        with progress("ledger check", total=LedgerRepo.CHECK_STEPS + 1) as bar:
            async with db.read() as conn:
                problems = await LedgerRepo.check(conn, step=lambda note: bar.advance(note=note))
                # Sealed business days: any edit of a past entry or posting is named.
                problems += await verify(conn, ZoneInfo(settings.business_timezone))
                bar.advance(note="sealed days verified")
                return problems
    finally:
        await db.dispose()


def cmd_ledger_check(_: argparse.Namespace) -> int:
    problems = asyncio.run(_ledger_check(Settings()))
    for problem in problems:
        print(f"LEDGER BREAK: {problem}")
    if problems:
        return 1
    print("ledger OK: every entry balances, balances equal the journal, none negative")
    return 0


async def _keys_rotate(settings: Settings) -> str:
    from paymux.service.bootstrap import resolve_keks  # noqa: PLC0415
    from paymux.service.gateway import utcnow  # noqa: PLC0415
    from paymux.store import data_keys_repo as dk  # noqa: PLC0415
    from paymux.store.db import Database  # noqa: PLC0415

    keks = resolve_keks(settings)
    db = Database(settings.database_url)
    try:
        report = await dk.rewrap_data_keys(db, keks, utcnow())
        await dk.load_data_keys(db, keks, utcnow())
        sealed = await dk.seal_plaintext_rows(db)
    finally:
        await db.dispose()
    return (
        f"data keys re-wrapped under {keks[0].id}: {report.rewrapped} "
        f"(already current: {report.already_current}); plaintext rows sealed: {sealed}"
    )


def cmd_keys_rotate(_: argparse.Namespace) -> int:
    print(asyncio.run(_keys_rotate(Settings())))
    return 0


def cmd_keys_seal_file(args: argparse.Namespace) -> int:
    """Encrypt a channel key file under the current KEK (written next to it, mode 600)."""
    from paymux.sealing import is_sealed_file, seal_file_bytes  # noqa: PLC0415
    from paymux.service.bootstrap import resolve_keks  # noqa: PLC0415

    source = Path(args.path)
    data = source.read_bytes()
    if is_sealed_file(data):
        print(f"{source} is already sealed", file=sys.stderr)
        return 1
    target = Path(args.output) if args.output else source.with_name(source.name + ".sealed")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(seal_file_bytes(resolve_keks(Settings())[0], data))
    print(f"sealed {source} -> {target}; point the *_file setting at it, then delete {source}")
    return 0


def cmd_keys_new_kek(_: argparse.Namespace) -> int:
    from paymux.sealing import new_kek_entry  # noqa: PLC0415

    print(new_kek_entry())
    return 0


async def _audit_verify(settings: Settings) -> tuple[int, tuple[int, str] | None]:
    from paymux.domain.audit_chain import first_break  # noqa: PLC0415
    from paymux.store.audit_repo import all_in_order  # noqa: PLC0415
    from paymux.store.db import Database  # noqa: PLC0415

    db = Database(settings.database_url)
    try:
        records = await all_in_order(db)
    finally:
        await db.dispose()
    return len(records), first_break(records)


def cmd_audit_verify(_: argparse.Namespace) -> int:
    count, broken = asyncio.run(_audit_verify(Settings()))
    if broken is not None:
        print(f"AUDIT CHAIN BROKEN at record {broken[0]}: {broken[1]}")
        return 1
    print(f"audit chain OK: {count} records, each carries the previous record's hash")
    return 0


def cmd_merchants_create(args: argparse.Namespace) -> int:
    import httpx  # noqa: PLC0415

    settings = Settings()
    url = args.url or f"http://{settings.host}:{settings.port}"
    resp = httpx.post(
        f"{url}/v1/merchants",
        json={"name": args.name},
        headers={"Authorization": f"Bearer {_admin_key(settings)}"},
    )
    print(json.dumps(resp.json(), indent=2, ensure_ascii=False))
    return 0 if resp.status_code == 201 else 1


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Exit 0: every line matched after healing; 1: discrepancies remain open; 2: the run
    could not complete (gateway or channel unreachable, bad signature or hash)."""
    import httpx  # noqa: PLC0415

    settings = Settings()
    url = args.url or f"http://{settings.host}:{settings.port}"
    from paymux.progress import progress  # noqa: PLC0415

    try:
        # One request does the whole run (download, match, heal); progress goes to stderr.
        with progress(f"reconcile {args.channel} {args.date}", total=1) as bar:
            resp = httpx.post(
                f"{url}/v1/reconciliation/runs",
                json={"channel": args.channel, "date": args.date},
                headers={"Authorization": f"Bearer {_admin_key(settings)}"},
                timeout=httpx.Timeout(600.0, connect=5.0),
            )
            bar.advance(note=f"HTTP {resp.status_code}")
    except httpx.HTTPError as exc:
        print(f"reconcile: cannot reach the gateway at {url}: {exc}", file=sys.stderr)
        return 2
    try:
        body = resp.json()
    except ValueError:
        body = {"detail": resp.text[:200]}
    if resp.status_code != 201:
        print(
            f"reconcile: the run could not complete ({resp.status_code}): "
            f"{body.get('detail') or body.get('title')}",
            file=sys.stderr,
        )
        return 2
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        _print_run(body)
    return 1 if body["open"] else 0


def _print_run(run: dict[str, Any]) -> None:
    summary = run["summary"]
    stmt = summary["statement"]
    print(
        f"run {run['id']}  {run['channel']} {run['date']}  statement sha256 "
        f"{run['statement']['sha256']}"
    )
    print(
        f"  statement: {stmt['lines']} lines, paid {stmt['payment_total']} fen, returned "
        f"{stmt['refund_total']} fen, fees {stmt['fee_total']} fen"
    )
    print(
        f"  matched references: {summary['matched_references']}, healed: {summary['healed']}, "
        f"critical: {summary['critical']}"
    )
    for kind, count in summary["found"].items():
        if count:
            print(f"  {kind}: {count} found, {summary['open'][kind]} open")
    for d in run["discrepancies"]:
        if d["state"] == "open":
            print(f"  OPEN {d['severity']:8} {d['kind']:22} {d['reference']}  {d['detail']}")
    print("all lines matched" if not run["open"] else f"{run['open']} discrepancies open")


def _demo_merchant(gateway_url: str, admin_key: str, data_dir: Path) -> dict[str, Any]:
    """The demo merchant of `make run`, created and funded once, remembered in var/."""
    import httpx  # noqa: PLC0415

    path = data_dir / "demo_merchant.json"
    headers = {"Authorization": f"Bearer {admin_key}"}
    if path.is_file():
        demo: dict[str, Any] = json.loads(path.read_text())
        check = httpx.get(
            f"{gateway_url}/v1/balance", headers={"Authorization": f"Bearer {demo['secret_key']}"}
        )
        if check.status_code == 200:
            return demo
    created = httpx.post(
        f"{gateway_url}/v1/merchants", json={"name": "Demo merchant"}, headers=headers
    )
    created.raise_for_status()
    demo = created.json()
    httpx.post(
        f"{gateway_url}/v1/merchants/{demo['id']}/topups",
        json={"amount": 100_000_000, "currency": "CNY", "description": "demo funds"},
        headers={**headers, "Idempotency-Key": f"demo-funds-{demo['id']}"},
    ).raise_for_status()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(demo, fh)
    return demo


def cmd_dev(args: argparse.Namespace) -> int:
    from paymux.devstack import Stack  # noqa: PLC0415

    settings = Settings()
    data_dir = settings.data_dir.resolve()
    stack = Stack(
        data_dir=data_dir,
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        gateway_port=args.port or settings.port,
        sandbox_ports={"alipay": args.alipay_port, "wechat": args.wechat_port},
        admin_key=_admin_key(settings),
    )
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        print("starting Redis, the Alipay and WeChat sandboxes and the gateway ...", flush=True)
        stack.start_redis()
        stack.start_sandboxes()
        stack.start_gateway()
        stack.wait_gateway()
        demo = _demo_merchant(stack.gateway_url, stack.admin_key, data_dir)
        _banner(stack, demo)
        while not stopping:
            for name, proc in list(stack.procs.items()):
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; stopping", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        print("\nstopping ...", flush=True)
        stack.stop_all()
    return 0


def _banner(stack: Any, demo: dict[str, Any]) -> None:
    url = stack.gateway_url
    print(
        f"""
Paymux is running.
  gateway          {url}   (API docs: {url}/docs)
  dashboard        {url}/dashboard   (sign in with either key below)
  Alipay sandbox   {stack.sandbox_url("alipay")}
  WeChat sandbox   {stack.sandbox_url("wechat")}
  admin key        {stack.admin_key}
  demo merchant    {demo["id"]}   secret key: {demo["secret_key"]}
                   (funded with 1,000,000.00 CNY)

Send a first transfer (12.34 CNY to an Alipay account):

curl -s {url}/v1/transfers \\
  -H "Authorization: Bearer {demo["secret_key"]}" \\
  -H "Idempotency-Key: $(date +%s%N)" \\
  -H "Content-Type: application/json" \\
  -d '{{"amount": 1234, "currency": "CNY", "description": "first transfer",
       "payee": {{"type": "alipay_account", "account": "alice@example.com", "name": "Alice"}}}}'

A WeChat transfer waits for its payee's confirmation (status requires_confirmation, as on
the real channel). Send one to the openid "o_demo_user", then play the payee's tap with the
transfer's channel_reference (its out_bill_no):

curl -s -X POST {stack.sandbox_url("wechat")}/__sandbox/transfer-bills/<channel_reference>/confirm

(…/reject refuses it; POST {url}/v1/transfers/<id>/cancel cancels it first.)

Press Ctrl-C to stop everything.
""",
        flush=True,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paymux", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers",
        type=int,
        help="worker processes sharing the port (PostgreSQL only; default PAYMUX_WORKERS, 1)",
    )
    serve.set_defaults(func=cmd_serve)

    dev = sub.add_parser("dev", help="gateway + both sandboxes + Redis on local defaults")
    dev.add_argument("--port", type=int, default=None)
    dev.add_argument(
        "--alipay-port", type=int, default=int(os.environ.get("PAYMUX_ALIPAY_SANDBOX_PORT", "8001"))
    )
    dev.add_argument(
        "--wechat-port", type=int, default=int(os.environ.get("PAYMUX_WECHAT_SANDBOX_PORT", "8002"))
    )
    dev.set_defaults(func=cmd_dev)

    sandbox = sub.add_parser("sandbox", help="run a channel simulator: sandbox alipay --port 8001")
    sandbox.add_argument("channel")
    sandbox.add_argument("rest", nargs=argparse.REMAINDER)
    sandbox.set_defaults(func=cmd_sandbox)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)

    ledger = sub.add_parser("ledger", help="ledger tools")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True)
    ledger_sub.add_parser("check", help="verify the ledger; exit 1 on any break").set_defaults(
        func=cmd_ledger_check
    )

    keys = sub.add_parser("keys", help="encryption keys (data at rest)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser(
        "rotate", help="re-wrap data keys under the first configured KEK; seal old plaintext"
    ).set_defaults(func=cmd_keys_rotate)
    seal = keys_sub.add_parser("seal-file", help="encrypt a channel key file under the KEK")
    seal.add_argument("path")
    seal.add_argument("--output")
    seal.set_defaults(func=cmd_keys_seal_file)
    keys_sub.add_parser("new-kek", help="print a new key-encryption key entry").set_defaults(
        func=cmd_keys_new_kek
    )

    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="check the hash chain; exit 1 on any break").set_defaults(
        func=cmd_audit_verify
    )

    reconcile = sub.add_parser(
        "reconcile", help="reconcile a channel's statement of one day (exit 0 / 1 open / 2 failed)"
    )
    reconcile.add_argument("--channel", required=True)
    reconcile.add_argument("--date", required=True, help="business day, YYYY-MM-DD")
    reconcile.add_argument("--json", action="store_true", help="print the run as JSON")
    reconcile.add_argument("--url", help="gateway URL (default: this host's settings)")
    reconcile.set_defaults(func=cmd_reconcile)

    merchants = sub.add_parser("merchants", help="merchant administration")
    m_sub = merchants.add_subparsers(dest="merchants_command", required=True)
    create = m_sub.add_parser("create", help="create a merchant (prints its key once)")
    create.add_argument("name")
    create.add_argument("--url", help="gateway URL (default: this host's settings)")
    create.set_defaults(func=cmd_merchants_create)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    from paymux import logs  # noqa: PLC0415

    logs.configure()
    args = build_parser().parse_args(argv)
    raise SystemExit(args.func(args))
