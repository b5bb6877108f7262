"""Fetching Alipay's signcustomer bill: a signed OpenAPI call, then the short-lived URL."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Protocol

import httpx

from paymux.channels.base import StatementCorrupt, StatementUnavailable
from paymux.channels.statement_files import save_stream

from .statements import BILL_TYPE, METHOD_BILL_URL, SUB_CODE_BILL_NOT_EXIST

MAX_BILL_BYTES: Final = 512 * 1024 * 1024


class BillClient(Protocol):
    """What fetching a bill needs of the channel (AlipayChannel is one)."""

    @property
    def account_id(self) -> str: ...

    @property
    def http(self) -> httpx.AsyncClient: ...

    async def call_api(
        self, method: str, biz: Mapping[str, Any], reference: str
    ) -> dict[str, Any] | str:
        """A signed gateway call: the verified response node, or why it was not seen."""
        ...


async def download_bill(channel: BillClient, bill_date: str, dest_dir: Path) -> Path:
    answer = await channel.call_api(
        METHOD_BILL_URL, {"bill_type": BILL_TYPE, "bill_date": bill_date}, f"bill {bill_date}"
    )
    if isinstance(answer, str):
        if "signature" in answer:
            raise StatementCorrupt(f"alipay bill URL answer: {answer}")
        raise StatementUnavailable(f"alipay bill URL not obtained: {answer}")
    if answer.get("code") != "10000":
        sub_code = answer.get("sub_code") or answer.get("code")
        if sub_code == SUB_CODE_BILL_NOT_EXIST:
            raise StatementUnavailable(f"alipay has no bill for {bill_date} (yet)")
        raise StatementUnavailable(
            f"alipay refused the bill URL: {sub_code} {answer.get('sub_msg')}"
        )
    url = answer.get("bill_download_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise StatementCorrupt("alipay's answer has no bill_download_url")
    dest = dest_dir / f"alipay_{channel.account_id}_{bill_date}.csv.zip"
    try:
        async with channel.http.stream("GET", url) as response:
            if response.status_code != 200:
                raise StatementUnavailable(f"bill download answered HTTP {response.status_code}")
            await save_stream(response.aiter_bytes(), dest, max_bytes=MAX_BILL_BYTES)
    except httpx.HTTPError as exc:
        raise StatementUnavailable(f"bill download failed: {type(exc).__name__}") from None
    except ValueError as exc:
        raise StatementCorrupt(str(exc)) from None
    # The zip's CRC-32 of each member is the download's integrity check (there is no hash).
    try:
        with zipfile.ZipFile(dest) as zf:
            broken = zf.testzip()
    except (zipfile.BadZipFile, OSError):
        broken = "the archive"
    if broken is not None:
        dest.unlink(missing_ok=True)
        raise StatementCorrupt(f"the downloaded bill is corrupt ({broken} fails its CRC)")
    return dest
