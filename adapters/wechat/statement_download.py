"""Fetching WeChat Pay's fund-flow bill: a signed API call, then a signed download whose
response is NOT signed, checked against the SHA-1 of the signed answer."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlencode, urlsplit

import httpx

from paymux.channels.base import StatementCorrupt, StatementUnavailable
from paymux.channels.statement_files import save_stream

from .statements import BILL_PATH, CODE_NO_STATEMENT, HASH_TYPE

MAX_BILL_BYTES: Final = 512 * 1024 * 1024


class SignedReply(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def payload(self) -> Any: ...

    @property
    def verified(self) -> bool: ...

    @property
    def verify_error(self) -> str | None: ...


class BillClient(Protocol):
    """What fetching a bill needs of the channel (WechatChannel is one)."""

    @property
    def account_id(self) -> str: ...

    @property
    def http(self) -> httpx.AsyncClient: ...

    async def signed_get(self, path: str, reference: str) -> SignedReply | None:
        """One signed GET; None when no answer was seen."""
        ...

    def signed_headers(self, method: str, path: str) -> dict[str, str]: ...


async def download_bill(channel: BillClient, bill_date: str, dest_dir: Path) -> Path:
    query = urlencode({"bill_date": bill_date, "account_type": "BASIC", "tar_type": "GZIP"})
    reply = await channel.signed_get(f"{BILL_PATH}?{query}", f"bill {bill_date}")
    if reply is None:
        raise StatementUnavailable("wechat fundflowbill: no answer seen")
    if not reply.verified:
        raise StatementCorrupt(f"wechat fundflowbill answer does not verify: {reply.verify_error}")
    payload = reply.payload
    if reply.status != 200 or not isinstance(payload, Mapping):
        code = payload.get("code") if isinstance(payload, Mapping) else None
        if code == CODE_NO_STATEMENT:
            raise StatementUnavailable(f"wechat has no bill for {bill_date} (yet)")
        raise StatementUnavailable(f"wechat fundflowbill answered HTTP {reply.status} {code}")
    url, hash_type, hash_value = (
        payload.get("download_url"),
        payload.get("hash_type"),
        payload.get("hash_value"),
    )
    if not isinstance(url, str) or not isinstance(hash_value, str) or hash_type != HASH_TYPE:
        raise StatementCorrupt("wechat fundflowbill answer lacks download_url or a SHA1 hash")
    dest = dest_dir / f"wechat_{channel.account_id}_{bill_date}.csv"
    compressed = dest.with_name(dest.name + ".gz")
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        async with channel.http.stream(
            "GET", url, headers=channel.signed_headers("GET", path)
        ) as response:
            if response.status_code != 200:
                raise StatementUnavailable(f"bill download answered HTTP {response.status_code}")
            await save_stream(response.aiter_bytes(), compressed, max_bytes=MAX_BILL_BYTES)
    except httpx.HTTPError as exc:
        raise StatementUnavailable(f"bill download failed: {type(exc).__name__}") from None
    except ValueError as exc:
        raise StatementCorrupt(str(exc)) from None
    try:
        digest = _gunzip(compressed, dest)
    finally:
        compressed.unlink(missing_ok=True)
    # The hash covers the decompressed file; the response itself carries no signature.
    if not hmac.compare_digest(digest, hash_value.lower()):
        dest.unlink(missing_ok=True)
        raise StatementCorrupt("the downloaded bill's SHA-1 does not match hash_value")
    return dest


def _gunzip(src: Path, dest: Path) -> str:
    sha1 = hashlib.sha1()  # noqa: S324 - the channel's own integrity hash
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        with gzip.open(src, "rb") as fin, tmp.open("wb") as fout:
            while chunk := fin.read(1 << 16):
                sha1.update(chunk)
                fout.write(chunk)
        os.replace(tmp, dest)
    except (OSError, EOFError, zlib.error) as exc:
        tmp.unlink(missing_ok=True)
        raise StatementCorrupt(f"the downloaded bill is not valid gzip: {exc}") from None
    return sha1.hexdigest()
