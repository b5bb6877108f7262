"""Verifying Paymux's webhooks (the Standard Webhooks specification)."""

from __future__ import annotations

from collections.abc import Mapping

from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as _SWVerificationError

from paymux_client.errors import WebhookVerificationError
from paymux_client.models import Event


def verify(payload: bytes | str, headers: Mapping[str, str], secret: str) -> Event:
    """Check the signature (any of the ``v1,`` entries, so rotation overlaps work) and the
    timestamp (at most 5 minutes off), then parse the event. Pass the raw body bytes."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        Webhook(secret).verify(payload, lowered, json_parse=False)
    except (_SWVerificationError, ValueError, KeyError) as exc:
        raise WebhookVerificationError(str(exc) or type(exc).__name__) from None
    return Event.model_validate_json(payload)


class Webhooks:
    """``client.webhooks.verify(payload, headers, secret)``."""

    @staticmethod
    def verify(payload: bytes | str, headers: Mapping[str, str], secret: str) -> Event:
        return verify(payload, headers, secret)
