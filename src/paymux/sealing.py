"""Envelope encryption of sensitive columns (AES-256-GCM, the `cryptography` library).

- A **key-encryption key** (KEK) comes from configuration (``PAYMUX_KEK`` or a file), never
  from the database. Several may be configured: the first seals, the others only open, so a
  new KEK can be introduced and the data keys re-wrapped (``paymux keys rotate``) while the
  gateway keeps running.
- A **data key** (DEK) encrypts values. It is stored in the database only wrapped (AES-GCM
  under a KEK, with the data key's id and the KEK id as associated data).
- A sealed value is ``pmx1:<data key id>:<base64(nonce | ciphertext | tag)>``; the column
  name is associated data, so a ciphertext copied into another column does not open.
- Equality lookups use a **blind index**: HMAC-SHA256 under a key derived (HKDF) from the
  data key, so the index does not reveal the value and is stable while the data key is.

The AESGCM objects are built once per data key: sealing a value costs microseconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "pmx1:"
_NONCE = 12


class SealingError(Exception):
    """A value or key that cannot be opened (wrong key, tampered, or not configured)."""


@dataclass(frozen=True)
class Kek:
    id: str
    key: bytes  # 32 bytes


def parse_keks(text: str) -> list[Kek]:
    """``id:base64key`` entries, one per line (or comma separated); the first is current."""
    keks: list[Kek] = []
    for raw in text.replace(",", "\n").splitlines():
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        kid, sep, b64 = entry.partition(":")
        if not sep or not kid:
            raise SealingError("a key-encryption key entry is 'id:base64-of-32-bytes'")
        try:
            key = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise SealingError(f"key-encryption key {kid!r} is not base64") from None
        if len(key) != 32:
            raise SealingError(f"key-encryption key {kid!r} must be 32 bytes (AES-256)")
        keks.append(Kek(kid, key))
    if not keks:
        raise SealingError("no key-encryption key configured")
    return keks


def new_kek_entry() -> str:
    return f"kek_{secrets.token_hex(4)}:{base64.b64encode(os.urandom(32)).decode()}"


def _wrap_aad(dek_id: str, kek_id: str) -> bytes:
    return f"paymux-dek|{dek_id}|{kek_id}".encode()


def wrap(kek: Kek, dek_id: str, dek: bytes) -> str:
    nonce = os.urandom(_NONCE)
    ct = AESGCM(kek.key).encrypt(nonce, dek, _wrap_aad(dek_id, kek.id))
    return base64.b64encode(nonce + ct).decode()


def unwrap(kek: Kek, dek_id: str, wrapped: str) -> bytes:
    raw = base64.b64decode(wrapped)
    try:
        return AESGCM(kek.key).decrypt(raw[:_NONCE], raw[_NONCE:], _wrap_aad(dek_id, kek.id))
    except InvalidTag:
        raise SealingError(f"data key {dek_id} does not open with {kek.id}") from None


class Sealer:
    """Seals and opens column values with in-memory data keys (one active for sealing)."""

    def __init__(self) -> None:
        self._aead: dict[str, AESGCM] = {}
        self._index_keys: dict[str, bytes] = {}
        self.active_id: str | None = None

    def add_data_key(self, dek_id: str, dek: bytes, *, active: bool) -> None:
        if len(dek) != 32:
            raise SealingError("a data key is 32 bytes")
        self._aead[dek_id] = AESGCM(dek)
        self._index_keys[dek_id] = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"paymux blind index v1"
        ).derive(dek)
        if active:
            self.active_id = dek_id

    @property
    def ready(self) -> bool:
        return self.active_id is not None

    def seal(self, value: str, context: str) -> str:
        if self.active_id is None:
            raise SealingError("no data key loaded: encryption at rest is not configured")
        nonce = os.urandom(_NONCE)
        ct = self._aead[self.active_id].encrypt(nonce, value.encode(), context.encode())
        return f"{PREFIX}{self.active_id}:{base64.b64encode(nonce + ct).decode()}"

    def open(self, stored: str, context: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # written before encryption was introduced (see `keys rotate`)
        dek_id, _, b64 = stored[len(PREFIX) :].partition(":")
        aead = self._aead.get(dek_id)
        if aead is None:
            raise SealingError(f"data key {dek_id} is not loaded")
        raw = base64.b64decode(b64)
        try:
            return aead.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode()).decode()
        except InvalidTag:
            raise SealingError(f"a {context} value does not open (tampered?)") from None

    def blind_index(self, value: str, context: str) -> str:
        """A keyed hash for equality lookups; the same value always gives the same index."""
        if self.active_id is None:
            raise SealingError("no data key loaded: encryption at rest is not configured")
        key = self._index_keys[self.active_id]
        return hmac.new(key, f"{context}|{value}".encode(), hashlib.sha256).hexdigest()


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


# One per process: the column type (store/sealed.py) is declared statically on the tables.
SEALER = Sealer()


# Sealed files (channel private keys, the WeChat APIv3 key): encrypted directly under a KEK,
# since they are read before (and apart from) the database that holds the data keys.
FILE_PREFIX = b"pmxf1:"
_FILE_AAD = b"paymux-sealed-file"


def seal_file_bytes(kek: Kek, data: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    ct = AESGCM(kek.key).encrypt(nonce, data, _FILE_AAD + b"|" + kek.id.encode())
    return FILE_PREFIX + kek.id.encode() + b":" + base64.b64encode(nonce + ct) + b"\n"


def is_sealed_file(data: bytes) -> bool:
    return data.startswith(FILE_PREFIX)


def open_file_bytes(keks: list[Kek], data: bytes) -> bytes:
    kid, _, b64 = data[len(FILE_PREFIX) :].strip().partition(b":")
    for kek in keks:
        if kek.id.encode() == kid:
            raw = base64.b64decode(b64)
            try:
                return AESGCM(kek.key).decrypt(
                    raw[:_NONCE], raw[_NONCE:], _FILE_AAD + b"|" + kek.id.encode()
                )
            except InvalidTag:
                raise SealingError(f"a sealed file does not open with {kek.id}") from None
    raise SealingError(f"a sealed file needs {kid.decode(errors='replace')}, not configured")
