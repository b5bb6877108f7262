"""A column type that stores its value sealed (encrypted) and reads it back opened.

Declared on the table (``SealedText("transfers.payee_account")``), so every statement built
with SQLAlchemy encrypts and decrypts without the caller doing anything; the hot-path
statements of _sqlite_driver.py and _pg_pending.py bind through the same type.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from paymux.sealing import SEALER


class SealedText(TypeDecorator[str]):
    impl = Text
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context  # associated data: the column the value belongs to

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return SEALER.seal(str(value), self.context)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return SEALER.open(str(value), self.context)


PAYEE_ACCOUNT = "transfers.payee_account"


def payee_account_index(account: str) -> str:
    """The blind index of a payee account (``transfers.payee_account_hmac``)."""
    return SEALER.blind_index(account, PAYEE_ACCOUNT)
