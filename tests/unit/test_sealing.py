"""Envelope encryption (sealing.py): pure, no database."""

from __future__ import annotations

import base64
import os

import pytest

from paymux.sealing import (
    Kek,
    Sealer,
    SealingError,
    is_sealed,
    new_kek_entry,
    parse_keks,
    unwrap,
    wrap,
)


def _sealer() -> Sealer:
    sealer = Sealer()
    sealer.add_data_key("dek_test", os.urandom(32), active=True)
    return sealer


def test_seal_open_round_trip_and_fresh_nonces() -> None:
    sealer = _sealer()
    a = sealer.seal("6222020200112233445", "transfers.payee_account")
    b = sealer.seal("6222020200112233445", "transfers.payee_account")
    assert a != b and is_sealed(a) and "6222" not in a
    assert sealer.open(a, "transfers.payee_account") == "6222020200112233445"
    assert sealer.open("张三", "transfers.payee_name") == "张三"  # legacy plaintext passes


def test_a_value_does_not_open_in_another_column_or_when_tampered() -> None:
    sealer = _sealer()
    sealed = sealer.seal("secret", "webhook_secrets.secret")
    with pytest.raises(SealingError):
        sealer.open(sealed, "transfers.payee_name")
    head, _, body = sealed.rpartition(":")
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1
    with pytest.raises(SealingError):
        sealer.open(f"{head}:{base64.b64encode(bytes(raw)).decode()}", "webhook_secrets.secret")


def test_an_unknown_data_key_or_no_key_is_an_error() -> None:
    other = _sealer().seal("x", "c")
    with pytest.raises(SealingError):
        _sealer().open(other.replace("dek_test", "dek_gone"), "c")
    with pytest.raises(SealingError):
        Sealer().seal("x", "c")


def test_blind_index_is_stable_and_keyed() -> None:
    sealer = _sealer()
    assert sealer.blind_index("a@b.c", "p") == sealer.blind_index("a@b.c", "p")
    assert sealer.blind_index("a@b.c", "p") != _sealer().blind_index("a@b.c", "p")


def test_wrap_unwrap_under_the_right_kek_only() -> None:
    kek, other = Kek("kek_a", os.urandom(32)), Kek("kek_b", os.urandom(32))
    dek = os.urandom(32)
    wrapped = wrap(kek, "dek_1", dek)
    assert unwrap(kek, "dek_1", wrapped) == dek
    with pytest.raises(SealingError):
        unwrap(other, "dek_1", wrapped)
    with pytest.raises(SealingError):
        unwrap(kek, "dek_2", wrapped)  # the data key id is bound to its wrapping


def test_kek_configuration_parsing() -> None:
    first, second = new_kek_entry(), new_kek_entry()
    keks = parse_keks(f"# comment\n{first}\n{second}\n")
    assert [k.id for k in keks] == [first.split(":")[0], second.split(":")[0]]
    assert [k.id for k in parse_keks(f"{first},{second}")] == [k.id for k in keks]
    for bad in ("", "nocolon", "k:notbase64!", "k:" + base64.b64encode(b"short").decode()):
        with pytest.raises(SealingError):
            parse_keks(bad)


def test_sealed_files_open_only_with_their_kek() -> None:
    from paymux.sealing import is_sealed_file, open_file_bytes, seal_file_bytes  # noqa: PLC0415

    kek, other = parse_keks(new_kek_entry())[0], parse_keks(new_kek_entry())[0]
    pem = b"-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----\n"
    sealed = seal_file_bytes(kek, pem)
    assert is_sealed_file(sealed) and b"PRIVATE" not in sealed
    assert open_file_bytes([other, kek], sealed) == pem
    with pytest.raises(SealingError):
        open_file_bytes([other], sealed)
