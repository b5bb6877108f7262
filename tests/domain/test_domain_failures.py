"""Paymux's failure vocabulary: every code documented, unknown channel codes flagged."""

from paymux.domain.failures import FAILURES, FailureCode, describe, unify


def test_every_code_is_documented() -> None:
    assert set(FAILURES) == set(FailureCode)
    for code in FailureCode:
        assert describe(code.value) == FAILURES[code].description


def test_known_channel_code_maps_to_its_paymux_code() -> None:
    table = {"PAYEE_NOT_EXIST": "payee_not_found"}
    got = unify("PAYEE_NOT_EXIST", table)
    assert got.code is FailureCode.payee_not_found
    assert got.known


def test_unknown_channel_code_is_channel_rejected_and_flagged() -> None:
    got = unify("SOMETHING_NEW", {"PAYEE_NOT_EXIST": "payee_not_found"})
    assert got.code is FailureCode.channel_rejected
    assert not got.known


def test_missing_channel_code_is_channel_rejected_but_not_unknown() -> None:
    got = unify(None, {})
    assert got.code is FailureCode.channel_rejected
    assert got.known


def test_describe_unknown_is_none() -> None:
    assert describe(None) is None
    assert describe("nope") is None
