"""Alipay OpenAPI RSA2 signing: request params, response nodes, notifications.

RSA2 is SHA256withRSA with PKCS#1 v1.5 padding, base64-encoded. The signed text of a
request is every parameter except ``sign``, empty values dropped, sorted by key and joined
as ``k=v&k=v`` with raw (not URL-encoded) values. Notifications also leave out
``sign_type``. A response is signed over the exact JSON text of its ``*_response`` node.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

REQUEST_EXCLUDED: tuple[str, ...] = ("sign",)
NOTIFICATION_EXCLUDED: tuple[str, ...] = ("sign", "sign_type")


class KeyFormatError(ValueError):
    """A key that is neither PEM nor a bare base64 DER body of an RSA key."""


def sign_content(params: Mapping[str, str], exclude: Iterable[str] = REQUEST_EXCLUDED) -> str:
    """The text Alipay signs: ``k=v`` pairs, empty values dropped, sorted, joined by ``&``."""
    skipped = frozenset(exclude)
    pairs = sorted((k, v) for k, v in params.items() if k not in skipped and v)
    return "&".join(f"{k}={v}" for k, v in pairs)


def rsa2_sign(content: str | bytes, private_key: rsa.RSAPrivateKey) -> str:
    data = content.encode("utf-8") if isinstance(content, str) else content
    signature = private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa2_verify(content: str | bytes, signature: str, public_key: rsa.RSAPublicKey) -> bool:
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=False)
        public_key.verify(raw, data, padding.PKCS1v15(), hashes.SHA256())
    except (_CryptoInvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
        return False
    return True


def sign_params(params: Mapping[str, str], private_key: rsa.RSAPrivateKey) -> str:
    """The ``sign`` value for a request (all params but ``sign``)."""
    return rsa2_sign(sign_content(params, REQUEST_EXCLUDED), private_key)


def verify_params(params: Mapping[str, str], public_key: rsa.RSAPublicKey) -> bool:
    """Check a request's ``sign`` over every other parameter (``sign_type`` included)."""
    signature = params.get("sign")
    if not signature:
        return False
    return rsa2_verify(sign_content(params, REQUEST_EXCLUDED), signature, public_key)


def sign_notification(params: Mapping[str, str], private_key: rsa.RSAPrivateKey) -> str:
    return rsa2_sign(sign_content(params, NOTIFICATION_EXCLUDED), private_key)


def verify_notification(params: Mapping[str, str], public_key: rsa.RSAPublicKey) -> bool:
    """Check a notification's ``sign`` (``sign`` and ``sign_type`` are not signed)."""
    signature = params.get("sign")
    if not signature:
        return False
    return rsa2_verify(sign_content(params, NOTIFICATION_EXCLUDED), signature, public_key)


# --- response bodies -------------------------------------------------------------------


class _Scanner:
    """Finds the exact text of each top-level value of a JSON object, without re-encoding."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def _expect(self, char: str) -> None:
        self._ws()
        if self.pos >= len(self.text) or self.text[self.pos] != char:
            raise ValueError(f"expected {char!r} at {self.pos}")
        self.pos += 1

    def _string_end(self) -> int:
        i = self.pos + 1
        while i < len(self.text):
            c = self.text[i]
            if c == "\\":
                i += 2
                continue
            if c == '"':
                return i + 1
            i += 1
        raise ValueError("unterminated string")

    def _skip_value(self) -> None:
        self._ws()
        if self.pos >= len(self.text):
            raise ValueError("missing value")
        c = self.text[self.pos]
        if c == '"':
            self.pos = self._string_end()
            return
        if c in "{[":
            depth = 0
            while self.pos < len(self.text):
                c = self.text[self.pos]
                if c == '"':
                    self.pos = self._string_end()
                    continue
                if c in "{[":
                    depth += 1
                elif c in "}]":
                    depth -= 1
                    if depth == 0:
                        self.pos += 1
                        return
                self.pos += 1
            raise ValueError("unterminated container")
        while self.pos < len(self.text) and self.text[self.pos] not in ",}] \t\r\n":
            self.pos += 1

    def top_level(self) -> dict[str, str]:
        found: dict[str, str] = {}
        self._expect("{")
        self._ws()
        if self.text[self.pos : self.pos + 1] == "}":
            return found
        while True:
            self._ws()
            if self.text[self.pos : self.pos + 1] != '"':
                raise ValueError("expected a key")
            end = self._string_end()
            key = json.loads(self.text[self.pos : end])
            self.pos = end
            self._expect(":")
            self._ws()
            start = self.pos
            self._skip_value()
            if key in found:
                raise ValueError(f"duplicate key {key!r}")
            found[key] = self.text[start : self.pos]
            self._ws()
            if self.text[self.pos : self.pos + 1] == ",":
                self.pos += 1
                continue
            self._expect("}")
            self._ws()
            if self.pos != len(self.text):
                raise ValueError("trailing data")
            return found


def top_level_values(body: str) -> dict[str, str]:
    """The raw JSON text of each top-level value of ``body``; ValueError if malformed."""
    return _Scanner(body).top_level()


def response_node_text(body: str, node_name: str) -> tuple[str, str | None]:
    """The exact text of ``node_name`` (or ``error_response``) and the ``sign`` beside it.

    Raises ValueError when the body is not a JSON object holding either node.
    """
    values = top_level_values(body)
    node = values.get(node_name) or values.get("error_response")
    if node is None or not node.startswith("{"):
        raise ValueError(f"no {node_name} in response")
    sign_text = values.get("sign")
    sign = json.loads(sign_text) if sign_text is not None else None
    return node, sign if isinstance(sign, str) else None


def verify_response(body: str, node_name: str, public_key: rsa.RSAPublicKey) -> str | None:
    """The node text when its signature verifies, else None (also for malformed bodies)."""
    try:
        node, sign = response_node_text(body, node_name)
    except ValueError:
        return None
    if not sign or not rsa2_verify(node, sign, public_key):
        return None
    return node


# --- keys ------------------------------------------------------------------------------


def _der_from_text(text: str) -> bytes:
    body = "".join(text.split())
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error:
        raise KeyFormatError("key is neither PEM nor base64") from None


def load_private_key(data: str | bytes) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM, or from the bare base64 body consoles hand out."""
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            key = serialization.load_der_private_key(_der_from_text(text), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise KeyFormatError("cannot load the RSA private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFormatError("not an RSA private key")
    return key


def load_public_key(data: str | bytes) -> rsa.RSAPublicKey:
    """An RSA public key from PEM, or from the bare base64 body consoles hand out."""
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(_der_from_text(text))
    except (ValueError, TypeError, UnicodeEncodeError):
        raise KeyFormatError("cannot load the RSA public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFormatError("not an RSA public key")
    return key


def load_private_key_file(path: Path) -> rsa.RSAPrivateKey:
    return load_private_key(path.read_bytes())


def load_public_key_file(path: Path) -> rsa.RSAPublicKey:
    return load_public_key(path.read_bytes())
