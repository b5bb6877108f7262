"""Transfer state machine: exhaustive tables and monotonicity."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymux.domain.ledger import EntryKind
from paymux.domain.outcomes import Outcome
from paymux.domain.states import (
    TERMINAL,
    InvalidTransition,
    TransferStatus,
    can_move,
    is_terminal,
    ledger_action,
    sources_for,
    transition_path,
)

P = TransferStatus.pending
R = TransferStatus.processing
S = TransferStatus.succeeded
F = TransferStatus.failed
X = TransferStatus.returned
Q = TransferStatus.requires_confirmation
C = TransferStatus.canceled
RC = Outcome.REQUIRES_CONFIRMATION
CN = Outcome.CANCELED

# Every (status, outcome) pair, written out by hand.
EXPECTED_PATHS: dict[tuple[TransferStatus, Outcome], tuple[TransferStatus, ...]] = {
    (P, Outcome.PROCESSING): (R,),
    (P, Outcome.SUCCEEDED): (S,),
    (P, Outcome.FAILED): (F,),
    (P, Outcome.RETURNED): (S, X),
    (P, Outcome.NOT_FOUND): (),
    (R, Outcome.PROCESSING): (),
    (R, Outcome.SUCCEEDED): (S,),
    (R, Outcome.FAILED): (F,),
    (R, Outcome.RETURNED): (S, X),
    (R, Outcome.NOT_FOUND): (),
    (S, Outcome.PROCESSING): (),
    (S, Outcome.SUCCEEDED): (),
    (S, Outcome.FAILED): (),  # a late FAIL never reverses a success (operator alert)
    (S, Outcome.RETURNED): (X,),
    (S, Outcome.NOT_FOUND): (),
    (F, Outcome.PROCESSING): (),
    (F, Outcome.SUCCEEDED): (),
    (F, Outcome.FAILED): (),
    (F, Outcome.RETURNED): (),
    (F, Outcome.NOT_FOUND): (),
    (X, Outcome.PROCESSING): (),
    (X, Outcome.SUCCEEDED): (),
    (X, Outcome.FAILED): (),
    (X, Outcome.RETURNED): (),
    (X, Outcome.NOT_FOUND): (),
    # WeChat's user confirmation and cancel.
    (P, RC): (Q,),
    (R, RC): (Q,),
    (Q, RC): (),
    (S, RC): (),
    (F, RC): (),
    (X, RC): (),
    (C, RC): (),
    (Q, Outcome.PROCESSING): (),  # confirmed, still moving: never back to processing
    (Q, Outcome.SUCCEEDED): (S,),
    (Q, Outcome.FAILED): (F,),
    (Q, Outcome.RETURNED): (S, X),
    (Q, Outcome.NOT_FOUND): (),
    (Q, CN): (C,),
    (P, CN): (C,),
    (R, CN): (C,),
    (S, CN): (),
    (F, CN): (),
    (X, CN): (),
    (C, CN): (),
    (C, Outcome.PROCESSING): (),
    (C, Outcome.SUCCEEDED): (),  # operator alert, kept canceled
    (C, Outcome.FAILED): (),
    (C, Outcome.RETURNED): (),
    (C, Outcome.NOT_FOUND): (),
}

EXPECTED_MOVES: dict[tuple[TransferStatus, TransferStatus], EntryKind | None] = {
    (P, R): None,
    (P, S): EntryKind.settle,
    (P, F): EntryKind.release,
    (R, S): EntryKind.settle,
    (R, F): EntryKind.release,
    (S, X): EntryKind.reverse,
    (P, Q): None,
    (R, Q): None,
    (Q, S): EntryKind.settle,
    (Q, F): EntryKind.release,
    (Q, C): EntryKind.release,
    (P, C): EntryKind.release,
    (R, C): EntryKind.release,
}

RANK = {P: 0, R: 1, Q: 2, S: 3, F: 3, C: 3, X: 4}


def test_table_covers_every_pair() -> None:
    assert set(EXPECTED_PATHS) == set(itertools.product(TransferStatus, Outcome))


@pytest.mark.parametrize(("current", "outcome"), list(EXPECTED_PATHS))
def test_transition_path(current: TransferStatus, outcome: Outcome) -> None:
    assert transition_path(current, outcome) == EXPECTED_PATHS[(current, outcome)]


def test_transition_path_accepts_plain_strings() -> None:
    assert transition_path("pending", "returned") == (S, X)  # type: ignore[arg-type]


@pytest.mark.parametrize(("frm", "to"), list(itertools.product(TransferStatus, repeat=2)))
def test_moves_and_ledger_actions(frm: TransferStatus, to: TransferStatus) -> None:
    allowed = (frm, to) in EXPECTED_MOVES
    assert can_move(frm, to) is allowed
    if allowed:
        assert ledger_action(frm, to) == EXPECTED_MOVES[(frm, to)]
        assert RANK[to] > RANK[frm]
    else:
        with pytest.raises(InvalidTransition):
            ledger_action(frm, to)


@pytest.mark.parametrize("to", list(TransferStatus))
def test_sources_for(to: TransferStatus) -> None:
    assert sources_for(to) == frozenset(frm for frm, dst in EXPECTED_MOVES if dst == to)


def test_sources_for_examples() -> None:
    assert sources_for(S) == {P, R, Q}
    assert sources_for(F) == {P, R, Q}
    assert sources_for(C) == {P, R, Q}
    assert sources_for(Q) == {P, R}
    assert sources_for(X) == {S}
    assert sources_for(R) == {P}
    assert sources_for(P) == frozenset()


def test_terminal_states() -> None:
    assert frozenset({F, X, C}) == TERMINAL
    assert [s for s in TransferStatus if is_terminal(s)] == [F, X, C]
    for status, outcome in itertools.product(TERMINAL, Outcome):
        assert transition_path(status, outcome) == ()


@pytest.mark.parametrize(("current", "outcome"), list(EXPECTED_PATHS))
def test_every_path_is_a_chain_of_allowed_moves(current: TransferStatus, outcome: Outcome) -> None:
    status = current
    for step in transition_path(current, outcome):
        assert can_move(status, step)
        status = step


@given(st.lists(st.sampled_from(Outcome), max_size=30))
def test_any_outcome_sequence_only_moves_forward(outcomes: list[Outcome]) -> None:
    status = P
    settles = releases = reverses = 0
    for outcome in outcomes:
        was_terminal = status in TERMINAL
        for step in transition_path(status, outcome):
            assert RANK[step] > RANK[status]
            action = ledger_action(status, step)
            settles += action is EntryKind.settle
            releases += action is EntryKind.release
            reverses += action is EntryKind.reverse
            status = step
        if was_terminal:
            assert status in TERMINAL
    # The reservation resolves at most once; a reverse only follows a settle.
    assert settles + releases <= 1
    assert reverses <= settles
    if Outcome.FAILED in outcomes and status is F:
        assert settles == 0
