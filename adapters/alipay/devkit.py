"""Channel settings that point Paymux at a local Alipay sandbox (used by `paymux dev`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .keys import ensure_keys


def sandbox_channel_settings(data_dir: Path, base_url: str) -> dict[str, Any]:
    keys = ensure_keys(data_dir)
    return {
        "base_url": base_url,
        "app_id": keys.app_id,
        "app_private_key_file": str(keys.app_private_key.resolve()),
        "alipay_public_key_file": str(keys.alipay_public_key.resolve()),
    }
