"""Settings: the channels file, per-value environment overrides, and the enabled list."""

from __future__ import annotations

from pathlib import Path

import pytest

from paymux.settings import Settings

CHANNELS = """
[alipay]
gateway_url = "https://openapi.alipay.com"
app_id = "2021000000000000"

[wechat]
base_url = "https://api.mch.weixin.qq.com"
mchid = "1900000109"
"""


def test_file_then_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "channels.toml"
    path.write_text(CHANNELS)
    monkeypatch.setenv("PAYMUX_CHANNELS_FILE", str(path))
    monkeypatch.setenv("PAYMUX_CHANNELS__ALIPAY__APP_ID", "2021999")
    channels = Settings().channel_settings
    assert channels["alipay"] == {"gateway_url": "https://openapi.alipay.com", "app_id": "2021999"}
    assert channels["wechat"]["mchid"] == "1900000109"


def test_enabled_channels_filters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "channels.toml"
    path.write_text(CHANNELS)
    monkeypatch.setenv("PAYMUX_CHANNELS_FILE", str(path))
    monkeypatch.setenv("PAYMUX_ENABLED_CHANNELS", '["wechat"]')
    assert list(Settings().channel_settings) == ["wechat"]


def test_missing_file_means_no_channels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMUX_CHANNELS_FILE", str(tmp_path / "absent.toml"))
    assert Settings().channel_settings == {}


def test_notify_base_url_defaults_to_listen_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMUX_PORT", "9100")
    assert Settings().notify_base_url == "http://127.0.0.1:9100"
    monkeypatch.setenv("PAYMUX_PUBLIC_URL", "https://pay.example.com/")
    assert Settings().notify_base_url == "https://pay.example.com"


def test_secret_settings_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMUX_ADMIN_KEY", "ak_super_secret_value")
    assert "ak_super_secret_value" not in repr(Settings())
