"""Outcome taxonomy helpers shared by adapters (retry policy before acceptance)."""

from __future__ import annotations


class RetryableBeforeAcceptance(Exception):
    """The channel refused before accepting (connection refused, 429, explicit retry).

    Adapters raise this inside their tenacity-wrapped call; it is safe to resend under the
    same channel reference. When retries run out the adapter reports PROCESSING (the channel
    dedupes on the reference, so a later query or resend can settle it).
    """
