"""The layers of Paymux, low to high; no module imports from a layer above its own.

Read from the source (AST), like the domain purity test: every import counts, including
those inside functions and under ``TYPE_CHECKING``. docs/ARCHITECTURE.md explains the
picture; a new top-level module must be placed in ``LAYERS`` before this test passes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {  # import name -> source folder (pyproject.toml's package-dir)
    "paymux": ROOT / "src" / "paymux",
    "paymux_alipay": ROOT / "adapters" / "alipay",
    "paymux_wechat": ROOT / "adapters" / "wechat",
}

# Low to high. A module belongs to the layer of the longest prefix naming it.
LAYERS: list[tuple[str, set[str]]] = [
    # Money, fees, ledger rules, states, routing, outcomes: pure, imports only itself.
    ("domain", {"paymux.domain"}),
    # Process-wide plumbing with no knowledge of payments: configuration, log set-up and
    # per-request context, metrics, tracing, envelope encryption of stored secrets, and the
    # named hook points tests and the benchmark attach to (production attaches nothing), and
    # the collector tuning a served process applies after startup.
    (
        "foundation",
        {
            "paymux.__init__",
            "paymux.settings",
            "paymux.request_context",
            "paymux.logs",
            "paymux.metrics",
            "paymux.tracing",
            "paymux.sealing",
            "paymux.hooks",
            "paymux.gc_tuning",
        },
    ),
    # The Channel protocol, its errors, the entry-point registry, shared HTTP and sandbox kit.
    ("channels", {"paymux.channels"}),
    # One package per channel, plugged in by entry points only (see the test below).
    ("adapters", {"paymux_alipay", "paymux_wechat"}),
    # Persistence: SQL repositories, tables, migrations; the Redis records (idempotency
    # claims, the access gate's key cache and rate limits).
    ("store", {"paymux.store"}),
    # Webhook delivery machinery: signing, SSRF guard, sender, Redis schedule, and the relay
    # and delivery loops, which get their collaborators passed in (webhooks/runtime.py).
    ("webhooks", {"paymux.webhooks"}),
    # Use cases and background loops over the store, channels and webhooks.
    ("service", {"paymux.service"}),
    # HTTP: FastAPI routers, auth, problem+json, the dashboard.
    ("api", {"paymux.api"}),
    # Processes: the `paymux` command, the local dev stack and its private Redis.
    (
        "entry",
        {
            "paymux.__main__",
            "paymux.cli",
            "paymux.progress",
            "paymux.devstack",
            "paymux.redis_embedded",
        },
    ),
]
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}
ADAPTER_PACKAGES = ("paymux_alipay", "paymux_wechat")


def module_name(path: Path) -> str:
    for package, folder in PACKAGES.items():
        if path.is_relative_to(folder):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            return ".".join(parts)
    raise AssertionError(f"{path} is in no package")


def layer_of(module: str) -> str | None:
    matches = [
        (len(prefix), name)
        for name, prefixes in LAYERS
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1] if matches else None


SOURCES = sorted(p for folder in PACKAGES.values() for p in folder.rglob("*.py"))
MODULES = {module_name(p): p for p in SOURCES}


def imports_of(path: Path) -> set[str]:
    """Our modules ``path`` imports (``from paymux import metrics`` is paymux.metrics)."""
    me = module_name(path)
    package = me.rsplit(".", 1)[0] if not me.endswith("__init__") else me[: -len(".__init__")]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                found.add(f"{target}.__init__" if f"{target}.__init__" in MODULES else target)
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in MODULES if layer_of(m) is None]
    assert not unplaced, f"place these modules in a layer (tests/unit/test_layers.py): {unplaced}"


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_no_import_from_a_layer_above(path: Path) -> None:
    mine = layer_of(module_name(path))
    assert mine is not None
    upward = [
        f"{target} ({theirs})"
        for target in sorted(imports_of(path))
        if (theirs := layer_of(target)) is not None and RANK[theirs] > RANK[mine]
    ]
    assert not upward, f"{module_name(path)} ({mine}) imports from above: {upward}"


@pytest.mark.parametrize("path", [p for p in SOURCES if module_name(p).startswith("paymux.")])
def test_paymux_never_imports_an_adapter(path: Path) -> None:
    """Adapters are plugged in through entry points; nothing in paymux names one."""
    named = [t for t in imports_of(path) if t.startswith(ADAPTER_PACKAGES)]
    assert not named, f"{module_name(path)} imports {named}"


def import_cycles() -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop (Tarjan)."""
    graph = {
        m: sorted(t for t in imports_of(p) if t in MODULES and t != m) for m, p in MODULES.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles() -> None:
    """Imports under TYPE_CHECKING count too: a type a module needs of its importer is a
    Protocol it declares itself (see adapters/*/statement_download.py)."""
    assert import_cycles() == []


def test_the_checker_sees_imports() -> None:
    # Guards the test itself: `from paymux import x` names the module x, not the package.
    assert {"paymux.metrics", "paymux.request_context"} <= imports_of(MODULES["paymux.api.auth"])
    assert layer_of("paymux.domain.money") == "domain"
    assert layer_of("paymux.api.dashboard.pages") == "api"
