"""Scopes, roles and the audit hash chain (pure rules)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paymux.domain.access import (
    ALL_SCOPES,
    InvalidScopes,
    Role,
    normalise_scopes,
    role_allows,
    scope_allows,
)
from paymux.domain.audit_chain import GENESIS, first_break, record_hash


def test_scopes() -> None:
    assert normalise_scopes(None) == (ALL_SCOPES,) == normalise_scopes(["*"])
    assert normalise_scopes(["transfers:read", "balance:read", "transfers:read"]) == (
        "balance:read",
        "transfers:read",
    )
    for bad in ([], ["transfers:delete"], ["*", "transfers:read"]):
        with pytest.raises(InvalidScopes):
            normalise_scopes(bad)
    assert scope_allows(("transfers:read",), "transfers:read")
    assert not scope_allows(("transfers:read",), "transfers:write")
    assert not scope_allows(("transfers:read",), ALL_SCOPES)
    assert scope_allows((ALL_SCOPES,), "webhooks:write")


def test_roles_are_ordered() -> None:
    assert role_allows(Role.admin, Role.operator) and role_allows(Role.operator, Role.viewer)
    assert not role_allows(Role.viewer, Role.operator)
    assert not role_allows(Role.operator, Role.admin)


def _chain(actions: list[str]) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    prev = GENESIS
    for seq, action in enumerate(actions, start=1):
        rec: dict[str, object] = {
            "seq": seq,
            "id": f"aud_{seq}",
            "action": action,
            "actor_kind": "operator",
            "prev_hash": prev,
        }
        rec["hash"] = record_hash(rec)
        prev = str(rec["hash"])
        records.append(rec)
    return records


@settings(deadline=None)  # the shared machine is slow; no timing is asserted
@given(st.lists(st.text(min_size=1, max_size=8), min_size=2, max_size=12), st.data())
def test_any_edit_delete_or_swap_breaks_the_chain(actions: list[str], data: st.DataObject) -> None:
    records = _chain(actions)
    assert first_break(records) is None
    i = data.draw(st.integers(0, len(records) - 1))
    edited = [dict(r) for r in records]
    edited[i]["action"] = str(edited[i]["action"]) + "!"
    assert first_break(edited) is not None
    deleted = records[:i] + records[i + 1 :]
    if i < len(records) - 1:  # dropping the newest record is not detectable by the chain
        assert first_break(deleted) is not None
    if len(records) > 1 and i < len(records) - 1:
        swapped = list(records)
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        assert first_break(swapped) is not None
