"""What the relay and the delivery worker need from the running gateway.

They are handed it (service's ``Gateway`` is one) rather than importing the service layer,
which stands above them: the service's webhook use cases use this package, not the reverse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from redis.asyncio import Redis

from paymux.settings import Settings
from paymux.store.db import Database


class CommitSignal(Protocol):
    @property
    def wakeup(self) -> asyncio.Event:
        """Set after a commit that wrote outbox events."""
        ...


class DeliveryRuntime(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def redis(self) -> Redis: ...

    @property
    def outbox(self) -> CommitSignal: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...
