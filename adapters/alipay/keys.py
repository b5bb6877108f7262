"""Key material for the Alipay sandbox: an app key pair and an "Alipay" key pair.

The gateway signs requests with ``app_private_key.pem`` and verifies responses and
notifications with ``alipay_public_key.pem``; the sandbox holds the other two halves.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_APP_ID = "2021000000000001"

_APP_PRIVATE = "app_private_key.pem"
_APP_PUBLIC = "app_public_key.pem"
_ALIPAY_PRIVATE = "alipay_private_key.pem"
_ALIPAY_PUBLIC = "alipay_public_key.pem"
_APP_ID = "app_id.txt"


@dataclass(frozen=True, slots=True)
class SandboxKeys:
    app_private_key: Path
    app_public_key: Path
    alipay_private_key: Path
    alipay_public_key: Path
    app_id_file: Path
    app_id: str


def _write(path: Path, data: bytes, mode: int) -> None:
    # Write to a temporary file created with the final mode, then rename: a reader never
    # sees a half-written key and a private key is never world-readable, even briefly.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    # Two processes starting at once must not end up with halves of different pairs.
    fd = os.open(data_dir / ".keys.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def ensure_keys(data_dir: Path, app_id: str = DEFAULT_APP_ID) -> SandboxKeys:
    """Create the sandbox key files on first call; later calls reuse them.

    ``app_id.txt`` records the app id the sandbox answers to (rewritten if it changes).
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    keys = SandboxKeys(
        app_private_key=data_dir / _APP_PRIVATE,
        app_public_key=data_dir / _APP_PUBLIC,
        alipay_private_key=data_dir / _ALIPAY_PRIVATE,
        alipay_public_key=data_dir / _ALIPAY_PUBLIC,
        app_id_file=data_dir / _APP_ID,
        app_id=app_id,
    )
    with _locked(data_dir):
        if not (keys.app_private_key.exists() and keys.app_public_key.exists()):
            private_pem, public_pem = _pair()
            _write(keys.app_private_key, private_pem, 0o600)
            _write(keys.app_public_key, public_pem, 0o644)
        if not (keys.alipay_private_key.exists() and keys.alipay_public_key.exists()):
            private_pem, public_pem = _pair()
            _write(keys.alipay_private_key, private_pem, 0o600)
            _write(keys.alipay_public_key, public_pem, 0o644)
        current = keys.app_id_file.read_text().strip() if keys.app_id_file.exists() else None
        if current != app_id:
            _write(keys.app_id_file, (app_id + "\n").encode("ascii"), 0o644)
    return keys
