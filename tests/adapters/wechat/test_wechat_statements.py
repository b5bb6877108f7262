"""WeChat Pay's fund-flow bill: the pure format/parse (backtick fields, yuan, summary), and
the sandbox serving it from its persistent book (signed answer, unsigned download checked by
SHA-1, gzip, tamper, ghost orders, restart)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from paymux_wechat.keys import SandboxKeys, ensure_keys
from paymux_wechat.statements import FlowRow, build_fundflow, iter_fundflow

from paymux.channels.base import StatementCorrupt, StatementUnavailable, statement_source
from paymux.domain.outcomes import Outcome
from paymux.domain.statement_lines import StatementLineKind
from tests.adapters.wechat.wechat_test_support import (
    channel_for,
    fast_config,
    order_for,
    running_sandbox,
)


def _row(n: int, **kw: object) -> FlowRow:
    values: dict[str, object] = {
        "booked_at": f"2024-03-05 10:00:{n:02d}",
        "business_no": f"1330000000{n:010d}",
        "flow_no": f"4200{n:012d}",
        "biz_name": "商家转账",
        "biz_type": "转账",
        "direction": "支出",
        "amount": 1234,
        "balance": 100_000,
        "applicant": "1900000109",
        "remark": "转账",
        "voucher_no": f"REF{n}",
    }
    values.update(kw)
    return FlowRow(**values)  # type: ignore[arg-type]


def test_backtick_fields_yuan_and_summary(tmp_path: Path) -> None:
    data = build_fundflow(
        [
            _row(1),
            _row(2, biz_name="手续费", biz_type="扣除手续费", amount=2, voucher_no="REF1"),
            _row(3, biz_type="退回", direction="收入", voucher_no="REF1"),
        ]
    )
    text = data.decode("utf-8")
    lines = text.split("\r\n")
    assert lines[0] == (
        "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额(元),"
        "账户结余(元),资金变更提交申请人,备注,业务凭证号"
    )
    assert lines[1].startswith("`2024-03-05 10:00:01,`13300000000000000001,")
    assert ",`12.34,`1000.00," in lines[1]
    assert lines[4] == "资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额"
    assert lines[5] == "`3,`1,`12.34,`2,`12.36"
    path = tmp_path / "bill.csv"
    path.write_bytes(data)
    parsed = [(ln.kind, ln.reference, ln.amount) for ln in iter_fundflow(path)]
    assert parsed == [
        (StatementLineKind.PAYMENT, "REF1", 1234),
        (StatementLineKind.FEE, "REF1", 2),
        (StatementLineKind.REFUND, "REF1", 1234),
    ]


def test_empty_day(tmp_path: Path) -> None:
    path = tmp_path / "bill.csv"
    path.write_bytes(build_fundflow([]))
    assert list(iter_fundflow(path)) == []


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.split("资金流水总笔数")[0],
        lambda t: t.replace("`1,`0,`0.00,`1,`12.34", "`1,`0,`0.00,`1,`12.35"),
        lambda t: t.replace("`12.34", "`12.3", 1),
        lambda t: t.replace("记账时间", "时间", 1),
    ],
    ids=["truncated", "summary-total", "amount-format", "columns"],
)
def test_corrupted_file_is_refused(tmp_path: Path, edit: object) -> None:
    path = tmp_path / "bill.csv"
    path.write_text(edit(build_fundflow([_row(1)]).decode()), encoding="utf-8")  # type: ignore[operator]
    with pytest.raises(StatementCorrupt):
        list(iter_fundflow(path))


# --- the sandbox ------------------------------------------------------------------------


def _today() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d")


@pytest.fixture
def own_keys(tmp_path: Path) -> SandboxKeys:
    return ensure_keys(tmp_path / "sandbox")


@pytest.fixture
async def running(own_keys: SandboxKeys) -> AsyncIterator[tuple[str, SandboxKeys]]:
    async with running_sandbox(fast_config(own_keys.data_dir)) as (base_url, _app):
        yield base_url, own_keys


async def test_sandbox_serves_its_book_with_tamper_and_ghost(
    running: tuple[str, SandboxKeys], tmp_path: Path
) -> None:
    base_url, keys = running
    channel = channel_for(keys, base_url)
    assert statement_source(channel) is channel
    try:
        paid = order_for("o-paid-user", amount=10_000)
        failed = order_for("o-fail-user", amount=3_000)
        assert (await channel.send(paid)).outcome is Outcome.SUCCEEDED
        assert (await channel.send(failed)).outcome is Outcome.FAILED
        async with httpx.AsyncClient(base_url=base_url) as client:
            won = await client.post(
                f"/__sandbox/orders/{failed.reference}/tamper", json={"status": "SUCCESS"}
            )
            assert won.status_code == 200 and won.json()["state"] == "SUCCESS"
            refund = await client.post(
                f"/__sandbox/orders/{paid.reference}/tamper", json={"status": "REFUND"}
            )
            assert refund.status_code == 400  # WeChat has no bounce state
            more = await client.post(
                f"/__sandbox/orders/{paid.reference}/tamper", json={"amount": 9_999}
            )
            assert more.json()["transfer_amount"] == 9_999
            ghost = (
                await client.post("/__sandbox/ghost_orders", json={"amount": 500, "payee": "o-g"})
            ).json()
        assert (await channel.query(failed)).outcome is Outcome.SUCCEEDED
        path = await channel.download_statement(_today(), tmp_path / "statements")
        lines = [(ln.kind, ln.reference, ln.amount) for ln in channel.iter_statement(path)]
    finally:
        await channel.aclose()
    assert lines == [
        (StatementLineKind.PAYMENT, paid.reference, 9_999),
        (StatementLineKind.FEE, paid.reference, 10),
        (StatementLineKind.PAYMENT, failed.reference, 3_000),
        (StatementLineKind.FEE, failed.reference, 3),
        (StatementLineKind.PAYMENT, ghost["out_bill_no"], 500),
        (StatementLineKind.FEE, ghost["out_bill_no"], 1),
    ]


async def test_wrong_hash_or_signature_is_corrupt(
    running: tuple[str, SandboxKeys], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, keys = running
    channel = channel_for(keys, base_url)
    dest = tmp_path / "statements"
    try:
        with pytest.raises(StatementUnavailable):
            await channel.download_statement("2999-01-01", dest)
        import paymux_wechat.statement_download as download  # noqa: PLC0415

        real = download._gunzip
        monkeypatch.setattr(download, "_gunzip", lambda src, dst: real(src, dst)[::-1])
        with pytest.raises(StatementCorrupt, match="SHA-1"):
            await channel.download_statement(_today(), dest)
        monkeypatch.undo()
        async with httpx.AsyncClient(base_url=base_url) as client:
            await client.post("/__sandbox/config", json={"tamper_response_signature": True})
        with pytest.raises(StatementCorrupt):
            await channel.download_statement(_today(), dest)
        assert not dest.exists() or list(dest.iterdir()) == []
    finally:
        await channel.aclose()


async def test_restarted_sandbox_still_knows_its_bills(own_keys: SandboxKeys) -> None:
    order = order_for("o-restart-user", amount=4_321)
    async with running_sandbox(fast_config(own_keys.data_dir)) as (base_url, _app):
        channel = channel_for(own_keys, base_url)
        try:
            assert (await channel.send(order)).outcome is Outcome.SUCCEEDED
        finally:
            await channel.aclose()
    async with running_sandbox(fast_config(own_keys.data_dir)) as (base_url, _app):
        channel = channel_for(own_keys, base_url)
        try:
            queried = await channel.query(order)
        finally:
            await channel.aclose()
    assert queried.outcome is Outcome.SUCCEEDED
    assert queried.raw["transfer_amount"] == 4_321
    shutil.rmtree(own_keys.data_dir)
