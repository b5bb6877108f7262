"""What a channel said about a transfer, in Paymux's own words.

Every adapter maps its channel's status words into :class:`Outcome`; the state machine
(:mod:`paymux.domain.states`) and reconciliation read nothing else.
"""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    """What a channel said about a transfer, already mapped into Paymux's taxonomy."""

    SUCCEEDED = "succeeded"  # money moved to the payee
    FAILED = "failed"  # definitive: the channel says no money moved
    PROCESSING = "processing"  # accepted or unknown: resolve by query or callback, never resend
    RETURNED = "returned"  # paid, then bounced back by the payee's bank (退票)
    NOT_FOUND = "not_found"  # query only: the channel has no order under this reference
    # The payee must confirm in the channel's app before money moves (WeChat
    # WAIT_USER_CONFIRM); the result's next_action says how.
    REQUIRES_CONFIRMATION = "requires_confirmation"
    CANCELED = "canceled"  # the channel cancelled the order at our request: no money moved
