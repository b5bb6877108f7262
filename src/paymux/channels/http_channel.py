"""What every HTTP channel adapter shares: its connection settings (one set of names for
all channels), its client (the transport is a setting) and its retries before acceptance.

Channel quirks (signing, status words, which answers mean "try again") stay in each
adapter; this base only knows HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from paymux.channels.http import Answer, AttemptHook, ChannelHttp, Transport
from paymux.channels.retry import RetryPolicy
from paymux.channels.transport import NoAnswer, exchange

log = logging.getLogger(__name__)


def _attempts_from_retries(value: Any) -> Any:
    # max_retries counted resends, retry_attempts counts every attempt.
    if isinstance(value, int) and not isinstance(value, bool):
        return value + 1
    if isinstance(value, str) and value.strip().isdigit():
        return int(value) + 1
    return value  # not a count: let validation reject it under its new name


def _same(value: Any) -> Any:
    return value


_CONVERSIONS: dict[str, Callable[[Any], Any]] = {"max_retries": _attempts_from_retries}


class ChannelHttpSettings(BaseModel):
    """Connection settings read under the same names for every channel
    (``[<channel>]`` in ``config/channels.toml``, ``PAYMUX_CHANNELS__<CHANNEL>__<NAME>``)."""

    # Validation errors never echo inputs: an adapter's settings may hold a secret.
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    base_url: str
    transport: Transport = "aiohttp"
    timeout_seconds: float = Field(default=10.0, gt=0)  # read, write and pool
    connect_timeout_seconds: float = Field(default=3.0, gt=0)
    max_connections: int = Field(default=200, ge=1)
    # Resends happen only while the channel cannot have accepted the call.
    retry_attempts: int = Field(default=4, ge=1, le=11)  # in all, the first one included
    retry_initial_seconds: float = Field(default=0.2, ge=0)
    retry_max_seconds: float = Field(default=2.0, ge=0)

    # Names documented by earlier releases, still read (with a warning): old -> new.
    deprecated_names: ClassVar[Mapping[str, str]] = {"max_retries": "retry_attempts"}

    @model_validator(mode="before")
    @classmethod
    def _read_deprecated_names(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        values = dict(data)
        for old, new in cls.deprecated_names.items():
            if old not in values:
                continue
            value = _CONVERSIONS.get(old, _same)(values.pop(old))
            # Compared as text: the environment gives "4" where the file gives 4.
            if new in values and str(values[new]) != str(value):
                # An old name left in the environment over a new one in the file (or the
                # reverse): refuse rather than guess which one the operator meant.
                raise ValueError(f"both {old} (deprecated) and {new} are set: keep {new} only")
            log.warning("channel setting %r is deprecated: use %r", old, new)
            values[new] = value
        return values

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.retry_attempts, self.retry_initial_seconds, self.retry_max_seconds)

    def channel_http(self, base_url: str | None = None) -> ChannelHttp:
        return ChannelHttp(
            base_url=self.base_url if base_url is None else base_url,
            timeout_seconds=self.timeout_seconds,
            connect_timeout_seconds=self.connect_timeout_seconds,
            transport=self.transport,
            max_connections=self.max_connections,
        )


class HttpChannel:
    """Base of the HTTP channel adapters: one client (``_request`` sends once, classified)
    and one retry policy (``_retry.run`` resends while not accepted)."""

    def __init__(self, settings: ChannelHttpSettings, *, base_url: str | None = None) -> None:
        self._http = settings.channel_http(base_url)
        self._retry = settings.retry_policy()

    @property
    def http(self) -> httpx.AsyncClient:
        """An httpx client on the same connections, for streamed statement downloads."""
        return self._http.httpx_client

    @property
    def attempt_hooks(self) -> list[AttemptHook]:
        """Awaited with (method, url) before each request attempt goes out."""
        return self._http.attempt_hooks

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self, method: str, path: str, *, label: str, **kwargs: Any
    ) -> Answer | NoAnswer:
        """One request: RetryableBeforeAcceptance if certainly not sent, NoAnswer if
        it may have been."""
        return await exchange(self._http, method, path, label=label, **kwargs)
