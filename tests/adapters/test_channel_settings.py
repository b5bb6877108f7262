"""Every channel reads its connection and retry settings under the same names; the names
earlier releases documented (Alipay's ``gateway_url``, ``max_retries``) still work, with a
warning, from the channels file and from the environment alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from paymux.channels.http_channel import ChannelHttpSettings
from paymux.channels.registry import available_factories
from paymux.devstack import sandbox_settings
from paymux.settings import Settings

CHANNELS = sorted(available_factories())
SHARED = {
    "base_url": "http://127.0.0.1:1",
    "transport": "httpx",
    "timeout_seconds": 4.5,
    "connect_timeout_seconds": 1.5,
    "max_connections": 7,
    "retry_attempts": 5,
    "retry_initial_seconds": 0.03,
    "retry_max_seconds": 0.7,
}


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("settings-keys")


def channel_settings(channel: Any) -> ChannelHttpSettings:
    settings = channel.settings
    assert isinstance(settings, ChannelHttpSettings)
    return settings


@pytest.mark.parametrize("name", CHANNELS)
async def test_every_channel_reads_the_same_names(keys_dir: Path, name: str) -> None:
    values = {**sandbox_settings(name, keys_dir / name, "http://ignored"), **SHARED}
    channel = available_factories()[name](values)
    try:
        settings = channel_settings(channel)
        assert {key: getattr(settings, key) for key in SHARED} == SHARED
        assert settings.retry_policy().attempts == 5
    finally:
        await channel.aclose()


async def test_alipay_documented_old_names_still_work(
    keys_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    values = sandbox_settings("alipay", keys_dir / "alipay", "http://x")
    del values["base_url"]
    old = {**values, "gateway_url": "https://openapi.example/gateway.do", "max_retries": 2}
    channel = available_factories()["alipay"](old)
    try:
        settings = channel_settings(channel)
        assert settings.base_url == "https://openapi.example/gateway.do"
        assert settings.retry_attempts == 3  # max_retries counted resends only
        assert str(channel.http.base_url) == "https://openapi.example"  # type: ignore[attr-defined]
    finally:
        await channel.aclose()
    assert "'gateway_url' is deprecated: use 'base_url'" in caplog.text
    assert "'max_retries' is deprecated: use 'retry_attempts'" in caplog.text


@pytest.mark.parametrize("name", CHANNELS)
def test_an_old_name_contradicting_its_new_one_is_refused(keys_dir: Path, name: str) -> None:
    values = sandbox_settings(name, keys_dir / name, "http://x")
    with pytest.raises(ValueError, match="max_retries"):
        available_factories()[name]({**values, "retry_attempts": 2, "max_retries": 5})


async def test_the_same_value_under_both_names_is_accepted(keys_dir: Path) -> None:
    values = sandbox_settings("wechat", keys_dir / "wechat", "http://x")
    channel = available_factories()["wechat"]({**values, "retry_attempts": "3", "max_retries": 2})
    await channel.aclose()
    assert channel_settings(channel).retry_attempts == 3


async def test_old_names_from_the_environment(
    keys_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = sandbox_settings("alipay", keys_dir / "alipay", "http://x")
    del values["base_url"]
    for key, value in values.items():
        monkeypatch.setenv(f"PAYMUX_CHANNELS__ALIPAY__{key.upper()}", str(value))
    monkeypatch.setenv("PAYMUX_CHANNELS__ALIPAY__GATEWAY_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("PAYMUX_CHANNELS__ALIPAY__MAX_RETRIES", "0")
    merged = Settings(channels_file=tmp_path / "none.toml").channel_settings["alipay"]
    channel = available_factories()["alipay"](merged)
    await channel.aclose()
    settings = channel_settings(channel)
    assert (settings.base_url, settings.retry_attempts) == ("http://127.0.0.1:9", 1)
