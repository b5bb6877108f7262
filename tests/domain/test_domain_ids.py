"""Prefixed time-ordered ids and channel references."""

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymux.domain.ids import (
    CROCKFORD_ALPHABET,
    channel_reference,
    id_timestamp_ms,
    new_id,
    reference_to_id,
    split_id,
)

BODY = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def test_shape() -> None:
    value = new_id("tr")
    prefix, _, body = value.partition("_")
    assert prefix == "tr"
    assert BODY.fullmatch(body)
    assert set(body) <= set(CROCKFORD_ALPHABET)
    assert split_id(value) == ("tr", body)


def test_ids_are_unique_and_strictly_increasing() -> None:
    ids = [new_id("tr") for _ in range(20_000)]  # many share a millisecond
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_ids_sort_by_creation_time() -> None:
    first = new_id("evt")
    time.sleep(0.003)
    second = new_id("evt")
    assert first < second
    assert id_timestamp_ms(first) < id_timestamp_ms(second)


def test_timestamp_is_now() -> None:
    before = time.time_ns() // 1_000_000
    stamp = id_timestamp_ms(new_id("tr"))
    after = time.time_ns() // 1_000_000
    assert before <= stamp <= after + 1


@pytest.mark.parametrize("prefix", ["", "_tr", "tr-x", "1tr", "t r", "tr\n", "x" * 33])
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_id(prefix)


def test_prefix_may_contain_underscores() -> None:
    value = new_id("wh_msg")
    assert split_id(value)[0] == "wh_msg"


def test_channel_reference() -> None:
    transfer_id = new_id("tr")
    reference = channel_reference(transfer_id)
    assert reference == "PMX" + transfer_id[3:]
    assert len(reference) == 29
    assert reference.isascii() and reference.isalnum()
    assert channel_reference(transfer_id) == reference  # deterministic
    assert channel_reference(transfer_id.lower()) == reference  # Crockford is case-free
    assert reference_to_id(reference) == transfer_id
    assert channel_reference(new_id("tr")) != reference


@pytest.mark.parametrize(
    "bad",
    ["", "tr", "tr_", "tr_123", "tr_01JD8X3ZQ4M9T6V0W2K5R7YB1", "tr_01JD8X3ZQ4M9T6V0W2K5R7YB1U"],
)
def test_channel_reference_needs_a_paymux_id(bad: str) -> None:
    with pytest.raises(ValueError, match="Paymux id"):
        channel_reference(bad)


@pytest.mark.parametrize(
    "bad", ["", "PMX", "pmx01JD8X3ZQ4M9T6V0W2K5R7YB1C", "XYZ01JD8X3ZQ4M9T6V0W2K5R7YB1C"]
)
def test_reference_to_id_refuses_foreign_references(bad: str) -> None:
    with pytest.raises(ValueError, match="reference"):
        reference_to_id(bad)


@given(st.sampled_from(["tr", "mer", "evt", "wh_msg", "T"]))
def test_every_reference_fits_both_channels(prefix: str) -> None:
    reference = channel_reference(new_id(prefix))
    # WeChat out_bill_no: letters and digits, at most 32; Alipay out_biz_no allows more.
    assert re.fullmatch(r"[A-Za-z0-9]{5,32}", reference)
