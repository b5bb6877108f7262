"""WeChat Pay's fund-flow bill (资金账单, ``GET /v3/bill/fundflowbill``): pure format and parse.

The API answers ``{download_url, hash_type: "SHA1", hash_value}``. The file behind
``download_url`` (a GET signed like any APIv3 request; the response itself is NOT signed, so
its integrity is the SHA-1 of the decompressed bytes) has two parts, each a title line and
data lines: the detail lines, then the summary. To keep spreadsheet programs from turning
long numbers into exponents, every data field is prefixed with a backtick; amounts are yuan
with two decimals::

    记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额(元),账户结余(元),资金变更提交申请人,备注,业务凭证号
    `2024-01-01 10:00:00,`1330…,`…,`商家转账,`转账,`支出,`12.34,`9987.66,`1900000109,`…,`tr…
    资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额
    `1,`0,`0.00,`1,`12.34
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from paymux.channels.base import StatementCorrupt
from paymux.domain.statement_lines import StatementLine, StatementLineKind

BILL_PATH: Final = "/v3/bill/fundflowbill"
DOWNLOAD_PATH: Final = "/v3/billdownload/file"
HASH_TYPE: Final = "SHA1"
# GUESS: the error a day without a generated bill gets (treated as an empty day).
CODE_NO_STATEMENT: Final = "NO_STATEMENT_EXIST"

COLUMNS: Final = (
    "记账时间",
    "微信支付业务单号",
    "资金流水单号",
    "业务名称",
    "业务类型",
    "收支类型",
    "收支金额(元)",
    "账户结余(元)",
    "资金变更提交申请人",
    "备注",
    "业务凭证号",
)
SUMMARY_COLUMNS: Final = ("资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额")

# GUESS: the words on transfer lines. 业务凭证号 carries the merchant's out_bill_no; the
# channel's charge for a transfer is its own 手续费 line with the same 业务凭证号, and a
# transfer that came back (FAIL after SUCCESS) is an income line.
BIZ_NAME_TRANSFER: Final = "商家转账"
BIZ_TYPE_TRANSFER: Final = "转账"
BIZ_NAME_FEE: Final = "手续费"
BIZ_TYPE_FEE: Final = "扣除手续费"
BIZ_TYPE_RETURN: Final = "退回"
INCOME: Final = "收入"
EXPENSE: Final = "支出"


@dataclass(frozen=True, slots=True)
class FlowRow:
    """One detail line as the sandbox writes it (amount in fen, positive)."""

    booked_at: str  # "yyyy-MM-dd HH:mm:ss"
    business_no: str  # 微信支付业务单号: the transfer_bill_no
    flow_no: str  # 资金流水单号
    biz_name: str
    biz_type: str
    direction: str  # 收入 | 支出
    amount: int
    balance: int
    applicant: str
    remark: str
    voucher_no: str  # 业务凭证号: our out_bill_no


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _fen(text: str) -> int:
    match = re.fullmatch(r"(-?)([0-9]+)\.([0-9]{2})", text)
    if match is None:
        raise StatementCorrupt(f"not a two-decimal yuan amount: {text!r}")
    fen = int(match.group(2)) * 100 + int(match.group(3))
    return -fen if match.group(1) else fen


def build_fundflow(rows: Iterable[FlowRow]) -> bytes:
    """The decompressed bill file for one day (UTF-8)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    counts = {INCOME: [0, 0], EXPENSE: [0, 0]}
    for row in rows:
        writer.writerow(
            "`" + value
            for value in (
                row.booked_at,
                row.business_no,
                row.flow_no,
                row.biz_name,
                row.biz_type,
                row.direction,
                _yuan(row.amount),
                _yuan(row.balance),
                row.applicant,
                row.remark,
                row.voucher_no,
            )
        )
        counts[row.direction][0] += 1
        counts[row.direction][1] += row.amount
    writer.writerow(SUMMARY_COLUMNS)
    total = counts[INCOME][0] + counts[EXPENSE][0]
    writer.writerow(
        "`" + value
        for value in (
            str(total),
            str(counts[INCOME][0]),
            _yuan(counts[INCOME][1]),
            str(counts[EXPENSE][0]),
            _yuan(counts[EXPENSE][1]),
        )
    )
    return out.getvalue().encode("utf-8")


def _unquote(cell: str) -> str:
    cell = cell.strip()
    return cell[1:] if cell.startswith("`") else cell


def _kind(biz_name: str, biz_type: str, direction: str, reference: str) -> StatementLineKind:
    if not reference:
        return StatementLineKind.OTHER
    if "手续费" in biz_name or "手续费" in biz_type:
        return StatementLineKind.FEE
    if direction == INCOME:
        return StatementLineKind.REFUND
    if direction == EXPENSE:
        return StatementLineKind.PAYMENT
    return StatementLineKind.OTHER


def iter_fundflow(path: Path) -> Iterator[StatementLine]:
    """Stream the detail lines of a (decompressed) bill file; verify its summary at the end."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            yield from _iter(fh)
    except UnicodeDecodeError as exc:
        raise StatementCorrupt(f"the bill is not UTF-8 text: {exc}") from None


def _iter(fh: io.TextIOBase) -> Iterator[StatementLine]:
    reader = csv.reader(fh)
    header = next(reader, None)
    if header is None or tuple(c.strip() for c in header) != COLUMNS:
        raise StatementCorrupt("the bill does not start with the fund-flow column titles")
    counts = {INCOME: [0, 0], EXPENSE: [0, 0]}
    line_no = 0
    summary: list[str] | None = None
    for record in reader:
        if not record or not any(c.strip() for c in record):
            continue
        if tuple(c.strip() for c in record) == SUMMARY_COLUMNS:
            summary = next(reader, None)
            break
        if len(record) != len(COLUMNS):
            raise StatementCorrupt(f"detail line {line_no + 1} has {len(record)} fields")
        cells = [_unquote(c) for c in record]
        line_no += 1
        direction = cells[5]
        if direction not in counts:
            raise StatementCorrupt(f"detail line {line_no}: unknown 收支类型 {direction!r}")
        amount = _fen(cells[6])
        if amount <= 0:
            raise StatementCorrupt(f"detail line {line_no}: amount must be positive")
        counts[direction][0] += 1
        counts[direction][1] += amount
        reference = cells[10]
        yield StatementLine(
            line_no=line_no,
            kind=_kind(cells[3], cells[4], direction, reference),
            reference=reference or None,
            channel_order_id=cells[1] or None,
            amount=amount,
            currency="CNY",
            booked_at=cells[0],
        )
    if summary is None or len(summary) != len(SUMMARY_COLUMNS):
        raise StatementCorrupt("the bill has no summary section (truncated?)")
    values = [_unquote(c) for c in summary]
    try:
        declared = (
            int(values[0]),
            int(values[1]),
            _fen(values[2]),
            int(values[3]),
            _fen(values[4]),
        )
    except ValueError:
        raise StatementCorrupt("the bill's summary is not numeric") from None
    actual = (
        counts[INCOME][0] + counts[EXPENSE][0],
        counts[INCOME][0],
        counts[INCOME][1],
        counts[EXPENSE][0],
        counts[EXPENSE][1],
    )
    if declared != actual:
        raise StatementCorrupt(f"the bill's summary {declared} disagrees with its lines {actual}")
