"""Alipay's signcustomer bill: the pure format/parse, and the sandbox serving it from its
persistent order book (download, tamper, ghost orders, restart)."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from paymux_alipay.channel import AlipayChannel
from paymux_alipay.keys import SandboxKeys
from paymux_alipay.sandbox import SANDBOX_KEY, SandboxConfig, build_app
from paymux_alipay.statements import BillRow, build_bill_zip, iter_bill

from paymux.channels.base import (
    StatementCorrupt,
    StatementUnavailable,
    TransferOrder,
    statement_source,
)
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType
from paymux.domain.statement_lines import StatementLineKind
from tests.adapters.alipay.conftest import RunningSandbox, _serve, channel_settings

DAY = "2024-03-05"


def _row(n: int, **kw: object) -> BillRow:
    values: dict[str, object] = {
        "flow_no": f"2024{n:012d}",
        "biz_no": f"20240305110070000006{n:012d}",
        "out_biz_no": f"REF{n}",
        "title": "转账",
        "booked_at": f"{DAY} 10:00:{n:02d}",
        "counterparty": "a***om",
        "income": 0,
        "expense": 1234,
        "balance": 1_000_000 - n,
        "biz_type": "转账",
    }
    values.update(kw)
    return BillRow(**values)  # type: ignore[arg-type]


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "bill.csv.zip"
    path.write_bytes(data)
    return path


def test_bill_is_gbk_with_header_detail_and_summary_blocks(tmp_path: Path) -> None:
    rows = [
        _row(1),
        _row(2, title="转账手续费", expense=2, biz_type="收费", out_biz_no="REF1"),
        _row(3, income=1234, expense=0, biz_type="退票", out_biz_no="REF1"),
        _row(4, out_biz_no="", biz_type="充值", income=500, expense=0),
    ]
    data = build_bill_zip("2088000000000001", DAY, "2024-03-06", rows, f"{DAY} 23:00:00")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert any(n.endswith("_账务明细.csv") for n in names)
        assert any("汇总" in n for n in names)
        raw = zf.read(next(n for n in names if n.endswith("_账务明细.csv")))
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("gbk")
    assert text.startswith("#支付宝账务明细查询\r\n#账号：[2088000000000001]")
    assert "#起始日期：[2024年03月05日 00:00:00]" in text
    assert "账务流水号,业务流水号,商户订单号,商品名称,发生时间,对方账号" in text
    assert "#收入合计：2笔，共17.34元" in text
    assert "#支出合计：2笔，共-12.36元" in text
    assert "#导出时间：[2024年03月05日 23:00:00]" in text

    lines = list(iter_bill(_write(tmp_path, data)))
    assert [(ln.kind, ln.reference, ln.amount) for ln in lines] == [
        (StatementLineKind.PAYMENT, "REF1", 1234),
        (StatementLineKind.FEE, "REF1", 2),
        (StatementLineKind.REFUND, "REF1", 1234),
        (StatementLineKind.OTHER, None, 500),
    ]
    assert lines[0].channel_order_id == "20240305110070000006000000000001"
    assert lines[0].booked_at == f"{DAY} 10:00:01"


def test_empty_day_parses_to_no_lines(tmp_path: Path) -> None:
    data = build_bill_zip("2088000000000001", DAY, "2024-03-06", [], f"{DAY} 23:00:00")
    assert list(iter_bill(_write(tmp_path, data))) == []


def _rezip(data: bytes, edit: object) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            content = src.read(info)
            if info.filename.endswith("_账务明细.csv"):
                content = edit(content.decode("gbk")).encode("gbk")  # type: ignore[operator]
            dst.writestr(info, content)
    return out.getvalue()


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.split("#-----------------------------------------账务明细列表结束")[0],
        lambda t: t.replace("#支出合计：1笔", "#支出合计：2笔"),
        lambda t: t.replace("-12.34", "-12.35", 1),
        lambda t: t.replace("账务流水号,", "流水,", 1),
    ],
    ids=["truncated", "summary-count", "amount-edited", "columns"],
)
def test_corrupted_bill_is_refused(tmp_path: Path, edit: object) -> None:
    data = build_bill_zip("2088000000000001", DAY, "2024-03-06", [_row(1)], f"{DAY} 23:00:00")
    with pytest.raises(StatementCorrupt):
        list(iter_bill(_write(tmp_path, _rezip(data, edit))))


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StatementCorrupt):
        list(iter_bill(_write(tmp_path, b"<html>error</html>")))


# --- the sandbox ------------------------------------------------------------------------


def _today() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d")


def _order(reference: str, account: str, amount: int, card: bool = False) -> TransferOrder:
    return TransferOrder(
        reference=reference,
        amount=amount,
        currency="CNY",
        payee_type=PayeeType.BANK_CARD if card else PayeeType.ALIPAY_ACCOUNT,
        payee_account=account,
        payee_name="张三" if card else None,
    )


@pytest.fixture
async def own_sandbox(tmp_path: Path, alipay_keys: SandboxKeys) -> RunningSandbox:
    # A data dir of its own (keys copied in) so the order book starts empty.
    for path in Path(alipay_keys.app_private_key).parent.glob("*.pem"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    for path in Path(alipay_keys.app_private_key).parent.glob("*.txt"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    config = SandboxConfig(port=0, data_dir=tmp_path, app_id=alipay_keys.app_id, seed=3)
    app = build_app(config)
    runner, url = await _serve(app)
    yield RunningSandbox(url=url, sandbox=app[SANDBOX_KEY], config=config, keys=alipay_keys)
    await runner.cleanup()


async def test_sandbox_serves_its_book_with_tamper_and_ghost(
    own_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    channel = AlipayChannel(channel_settings(own_sandbox.url, own_sandbox.keys))
    assert statement_source(channel) is channel
    tag = datetime.now().strftime("%H%M%S%f")
    try:
        paid = _order(f"P{tag}", "alice@example.com", 10_000)
        card = _order(f"C{tag}", "6222020200001111", 20_000, card=True)
        for order in (paid, card):
            assert (await channel.send(order)).outcome is Outcome.SUCCEEDED
        async with httpx.AsyncClient(base_url=own_sandbox.url) as client:
            bounced = await client.post(
                f"/__sandbox/orders/{paid.reference}/tamper", json={"status": "REFUND"}
            )
            assert bounced.status_code == 200 and bounced.json()["status"] == "REFUND"
            ghost = (
                await client.post("/__sandbox/ghost_orders", json={"amount": 777, "payee": "g@x"})
            ).json()
            bad = await client.post(f"/__sandbox/orders/{card.reference}/tamper", json={"x": 1})
            assert bad.status_code == 400
        # Silent: the query now says REFUND, and no notification was attempted.
        assert (await channel.query(paid)).outcome is Outcome.RETURNED
        path = await channel.download_statement(_today(), tmp_path / "statements")
        lines = [(ln.kind, ln.reference, ln.amount) for ln in channel.iter_statement(path)]
    finally:
        await channel.aclose()
    assert lines == [
        (StatementLineKind.PAYMENT, paid.reference, 10_000),
        (StatementLineKind.FEE, paid.reference, 10),  # 0.1 %
        (StatementLineKind.PAYMENT, card.reference, 20_000),
        (StatementLineKind.FEE, card.reference, 110),  # 0.05 % + 1.00
        (StatementLineKind.REFUND, paid.reference, 10_000),
        (StatementLineKind.PAYMENT, ghost["out_biz_no"], 777),
        (StatementLineKind.FEE, ghost["out_biz_no"], 1),
    ]


async def test_restarted_sandbox_still_knows_its_orders(
    own_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    channel = AlipayChannel(channel_settings(own_sandbox.url, own_sandbox.keys))
    order = _order(f"R{datetime.now().strftime('%H%M%S%f')}", "bob@example.com", 5_000)
    try:
        assert (await channel.send(order)).outcome is Outcome.SUCCEEDED
    finally:
        await channel.aclose()
    app = build_app(own_sandbox.config)
    runner, url = await _serve(app)
    channel = AlipayChannel(channel_settings(url, own_sandbox.keys))
    try:
        again = await channel.query(order)
        assert again.outcome is Outcome.SUCCEEDED
        path = await channel.download_statement(_today(), tmp_path / "after-restart")
        assert [ln.reference for ln in channel.iter_statement(path)] == [order.reference] * 2
    finally:
        await channel.aclose()
        await runner.cleanup()


async def test_bad_signature_and_future_day(own_sandbox: RunningSandbox, tmp_path: Path) -> None:
    channel = AlipayChannel(channel_settings(own_sandbox.url, own_sandbox.keys))
    try:
        dest = tmp_path / "statements"
        with pytest.raises(StatementUnavailable):
            await channel.download_statement("2999-01-01", dest)
        own_sandbox.config.tamper_response_signature = True
        with pytest.raises(StatementCorrupt):
            await channel.download_statement(_today(), dest)
        assert not dest.exists() or list(dest.iterdir()) == []
    finally:
        await channel.aclose()


async def test_download_url_expires(own_sandbox: RunningSandbox) -> None:
    node = await own_sandbox.sandbox.statements.bill_url(
        {"bill_type": "signcustomer", "bill_date": _today()}, {}
    )
    # Called outside a request, so the URL is relative to the sandbox.
    url = own_sandbox.url + node["bill_download_url"].replace("timestamp=", "timestamp=1")
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).status_code == 403
