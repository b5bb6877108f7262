"""Alipay's account-flow bill (账务明细, ``bill_type=signcustomer``): pure format and parse.

``alipay.data.dataservice.bill.downloadurl.query`` answers a short-lived
``bill_download_url``; behind it is a ``csv.zip`` holding the detail CSV
(``<account>_<yyyyMMdd>_账务明细.csv``) and a summary CSV (``…_账务明细(汇总).csv``), both
GBK-encoded. The detail CSV is a ``#`` header block, one column-title line, the detail lines,
then a ``#`` summary block::

    #支付宝账务明细查询
    #账号：[20880000000000000156]
    #起始日期：[2024年01月01日 00:00:00]   终止日期：[2024年01月02日 00:00:00]
    #-----------------------------------------账务明细列表----------------------------------------
    账务流水号,业务流水号,商户订单号,商品名称,发生时间,对方账号,收入金额（+元）,支出金额（-元）,...
    ...detail lines...
    #-----------------------------------------账务明细列表结束------------------------------------
    #收入合计：1笔，共12.34元
    #支出合计：2笔，共-24.68元
    #导出时间：[2024年01月02日 09:00:00]

Nothing here does I/O beyond reading the given file, so it is tested without a network; the
sandbox writes its bills with :func:`build_bill_zip` and the channel reads them with
:func:`iter_bill`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from paymux.channels.base import StatementCorrupt
from paymux.domain.statement_lines import StatementLine, StatementLineKind

METHOD_BILL_URL: Final = "alipay.data.dataservice.bill.downloadurl.query"
BILL_TYPE: Final = "signcustomer"
ENCODING: Final = "gbk"
# The bill does not exist (yet, or for a day with no account activity).
SUB_CODE_BILL_NOT_EXIST: Final = "isp.bill_not_exist"

# GUESS: column titles as remembered from downloaded signcustomer bills; fullwidth parentheses.
COLUMNS: Final = (
    "账务流水号",
    "业务流水号",
    "商户订单号",
    "商品名称",
    "发生时间",
    "对方账号",
    "收入金额（+元）",
    "支出金额（-元）",
    "账户余额（元）",
    "交易渠道",
    "业务类型",
    "备注",
)
_REQUIRED: Final = ("账务流水号", "业务流水号", "商户订单号", "发生时间", "业务类型")
_INCOME_COLUMN, _EXPENSE_COLUMN = COLUMNS[6], COLUMNS[7]

TITLE_LINE: Final = "#支付宝账务明细查询"
LIST_START: Final = (
    "#-----------------------------------------账务明细列表----------------------------------------"
)
LIST_END: Final = (
    "#-----------------------------------------账务明细列表结束------------------------------------"
)

# GUESS: the business-type words. A transfer's payout is 转账; the channel's charge for it is
# a separate 收费 line carrying the same 商户订单号 (the docs show fees as their own account
# lines, not as a column of the payout line); a bank bounce comes back as an income line.
BIZ_TYPE_TRANSFER: Final = "转账"
BIZ_TYPE_FEE: Final = "收费"
BIZ_TYPE_REFUND: Final = "退票"
CHANNEL_WORD: Final = "OPENAPI"  # GUESS: 交易渠道 of API-initiated transfers

_SUMMARY = re.compile(
    r"#(收入|支出)合计[：:]\s*(\d+)笔[，,]\s*共\s*([+-]?[0-9]+(?:\.[0-9]{1,2})?)元"
)


@dataclass(frozen=True, slots=True)
class BillRow:
    """One detail line as the sandbox writes it. Amounts are fen; one of income/expense is 0."""

    flow_no: str  # 账务流水号
    biz_no: str  # 业务流水号: Alipay's order id
    out_biz_no: str  # 商户订单号: our reference
    title: str  # 商品名称
    booked_at: str  # 发生时间, "yyyy-MM-dd HH:mm:ss"
    counterparty: str  # 对方账号
    income: int
    expense: int
    balance: int  # 账户余额 after this line
    biz_type: str
    remark: str = ""


def _yuan(fen: int, *, signed: bool = False) -> str:
    text = f"{abs(fen) // 100}.{abs(fen) % 100:02d}"
    if signed and fen < 0:
        return "-" + text
    if signed and fen > 0:
        return "+" + text
    return text


def _expense_total(fen: int) -> str:
    return _yuan(-fen, signed=True) if fen else "0.00"


def _fen(text: str) -> int:
    """Signed yuan text ("+12.34", "-0.01", "12", "") to fen, strictly."""
    text = text.strip()
    if not text:
        return 0
    match = re.fullmatch(r"([+-]?)([0-9]+)(?:\.([0-9]{1,2}))?", text)
    if match is None:
        raise StatementCorrupt(f"not a yuan amount: {text!r}")
    sign, whole, frac = match.groups()
    fen = int(whole) * 100 + int((frac or "0").ljust(2, "0"))
    return -fen if sign == "-" else fen


def _cn_day(day: str, time: str = "00:00:00") -> str:
    y, m, d = day.split("-")
    return f"{y}年{m}月{d}日 {time}"


def detail_csv(
    account: str, bill_date: str, next_date: str, rows: Iterable[BillRow], exported_at: str
) -> str:
    """The detail CSV text (before GBK encoding) for one day."""
    out = io.StringIO()
    out.write(f"{TITLE_LINE}\r\n#账号：[{account}]\r\n")
    out.write(f"#起始日期：[{_cn_day(bill_date)}]   终止日期：[{_cn_day(next_date)}]\r\n")
    out.write(LIST_START + "\r\n")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    income_n = expense_n = income = expense = 0
    for row in rows:
        # GUESS: ids carry a trailing tab so spreadsheet programs keep them as text.
        writer.writerow(
            (
                row.flow_no + "\t",
                row.biz_no + "\t",
                row.out_biz_no + "\t",
                row.title,
                row.booked_at,
                row.counterparty,
                _yuan(row.income, signed=True) if row.income else "",
                _yuan(-row.expense, signed=True) if row.expense else "",
                _yuan(row.balance),
                CHANNEL_WORD,
                row.biz_type,
                row.remark,
            )
        )
        if row.income:
            income_n, income = income_n + 1, income + row.income
        if row.expense:
            expense_n, expense = expense_n + 1, expense + row.expense
    out.write(LIST_END + "\r\n")
    out.write(f"#收入合计：{income_n}笔，共{_yuan(income)}元\r\n")
    out.write(
        f"#支出合计：{expense_n}笔，共{_yuan(-expense, signed=True) if expense else '0.00'}元\r\n"
    )
    y, m, d = exported_at[:10].split("-")
    out.write(f"#导出时间：[{y}年{m}月{d}日 {exported_at[11:19]}]\r\n")
    return out.getvalue()


def build_bill_zip(
    account: str, bill_date: str, next_date: str, rows: Iterable[BillRow], exported_at: str
) -> bytes:
    """The ``csv.zip`` Alipay serves for ``bill_date``: detail and summary CSVs, GBK."""
    rows = list(rows)
    compact = bill_date.replace("-", "")
    detail = detail_csv(account, bill_date, next_date, rows, exported_at)
    income = sum(r.income for r in rows)
    expense = sum(r.expense for r in rows)
    # GUESS: the summary CSV's layout; Paymux does not read it (the detail file has totals).
    summary = (
        "#支付宝账务明细汇总\r\n"
        f"#账号：[{account}]\r\n"
        "收入笔数,收入金额（+元）,支出笔数,支出金额（-元）\r\n"
        f"{sum(1 for r in rows if r.income)},{_yuan(income)},"
        f"{sum(1 for r in rows if r.expense)},{_expense_total(expense)}\r\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{account}_{compact}_账务明细.csv", detail.encode(ENCODING))
        zf.writestr(f"{account}_{compact}_账务明细(汇总).csv", summary.encode(ENCODING))
    return buffer.getvalue()


def _detail_member(zf: zipfile.ZipFile) -> zipfile.ZipInfo:
    candidates = []
    for info in zf.infolist():
        name = info.filename
        if not (info.flag_bits & 0x800):  # name not flagged UTF-8: zipfile decoded it as cp437
            with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
                name = name.encode("cp437").decode(ENCODING)
        if name.endswith(".csv") and "汇总" not in name:
            candidates.append(info)
    if len(candidates) != 1:
        raise StatementCorrupt("the bill archive does not hold exactly one detail CSV")
    return candidates[0]


def _kind(biz_type: str, reference: str, income: int, expense: int) -> StatementLineKind:
    if not reference:
        return StatementLineKind.OTHER
    if BIZ_TYPE_FEE in biz_type or "手续费" in biz_type:
        return StatementLineKind.FEE
    if income > 0:
        return StatementLineKind.REFUND
    if expense > 0:
        return StatementLineKind.PAYMENT
    return StatementLineKind.OTHER


def iter_bill(path: Path) -> Iterator[StatementLine]:
    """Stream the detail lines of a downloaded ``csv.zip``; verify the summary at the end."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise StatementCorrupt(f"the bill is not a readable zip archive: {exc}") from None
    with zf:
        member = _detail_member(zf)
        try:
            with zf.open(member) as raw:
                text = io.TextIOWrapper(raw, encoding=ENCODING, newline="")
                yield from _iter_detail(text)
        except (zipfile.BadZipFile, UnicodeDecodeError, EOFError) as exc:
            raise StatementCorrupt(f"the bill's CSV cannot be read: {exc}") from None


def _iter_detail(text: io.TextIOBase) -> Iterator[StatementLine]:
    state = "header"
    columns: dict[str, int] = {}
    seen = {"收入": [0, 0], "支出": [0, 0]}
    declared: dict[str, tuple[int, int]] = {}
    line_no = 0
    reader = csv.reader(text)
    for record in reader:
        if not record or not any(cell.strip() for cell in record):
            continue
        first = record[0]
        if first.startswith("#"):
            joined = ",".join(record)
            if state == "header" and "账务明细列表" in joined and "结束" not in joined:
                state = "columns"
            elif state == "rows" and "账务明细列表结束" in joined:
                state = "footer"
            elif state == "footer":
                match = _SUMMARY.match(joined)
                if match:
                    declared[match.group(1)] = (int(match.group(2)), abs(_fen(match.group(3))))
            continue
        if state == "columns":
            columns = {title.strip(): i for i, title in enumerate(record)}
            missing = [c for c in _REQUIRED if c not in columns]
            if missing or _INCOME_COLUMN not in columns or _EXPENSE_COLUMN not in columns:
                raise StatementCorrupt(f"the bill lacks columns: {missing or 'amounts'}")
            state = "rows"
            continue
        if state != "rows":
            raise StatementCorrupt("a detail line outside the detail list")
        if len(record) < len(columns):
            raise StatementCorrupt(f"detail line {line_no + 1} has too few fields")
        line_no += 1

        def cell(name: str, row: list[str] = record, at: dict[str, int] = columns) -> str:
            return row[at[name]].strip() if name in at else ""

        income = _fen(cell(_INCOME_COLUMN))
        expense = -_fen(cell(_EXPENSE_COLUMN))
        if income < 0 or expense < 0:
            raise StatementCorrupt(f"detail line {line_no} has an amount with the wrong sign")
        if income:
            seen["收入"][0] += 1
            seen["收入"][1] += income
        if expense:
            seen["支出"][0] += 1
            seen["支出"][1] += expense
        reference = cell("商户订单号")
        yield StatementLine(
            line_no=line_no,
            kind=_kind(cell("业务类型"), reference, income, expense),
            reference=reference or None,
            channel_order_id=cell("业务流水号") or None,
            amount=income or expense,
            currency="CNY",
            booked_at=cell("发生时间"),
        )
    if state != "footer":
        raise StatementCorrupt("the bill ends before its detail list does (truncated?)")
    for side, (count, total) in declared.items():
        if (count, total) != tuple(seen[side]):
            raise StatementCorrupt(
                f"the bill's {side} summary says {count} lines / {total} fen, "
                f"its lines add up to {seen[side][0]} / {seen[side][1]}"
            )
    if len(declared) != 2:
        raise StatementCorrupt("the bill has no summary block")
