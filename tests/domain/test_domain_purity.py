"""The domain layer stays pure: no I/O modules imported anywhere in paymux.domain."""

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[2] / "src" / "paymux" / "domain"
FORBIDDEN = {
    "aiohttp",
    "alembic",
    "asyncio",
    "fastapi",
    "httpx",
    "io",
    "os",
    "pathlib",
    "redis",
    "requests",
    "shutil",
    "socket",
    "sqlalchemy",
    "subprocess",
    "tempfile",
    "urllib",
    "uvicorn",
}
ALLOWED_PAYMUX = {"paymux.domain"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


MODULES = sorted(DOMAIN.glob("*.py"))


def test_domain_modules_exist() -> None:
    assert {p.stem for p in MODULES} >= {"money", "fees", "ledger", "states", "routing", "ids"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_no_io_imports(path: Path) -> None:
    for module in imported_modules(path):
        assert module.split(".")[0] not in FORBIDDEN, f"{path.name} imports {module}"
        if module.startswith("paymux"):
            assert any(module == ok or module.startswith(ok + ".") for ok in ALLOWED_PAYMUX), (
                f"{path.name} imports {module}"
            )
    assert "open(" not in path.read_text(encoding="utf-8")
