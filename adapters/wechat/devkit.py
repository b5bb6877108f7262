"""Channel settings that point Paymux at a local WeChat Pay sandbox (used by `paymux dev`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .keys import ensure_keys


def sandbox_channel_settings(data_dir: Path, base_url: str) -> dict[str, Any]:
    keys = ensure_keys(data_dir.resolve())
    return keys.channel_settings(base_url)
