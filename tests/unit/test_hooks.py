"""Named hook points (paymux/hooks.py): production reaches them and attaches nothing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from paymux import hooks

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "adapters").rglob("*.py")])


def calls_of(name: str) -> list[tuple[Path, ast.Call]]:
    """Every call of ``hooks.<name>(...)`` in the production source."""
    found = []
    for path in PRODUCTION:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == name
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "hooks"
            ):
                found.append((path, node))
    return found


def test_an_attached_hook_runs_at_its_point_until_detached() -> None:
    seen: list[str] = []
    detach = hooks.attach("after_send", lambda: seen.append("after_send"))
    try:
        hooks.reach("after_send")
        hooks.reach("after_pending")
    finally:
        detach()
    hooks.reach("after_send")
    assert seen == ["after_send"]


def test_an_unknown_point_is_refused() -> None:
    with pytest.raises(ValueError, match="no hook point"):
        hooks.attach("after_sned", lambda: None)


def test_every_point_reached_in_production_is_named_and_every_name_is_reached() -> None:
    reached = set()
    for path, call in calls_of("reach"):
        arg = call.args[0] if call.args else None
        assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), (
            f"{path.relative_to(ROOT)}:{call.lineno}: hooks.reach takes a literal point name"
        )
        assert arg.value in hooks.POINTS, f"{path.relative_to(ROOT)}: unknown point {arg.value}"
        reached.add(arg.value)
    assert reached == set(hooks.POINTS)


def test_production_attaches_nothing() -> None:
    assert [f"{p.relative_to(ROOT)}:{c.lineno}" for p, c in calls_of("attach")] == []
