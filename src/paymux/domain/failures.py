"""Paymux's own failure vocabulary: one small set of stable codes across every channel.

A failed transfer carries ``failure_code`` from :class:`FailureCode`; the channel's own code
and message stay visible next to it (``channel_failure_code``, ``channel_failure_message``).
Each adapter ships its mapping as data (``adapters/<name>/failure_codes.py``); a channel code
the mapping does not know becomes ``channel_rejected`` and the caller raises a metric so an
operator extends the table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class FailureCode(enum.StrEnum):
    payee_not_found = "payee_not_found"
    payee_name_mismatch = "payee_name_mismatch"
    payee_account_restricted = "payee_account_restricted"
    payee_limit_exceeded = "payee_limit_exceeded"
    channel_insufficient_funds = "channel_insufficient_funds"
    amount_out_of_range = "amount_out_of_range"
    invalid_request = "invalid_request"
    channel_rejected = "channel_rejected"
    confirmation_expired = "confirmation_expired"
    confirmation_rejected = "confirmation_rejected"
    canceled = "canceled"
    insufficient_funds = "insufficient_funds"
    channel_error = "channel_error"


@dataclass(frozen=True)
class FailureInfo:
    description: str
    # Whether sending a NEW transfer (after the merchant fixes nothing or waits) can help.
    retry_may_help: bool


FAILURES: Mapping[FailureCode, FailureInfo] = {
    FailureCode.payee_not_found: FailureInfo(
        "The payee account does not exist at the channel.", False
    ),
    FailureCode.payee_name_mismatch: FailureInfo(
        "The payee name (or identity) does not match the account.", False
    ),
    FailureCode.payee_account_restricted: FailureInfo(
        "The payee account is frozen, unverified or may not receive this transfer.", False
    ),
    FailureCode.payee_limit_exceeded: FailureInfo(
        "The payee's receiving limit (per transfer, day or month) is reached.", True
    ),
    FailureCode.channel_insufficient_funds: FailureInfo(
        "Paymux's funding account at the channel cannot cover the transfer.", True
    ),
    FailureCode.amount_out_of_range: FailureInfo(
        "The amount is below the channel's minimum or above its maximum.", False
    ),
    FailureCode.invalid_request: FailureInfo(
        "The channel refused the request's parameters (remark, scene, format).", False
    ),
    FailureCode.channel_rejected: FailureInfo(
        "The channel refused the transfer for a reason it did not detail, or one Paymux "
        "does not know yet.",
        False,
    ),
    FailureCode.confirmation_expired: FailureInfo(
        "The payee did not confirm in time; the channel closed the transfer.", True
    ),
    FailureCode.confirmation_rejected: FailureInfo(
        "The payee declined to receive the transfer.", False
    ),
    FailureCode.canceled: FailureInfo("The merchant canceled the transfer.", True),
    FailureCode.insufficient_funds: FailureInfo(
        "The merchant's available balance did not cover amount + fee.", True
    ),
    FailureCode.channel_error: FailureInfo(
        "The channel or Paymux could not process the request (configuration, signature, "
        "permissions).",
        True,
    ),
}


@dataclass(frozen=True)
class Unified:
    code: FailureCode
    known: bool  # False: the channel code is not in the adapter's table (raise a metric)


def unify(channel_code: str | None, table: Mapping[str, str]) -> Unified:
    """The Paymux code for ``channel_code`` according to an adapter's ``table``."""
    if channel_code is None:
        return Unified(FailureCode.channel_rejected, known=True)
    mapped = table.get(channel_code)
    if mapped is None:
        return Unified(FailureCode.channel_rejected, known=False)
    return Unified(FailureCode(mapped), known=True)


def describe(code: str | None) -> str | None:
    """The documented description of a Paymux failure code (None for None or unknown)."""
    if code is None:
        return None
    try:
        return FAILURES[FailureCode(code)].description
    except ValueError:
        return None
