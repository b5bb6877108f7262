"""Identifiers: prefixed, time-ordered ids and the channel references derived from them.

``new_id("tr")`` -> ``"tr_01JD8X3ZQ4M9T6V0W2K5R7YB1C"``: the prefix, ``_``, then a 26-char
ULID-style id (Crockford base32, 48-bit millisecond timestamp + 80 random bits). Ids sort
by creation time; within one process they are strictly increasing even inside one
millisecond (the random part is incremented, as in monotonic ULIDs).
"""

from __future__ import annotations

import re
import secrets
import threading
import time

CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_BODY_LENGTH = 26
REFERENCE_PREFIX = "PMX"

_TIME_BITS = 48
_RANDOM_BITS = 80
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}", re.ASCII)
_BODY = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", re.ASCII)
_REFERENCE = re.compile(REFERENCE_PREFIX + r"([0-7][0-9A-HJKMNP-TV-Z]{25})", re.ASCII)

_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, index = divmod(value, 32)
        chars.append(CROCKFORD_ALPHABET[index])
    return "".join(reversed(chars))


def _next_body() -> str:
    global _last_ms, _last_random  # per-process monotonic counter
    with _lock:
        now = time.time_ns() // 1_000_000
        if now <= _last_ms:
            # Same millisecond (or the clock stepped back): stay ordered by incrementing.
            now = _last_ms
            random_part = _last_random + 1
            if random_part >= 1 << _RANDOM_BITS:
                now, random_part = now + 1, secrets.randbits(_RANDOM_BITS - 1)
        else:
            # Top bit clear leaves room to increment within the millisecond.
            random_part = secrets.randbits(_RANDOM_BITS - 1)
        _last_ms, _last_random = now, random_part
    return _encode((now << _RANDOM_BITS) | random_part, ID_BODY_LENGTH)


def new_id(prefix: str) -> str:
    """``prefix`` + ``_`` + a 26-char time-ordered id, e.g. ``tr_01JD...``."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ValueError(f"id prefix must be a letter then letters, digits or _: {prefix!r}")
    return f"{prefix}_{_next_body()}"


def split_id(value: str) -> tuple[str, str]:
    """``"tr_01JD..."`` -> ``("tr", "01JD...")``; raises ValueError if not a Paymux id."""
    prefix, sep, body = value.rpartition("_")
    body = body.upper()
    if not sep or not _PREFIX.fullmatch(prefix) or not _BODY.fullmatch(body):
        raise ValueError(f"not a Paymux id: {value!r}")
    return prefix, body


def id_timestamp_ms(value: str) -> int:
    """The creation time (unix milliseconds) encoded in an id."""
    _, body = split_id(value)
    number = 0
    for char in body:
        number = number * 32 + CROCKFORD_ALPHABET.index(char)
    return number >> _RANDOM_BITS


def channel_reference(transfer_id: str) -> str:
    """The channel-side reference (Alipay out_biz_no / WeChat out_bill_no) for a transfer.

    ``"PMX"`` + the id's 26 chars, upper-cased: 29 ASCII letters and digits, deterministic,
    so a resend or a query always uses the same reference.
    """
    _, body = split_id(transfer_id)
    return REFERENCE_PREFIX + body


def reference_to_id(reference: str, prefix: str = "tr") -> str:
    """Inverse of :func:`channel_reference` for a transfer id prefix."""
    match = _REFERENCE.fullmatch(reference) if isinstance(reference, str) else None
    if match is None:
        raise ValueError(f"not a Paymux channel reference: {reference!r}")
    return f"{prefix}_{match.group(1)}"
