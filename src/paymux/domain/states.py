"""The transfer state machine: states only move forward.

::

    pending ──> processing ──> requires_confirmation ──> succeeded ──> returned
       │            │                  │           └───> failed
       │            │                  └───────────────> canceled
       └────────────┴──────> (pending and processing may also jump to any later state)

``requires_confirmation``: the channel waits for the payee to confirm (WeChat's
WAIT_USER_CONFIRM); the hold stays. ``failed``, ``canceled`` and ``returned`` are terminal.
``succeeded`` is final except for a bank bounce (退票, ``returned``). A late or duplicate
outcome can never move a transfer backwards: it is a no-op, and a FAILED arriving after
SUCCEEDED (or a SUCCEEDED after CANCELED) is a no-op the service reports to an operator.

The funds hold is made when the transfer is created (``pending``), not by a transition.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from paymux.domain.ledger import EntryKind
from paymux.domain.outcomes import Outcome


class TransferStatus(enum.StrEnum):
    pending = "pending"
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"
    returned = "returned"
    requires_confirmation = "requires_confirmation"
    canceled = "canceled"


TERMINAL: frozenset[TransferStatus] = frozenset(
    {TransferStatus.failed, TransferStatus.returned, TransferStatus.canceled}
)
# Statuses whose amount + fee is still held (the ledger check proves held = their sum).
IN_FLIGHT: frozenset[TransferStatus] = frozenset(
    {TransferStatus.pending, TransferStatus.processing, TransferStatus.requires_confirmation}
)

# Position along the lifecycle; every allowed move strictly increases it.
RANK: Mapping[TransferStatus, int] = {
    TransferStatus.pending: 0,
    TransferStatus.processing: 1,
    TransferStatus.requires_confirmation: 2,
    TransferStatus.succeeded: 3,
    TransferStatus.failed: 3,
    TransferStatus.canceled: 3,
    TransferStatus.returned: 4,
}

# Every one-step move, and the ledger entry it makes.
_MOVES: Mapping[tuple[TransferStatus, TransferStatus], EntryKind | None] = {
    (TransferStatus.pending, TransferStatus.processing): None,
    (TransferStatus.pending, TransferStatus.succeeded): EntryKind.settle,
    (TransferStatus.pending, TransferStatus.failed): EntryKind.release,
    (TransferStatus.processing, TransferStatus.succeeded): EntryKind.settle,
    (TransferStatus.processing, TransferStatus.failed): EntryKind.release,
    (TransferStatus.succeeded, TransferStatus.returned): EntryKind.reverse,
    (TransferStatus.pending, TransferStatus.requires_confirmation): None,
    (TransferStatus.processing, TransferStatus.requires_confirmation): None,
    (TransferStatus.requires_confirmation, TransferStatus.succeeded): EntryKind.settle,
    (TransferStatus.requires_confirmation, TransferStatus.failed): EntryKind.release,
    (TransferStatus.pending, TransferStatus.canceled): EntryKind.release,
    (TransferStatus.processing, TransferStatus.canceled): EntryKind.release,
    (TransferStatus.requires_confirmation, TransferStatus.canceled): EntryKind.release,
}

_P, _R, _S, _F, _X, _Q, _C = (
    TransferStatus.pending,
    TransferStatus.processing,
    TransferStatus.succeeded,
    TransferStatus.failed,
    TransferStatus.returned,
    TransferStatus.requires_confirmation,
    TransferStatus.canceled,
)

# (current, outcome) -> statuses to move through; pairs not listed are no-ops.
_PATHS: Mapping[tuple[TransferStatus, Outcome], tuple[TransferStatus, ...]] = {
    (_P, Outcome.PROCESSING): (_R,),
    (_P, Outcome.SUCCEEDED): (_S,),
    (_P, Outcome.FAILED): (_F,),
    (_P, Outcome.RETURNED): (_S, _X),
    (_R, Outcome.SUCCEEDED): (_S,),
    (_R, Outcome.FAILED): (_F,),
    (_R, Outcome.RETURNED): (_S, _X),
    (_S, Outcome.RETURNED): (_X,),
    (_P, Outcome.REQUIRES_CONFIRMATION): (_Q,),
    (_R, Outcome.REQUIRES_CONFIRMATION): (_Q,),
    # Confirmed but still moving (TRANSFERING) stays requires_confirmation until final:
    # going back to processing would move backwards.
    (_Q, Outcome.SUCCEEDED): (_S,),
    (_Q, Outcome.FAILED): (_F,),
    (_Q, Outcome.RETURNED): (_S, _X),
    (_Q, Outcome.CANCELED): (_C,),
    (_P, Outcome.CANCELED): (_C,),
    (_R, Outcome.CANCELED): (_C,),
}


class InvalidTransition(ValueError):
    """A move the state machine does not allow."""


def transition_path(current: TransferStatus, outcome: Outcome) -> tuple[TransferStatus, ...]:
    """The statuses to move through, in order, for a channel ``outcome``; () for a no-op.

    A bounce reported before we saw the success goes through ``succeeded`` first, so the
    ledger settles and then reverses. Anything that would move backwards or out of a
    terminal state, NOT_FOUND, and a FAILED after SUCCEEDED (the service alerts an operator)
    are no-ops.
    """
    return _PATHS.get((TransferStatus(current), Outcome(outcome)), ())


def can_move(frm: TransferStatus, to: TransferStatus) -> bool:
    """Whether ``frm`` -> ``to`` is one allowed step."""
    return (TransferStatus(frm), TransferStatus(to)) in _MOVES


def ledger_action(frm: TransferStatus, to: TransferStatus) -> EntryKind | None:
    """The journal entry a step makes: settle, release, reverse, or None (-> processing).

    Raises InvalidTransition for a step the machine does not allow.
    """
    key = (TransferStatus(frm), TransferStatus(to))
    if key not in _MOVES:
        raise InvalidTransition(f"a transfer cannot move from {key[0]} to {key[1]}")
    return _MOVES[key]


def sources_for(to: TransferStatus) -> frozenset[TransferStatus]:
    """Statuses from which ``to`` is one step away (for ``UPDATE ... WHERE status IN``)."""
    target = TransferStatus(to)
    return frozenset(frm for frm, dst in _MOVES if dst == target)


def is_terminal(status: TransferStatus) -> bool:
    return TransferStatus(status) in TERMINAL


def is_final(status: TransferStatus) -> bool:
    """Terminal, or succeeded (final but for a bounce): nothing more is awaited."""
    return TransferStatus(status) in TERMINAL or TransferStatus(status) is TransferStatus.succeeded
