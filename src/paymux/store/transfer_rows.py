"""A ``transfers`` row <-> the domain's :class:`~paymux.domain.transfers.Transfer`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from paymux.domain.states import TransferStatus
from paymux.domain.transfers import Transfer

FIELDS = tuple(f.name for f in fields(Transfer))  # = the table's columns (a store test checks)


def transfer_from_row(row: Mapping[Any, Any]) -> Transfer:
    """A ``transfers`` row (every column, as SQLAlchemy reads it) as the domain value."""
    values = {name: row[name] for name in FIELDS}
    values["status"] = TransferStatus(values["status"])
    return Transfer(**values)


def row_of(t: Transfer) -> dict[str, Any]:
    """Every column's value to write."""
    values = {name: getattr(t, name) for name in FIELDS}
    values["status"] = t.status.value  # the plain str every driver binds
    return values
