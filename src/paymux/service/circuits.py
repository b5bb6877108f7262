"""Per-channel circuit breakers of this gateway process (the state machine is domain/circuit.py).

Each replica keeps its own: a circuit is a local judgement ("my calls to this channel keep
getting no answer"), and it costs nothing to share. The send path asks :meth:`would_admit`
before writing a transfer (an open circuit parks it: written and held, ``next_sync_at`` set,
not sent), then :meth:`admit` just before calling. Every send and query result is reported
with :meth:`record`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge

from paymux.channels.base import ChannelResult
from paymux.domain.circuit import (
    Circuit,
    CircuitPolicy,
    CircuitState,
    admit,
    record_failure,
    record_success,
)
from paymux.domain.outcomes import Outcome

circuit_state = Gauge(
    "paymux_channel_circuit_state",
    "Channel circuit breaker state in this process: 0 closed, 1 half-open, 2 open",
    ["channel"],
)
transfers_parked = Counter(
    "paymux_transfers_parked",
    "Transfers accepted and queued without a call because the channel's circuit was open",
    ["channel"],
)
_GAUGE = {CircuitState.closed: 0, CircuitState.half_open: 1, CircuitState.open: 2}


def is_channel_fault(result: ChannelResult) -> bool:
    """True when the call got no readable answer: our timeout, a refused or dropped
    connection, retries exhausted, a 5xx / "service unavailable" without a status word.
    A business answer (a status word, even FAILED) means the channel is up."""
    if result.outcome is not Outcome.PROCESSING:
        return False
    raw = result.raw_status
    return raw is None or raw.startswith("paymux_") or raw.startswith("HTTP 5")


class ChannelCircuits:
    def __init__(self, policy: CircuitPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._circuits: dict[str, Circuit] = {}

    def _set(self, channel: str, c: Circuit) -> None:
        self._circuits[channel] = c
        circuit_state.labels(channel).set(_GAUGE[c.state])

    def state(self, channel: str) -> CircuitState:
        return self._circuits.get(channel, Circuit()).state

    def snapshot(self, channels: list[str]) -> dict[str, str]:
        return {name: self.state(name).value for name in channels}

    def would_admit(self, channel: str) -> bool:
        """Whether a call would be let through now (changes nothing)."""
        _, ok = admit(self._circuits.get(channel, Circuit()), self._clock(), self.policy)
        return ok

    def admit(self, channel: str) -> bool:
        """Let a call through now? In half-open the admitted call is the probe."""
        c, ok = admit(self._circuits.get(channel, Circuit()), self._clock(), self.policy)
        if ok and c.state is not CircuitState.closed:
            self._set(channel, c)
        return ok

    def record(self, channel: str, result: ChannelResult) -> None:
        self.record_fault(channel) if is_channel_fault(result) else self.record_ok(channel)

    def record_ok(self, channel: str) -> None:
        c = self._circuits.get(channel)
        if c is not None and c.failures == 0 and c.state is CircuitState.closed:
            return  # the common case: nothing to change
        self._set(channel, record_success(c or Circuit()))

    def record_fault(self, channel: str) -> None:
        c = self._circuits.get(channel, Circuit())
        self._set(channel, record_failure(c, self._clock(), self.policy))
