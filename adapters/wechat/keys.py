"""Key material for the WeChat Pay sandbox: generated once per data directory.

Layout (file names as in a real merchant setup):
``apiclient_key.pem`` (merchant private key, 0600), ``apiclient_public_key.pem``,
``apiclient_serial.txt`` (merchant certificate serial, 40 hex chars),
``platform_private_key.pem`` (0600, the sandbox signs with it), ``pub_key.pem`` (the
"WeChat Pay public key"), ``pub_key_id.txt`` (``PUB_KEY_ID_…``), ``apiv3_key.txt`` (0600,
32 alphanumeric chars), ``mchid.txt``, ``appid.txt``.
"""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_MCHID = "1900000109"
DEFAULT_APPID = "wxd678efh567hg6787"

MERCHANT_PRIVATE_KEY = "apiclient_key.pem"
MERCHANT_PUBLIC_KEY = "apiclient_public_key.pem"
MERCHANT_SERIAL = "apiclient_serial.txt"
PLATFORM_PRIVATE_KEY = "platform_private_key.pem"
PLATFORM_PUBLIC_KEY = "pub_key.pem"
PLATFORM_PUBLIC_KEY_ID = "pub_key_id.txt"
APIV3_KEY = "apiv3_key.txt"
MCHID = "mchid.txt"
APPID = "appid.txt"

_ALPHANUMERIC = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class SandboxKeys:
    """Where the sandbox's keys live, and the public ids. Secrets stay in their files."""

    data_dir: Path
    mchid: str
    appid: str
    merchant_private_key_file: Path
    merchant_public_key_file: Path
    merchant_serial_no: str
    platform_private_key_file: Path
    platform_public_key_file: Path
    platform_public_key_id: str
    apiv3_key_file: Path

    def read_apiv3_key(self) -> str:
        return self.apiv3_key_file.read_text(encoding="ascii").strip()

    def channel_settings(self, base_url: str, **overrides: Any) -> dict[str, Any]:
        """Settings for ``paymux_wechat.channel.create_channel`` pointing at a sandbox."""
        settings: dict[str, Any] = {
            "base_url": base_url,
            "mchid": self.mchid,
            "appid": self.appid,
            "merchant_private_key_file": str(self.merchant_private_key_file),
            "merchant_serial_no": self.merchant_serial_no,
            "platform_public_key_file": str(self.platform_public_key_file),
            "platform_public_key_id": self.platform_public_key_id,
            "apiv3_key_file": str(self.apiv3_key_file),
        }
        settings.update(overrides)
        return settings


def ensure_keys(
    data_dir: Path, mchid: str = DEFAULT_MCHID, appid: str = DEFAULT_APPID
) -> SandboxKeys:
    """Create whatever is missing under ``data_dir`` and return the full set (idempotent).

    Existing ``mchid.txt`` / ``appid.txt`` win over the arguments, so a data directory keeps
    one identity for its whole life.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    _ensure_key_pair(data_dir / MERCHANT_PRIVATE_KEY, data_dir / MERCHANT_PUBLIC_KEY)
    _ensure_key_pair(data_dir / PLATFORM_PRIVATE_KEY, data_dir / PLATFORM_PUBLIC_KEY)
    serial = _ensure_text(data_dir / MERCHANT_SERIAL, lambda: secrets.token_hex(20).upper())
    key_id = _ensure_text(
        data_dir / PLATFORM_PUBLIC_KEY_ID,
        lambda: "PUB_KEY_ID_0119" + "".join(secrets.choice(string.digits) for _ in range(24)),
    )
    _ensure_text(
        data_dir / APIV3_KEY,
        lambda: "".join(secrets.choice(_ALPHANUMERIC) for _ in range(32)),
        private=True,
    )
    return SandboxKeys(
        data_dir=data_dir,
        mchid=_ensure_text(data_dir / MCHID, lambda: mchid),
        appid=_ensure_text(data_dir / APPID, lambda: appid),
        merchant_private_key_file=data_dir / MERCHANT_PRIVATE_KEY,
        merchant_public_key_file=data_dir / MERCHANT_PUBLIC_KEY,
        merchant_serial_no=serial,
        platform_private_key_file=data_dir / PLATFORM_PRIVATE_KEY,
        platform_public_key_file=data_dir / PLATFORM_PUBLIC_KEY,
        platform_public_key_id=key_id,
        apiv3_key_file=data_dir / APIV3_KEY,
    )


def _ensure_key_pair(private_path: Path, public_path: Path) -> None:
    if private_path.exists() and public_path.exists():
        return
    if private_path.exists():
        loaded = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError(f"{private_path.name} is not an RSA private key")
        key = loaded
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # PKCS#8 "BEGIN PRIVATE KEY", the format WeChat's apiclient_key.pem uses.
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write(private_path, pem, private=True)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write(public_path, public_pem, private=False)


def _ensure_text(path: Path, make: Callable[[], str], *, private: bool = False) -> str:
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    value = make()
    _write(path, (value + "\n").encode("utf-8"), private=private)
    return value


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write atomically; private files are created 0600 (never briefly world-readable)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
