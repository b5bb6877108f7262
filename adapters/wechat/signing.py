"""WeChat Pay APIv3 cryptography: request signatures, response/callback verification,
AEAD_AES_256_GCM callback resources and RSA-OAEP sensitive fields.

Everything here works on exact bytes: a signature covers the body as sent or received,
never a re-serialisation of it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from paymux.channels.base import InvalidSignature

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
SIGNATURE_TYPE = AUTH_SCHEME
MAX_CLOCK_SKEW_SECONDS = 300
APIV3_KEY_LENGTH = 32
GCM_NONCE_LENGTH = 12

HEADER_TIMESTAMP = "Wechatpay-Timestamp"
HEADER_NONCE = "Wechatpay-Nonce"
HEADER_SIGNATURE = "Wechatpay-Signature"
HEADER_SERIAL = "Wechatpay-Serial"
HEADER_SIGNATURE_TYPE = "Wechatpay-Signature-Type"

_ALPHANUMERIC = string.ascii_letters + string.digits
_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')


# --- keys ---------------------------------------------------------------------------------


def load_private_key(pem: bytes | str | Path) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM bytes/text or a PEM file path."""
    data = _pem_bytes(pem)
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("expected an RSA private key")
    return key


def load_public_key(pem: bytes | str | Path) -> rsa.RSAPublicKey:
    """An RSA public key (SubjectPublicKeyInfo PEM) from bytes/text or a file path."""
    data = _pem_bytes(pem)
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("expected an RSA public key")
    return key


def _pem_bytes(pem: bytes | str | Path) -> bytes:
    if isinstance(pem, Path):
        return pem.read_bytes()
    if isinstance(pem, str):
        return pem.encode("ascii")
    return pem


# --- SHA256withRSA ------------------------------------------------------------------------


def new_nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def sign_message(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """Base64 SHA256withRSA (PKCS#1 v1.5)."""
    raw = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def verify_message(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except CryptoInvalidSignature:
        return False
    return True


def request_message(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`` (empty body for GET)."""
    head = f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n".encode()
    return head + body + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """``TIMESTAMP\\nNONCE\\nBODY\\n``: what responses and callbacks are signed over."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


# --- Authorization header -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthorizationParams:
    mchid: str
    nonce_str: str
    signature: str
    timestamp: str
    serial_no: str


def build_authorization(
    *,
    mchid: str,
    serial_no: str,
    private_key: rsa.RSAPrivateKey,
    method: str,
    path: str,
    body: bytes = b"",
    timestamp: str | None = None,
    nonce: str | None = None,
) -> str:
    """The ``Authorization`` header value for one request (``path`` includes any query)."""
    ts = timestamp if timestamp is not None else str(int(time.time()))
    nonce_str = nonce if nonce is not None else new_nonce()
    signature = sign_message(private_key, request_message(method, path, ts, nonce_str, body))
    return (
        f'{AUTH_SCHEME} mchid="{mchid}",nonce_str="{nonce_str}",signature="{signature}",'
        f'timestamp="{ts}",serial_no="{serial_no}"'
    )


def parse_authorization(header: str) -> AuthorizationParams:
    """Parse an ``Authorization`` header; ValueError if it is not a WeChat APIv3 one."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != AUTH_SCHEME:
        raise ValueError("unsupported authorization scheme")
    params = dict(_AUTH_PARAM.findall(rest))
    try:
        return AuthorizationParams(
            mchid=params["mchid"],
            nonce_str=params["nonce_str"],
            signature=params["signature"],
            timestamp=params["timestamp"],
            serial_no=params["serial_no"],
        )
    except KeyError as exc:
        raise ValueError(f"authorization is missing {exc.args[0]}") from None


def verify_request(
    public_key: rsa.RSAPublicKey,
    *,
    method: str,
    path: str,
    body: bytes,
    auth: AuthorizationParams,
) -> bool:
    """Check a request signature over the exact body bytes received."""
    message = request_message(method, path, auth.timestamp, auth.nonce_str, body)
    return verify_message(public_key, message, auth.signature)


# --- responses and callbacks (platform key) -----------------------------------------------


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup over any mapping (gateways may lower-case keys)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def signature_headers(
    private_key: rsa.RSAPrivateKey,
    *,
    serial: str,
    body: bytes,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The ``Wechatpay-*`` headers for a response or callback body, signed by the platform."""
    ts = timestamp if timestamp is not None else str(int(time.time()))
    nonce_str = nonce if nonce is not None else new_nonce()
    return {
        HEADER_TIMESTAMP: ts,
        HEADER_NONCE: nonce_str,
        HEADER_SIGNATURE: sign_message(private_key, response_message(ts, nonce_str, body)),
        HEADER_SERIAL: serial,
        HEADER_SIGNATURE_TYPE: SIGNATURE_TYPE,
    }


def verify_platform_signature(
    headers: Mapping[str, str],
    body: bytes,
    *,
    public_key: rsa.RSAPublicKey,
    public_key_id: str,
    now: float | None = None,
    max_skew_seconds: int = MAX_CLOCK_SKEW_SECONDS,
) -> None:
    """Verify a response's or callback's ``Wechatpay-*`` headers over the exact body.

    Raises InvalidSignature (with a reason that never contains key material).
    """
    timestamp = header_value(headers, HEADER_TIMESTAMP)
    nonce = header_value(headers, HEADER_NONCE)
    signature = header_value(headers, HEADER_SIGNATURE)
    serial = header_value(headers, HEADER_SERIAL)
    if not (timestamp and nonce and signature and serial):
        raise InvalidSignature("missing Wechatpay signature headers")
    signature_type = header_value(headers, HEADER_SIGNATURE_TYPE)
    if signature_type is not None and signature_type != SIGNATURE_TYPE:
        raise InvalidSignature("unsupported Wechatpay-Signature-Type")
    if not hmac.compare_digest(serial.encode(), public_key_id.encode()):
        raise InvalidSignature("Wechatpay-Serial is not the configured platform public key id")
    try:
        signed_at = int(timestamp)
    except ValueError:
        raise InvalidSignature("Wechatpay-Timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - signed_at) > max_skew_seconds:
        raise InvalidSignature("Wechatpay-Timestamp is too far from the current time")
    if not verify_message(public_key, response_message(timestamp, nonce, body), signature):
        raise InvalidSignature("Wechatpay-Signature does not verify")


# --- AEAD_AES_256_GCM (callback resources) ------------------------------------------------


def _aes_key(apiv3_key: str) -> bytes:
    key = apiv3_key.encode("utf-8")
    if len(key) != APIV3_KEY_LENGTH:
        raise ValueError("the APIv3 key must be 32 bytes")
    return key


def aead_encrypt(apiv3_key: str, *, nonce: str, associated_data: str, plaintext: bytes) -> str:
    """Base64 of ciphertext with the 16-byte tag appended, as WeChat sends it."""
    sealed = AESGCM(_aes_key(apiv3_key)).encrypt(
        nonce.encode("utf-8"), plaintext, associated_data.encode("utf-8")
    )
    return base64.b64encode(sealed).decode("ascii")


def aead_decrypt(apiv3_key: str, *, nonce: str, associated_data: str, ciphertext: str) -> bytes:
    """Open a callback resource; a wrong key or tampered data raises InvalidSignature."""
    try:
        sealed = base64.b64decode(ciphertext, validate=True)
        return AESGCM(_aes_key(apiv3_key)).decrypt(
            nonce.encode("utf-8"), sealed, associated_data.encode("utf-8")
        )
    except (InvalidTag, binascii.Error, ValueError):
        raise InvalidSignature("callback resource does not decrypt") from None


# --- RSA-OAEP (sensitive fields such as user_name) ----------------------------------------


def _oaep() -> padding.OAEP:
    # WeChat Pay fixes OAEP with SHA-1 (and MGF1-SHA1) for sensitive fields.
    sha1 = hashes.SHA1()  # noqa: S303 - mandated by the protocol, not our choice
    return padding.OAEP(mgf=padding.MGF1(algorithm=sha1), algorithm=sha1, label=None)


def oaep_encrypt(public_key: rsa.RSAPublicKey, text: str) -> str:
    return base64.b64encode(public_key.encrypt(text.encode("utf-8"), _oaep())).decode("ascii")


def oaep_decrypt(private_key: rsa.RSAPrivateKey, ciphertext: str) -> str:
    """Decrypt a sensitive field; ValueError if it is not ours."""
    try:
        raw = base64.b64decode(ciphertext, validate=True)
        return private_key.decrypt(raw, _oaep()).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("sensitive field does not decrypt") from exc
