"""A channel's circuit breaker as a pure state machine (time is passed in, no I/O).

::

    closed ──(threshold consecutive failures)──> open ──(open_seconds pass)──> half_open
      ^                                           ^                              │
      └────────────(the probe succeeds)───────────┼──────────────────────────────┤
                                                  └─────(the probe fails)────────┘

While ``open`` no call is let through: the service parks new transfers (written and held,
not sent) for the sync loop to send later under their own channel reference. After
``open_seconds`` the next call is a probe (``half_open``, one at a time); its success closes
the circuit, its failure opens it again for another ``open_seconds``. A probe whose result
never comes back (its process died) is given up after ``open_seconds`` so another probe
may go.

A "failure" is a call whose outcome the channel never gave us (timeout, refused connection,
transport error); a business answer (even a refusal of the payee) is a success: the channel
is up.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class CircuitState(enum.StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"


@dataclass(frozen=True)
class CircuitPolicy:
    failure_threshold: int = 5
    open_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.open_seconds <= 0:
            raise ValueError("failure_threshold >= 1 and open_seconds > 0")


@dataclass(frozen=True)
class Circuit:
    state: CircuitState = CircuitState.closed
    failures: int = 0  # consecutive failed calls while closed
    since: float = 0.0  # when it opened, or when the current probe started
    probing: bool = False  # a half-open probe is out


def admit(c: Circuit, now: float, policy: CircuitPolicy) -> tuple[Circuit, bool]:
    """May a call go to the channel now? Returns the new circuit and the answer.

    An admitted call in ``half_open`` is the probe: the caller must report its result.
    """
    if c.state is CircuitState.closed:
        return c, True
    if now - c.since < policy.open_seconds:
        return c, False  # open and cooling down, or a probe is out and not yet overdue
    # Open long enough, or the probe out is overdue (its caller died): this call probes.
    return Circuit(CircuitState.half_open, c.failures, since=now, probing=True), True


def record_success(c: Circuit) -> Circuit:
    """A call got an answer from the channel: it is up."""
    del c
    return Circuit()


def record_failure(c: Circuit, now: float, policy: CircuitPolicy) -> Circuit:
    """A call got no answer (timeout, refusal, transport error)."""
    if c.state is CircuitState.closed:
        failures = c.failures + 1
        if failures >= policy.failure_threshold:
            return Circuit(CircuitState.open, failures, since=now)
        return replace(c, failures=failures)
    # A failed probe (or a call admitted before the circuit opened): open for another spell.
    return Circuit(CircuitState.open, c.failures + 1, since=now)
