"""Standard Webhooks signing (symmetric `v1`, HMAC-SHA256) for merchant webhooks.

Signed content is `{webhook-id}.{webhook-timestamp}.{raw body}`; the key is the base64-decoded
part of a `whsec_...` secret. `webhook-signature` carries one `v1,<base64>` entry per active
secret, space-separated, so a merchant can rotate secrets without downtime.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format marker, not a secret
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
SECRET_BYTES = 32  # the spec asks for at least 24 random bytes

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


class WebhookVerificationError(Exception):
    """A webhook failed verification. Messages never contain a secret or a signature."""


def generate_secret() -> str:
    """A new endpoint secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _secret_key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    # Tolerate unpadded base64 like the reference libraries do.
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not valid base64") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _check_msg_id(msg_id: str) -> None:
    # The id is part of the dot-delimited signed content and goes into a header.
    if not msg_id or "." in msg_id or any(c.isspace() or not c.isprintable() for c in msg_id):
        raise ValueError("webhook id must be non-empty, printable, without '.' or whitespace")


def _raw_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64 HMAC-SHA256>` signature entry."""
    _check_msg_id(msg_id)
    if timestamp < 0:
        raise ValueError("webhook timestamp must be non-negative unix seconds")
    digest = _raw_signature(_secret_key(secret), msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one entry per active secret (rotation overlap)."""
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of secrets, not one string")
    if not secrets:
        raise ValueError("at least one webhook secret is required")
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets)


def headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header a delivery carries (the body is sent exactly as signed)."""
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: signature_header(secrets, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise WebhookVerificationError unless some `v1` entry matches and the timestamp is fresh."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get(HEADER_ID)
    timestamp_text = lowered.get(HEADER_TIMESTAMP)
    signature_text = lowered.get(HEADER_SIGNATURE)
    if not (msg_id and timestamp_text and signature_text):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not timestamp_text.isascii() or not timestamp_text.isdigit():
        raise WebhookVerificationError("webhook-timestamp is not integer unix seconds")
    timestamp = int(timestamp_text)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookVerificationError("webhook-timestamp is outside the allowed tolerance")
    try:
        key = _secret_key(secret)
    except ValueError as exc:
        raise WebhookVerificationError(str(exc)) from None
    expected = _raw_signature(key, msg_id, timestamp, body)
    for entry in signature_text.split(" "):
        version, sep, encoded = entry.partition(",")
        if not sep or version != SIGNATURE_VERSION:
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, candidate):
            return
    raise WebhookVerificationError("no matching signature")
