"""The sandboxes stay out of production: `paymux serve` never imports them, and the image
leaves out exactly the modules that only the sandboxes (and `paymux dev`) use."""

from __future__ import annotations

import glob
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

from paymux.devstack import sandbox_settings
from tests.unit.test_layers import MODULES, ROOT, imports_of

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
ENTRY_POINTS = PYPROJECT["project"]["entry-points"]


def left_out_of_image() -> set[str]:
    """Modules the Dockerfile removes before installing (its `RUN rm ...` line)."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    commands = [line for line in text.splitlines() if re.match(r"RUN rm\b", line)]
    assert len(commands) == 1, "one RUN rm line lists what the image leaves out"
    removed = {
        Path(found).resolve()
        for pattern in shlex.split(commands[0])[2:]
        for found in glob.glob(str(ROOT / pattern))
    }
    return {name for name, path in MODULES.items() if path.resolve() in removed}


def entry_modules(*groups: str) -> set[str]:
    return {ENTRY_POINTS[g][name].split(":")[0] for g in groups for name in ENTRY_POINTS[g]}


def reachable(roots: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen or module not in MODULES:
            continue
        seen.add(module)
        todo.extend(imports_of(MODULES[module]))
    return seen


SANDBOX_ROOTS = entry_modules("paymux.sandboxes", "paymux.sandbox_settings")


def test_the_image_leaves_out_exactly_what_only_the_sandboxes_use() -> None:
    removed = left_out_of_image()
    shipped = {m for m in MODULES if m not in removed and not m.endswith("__init__")}
    # What production imports, from every module it ships and the channel adapters.
    production = reachable(shipped | entry_modules("paymux.channels"))
    assert not production & removed, (
        f"shipped code imports left-out modules: {production & removed}"
    )
    sandbox_only = reachable(SANDBOX_ROOTS) - production
    assert sandbox_only == removed, "the Dockerfile's RUN rm line is out of date"
    assert removed >= SANDBOX_ROOTS


SERVE = """
import asyncio, json, sys
import paymux.cli  # `paymux serve` starts here, then uvicorn imports the app factory
from paymux.api.app import create_app
from paymux.settings import Settings

settings = Settings(**json.loads(sys.argv[1]))
app = create_app(settings)

async def serve_once() -> None:
    async with app.router.lifespan_context(app):
        assert sorted(app.state.gateway.channels) == ["alipay", "wechat"]

asyncio.run(serve_once())
print(json.dumps(sorted(sys.modules)))
"""


def test_paymux_serve_never_imports_a_sandbox(tmp_path: Path, redis_url: str) -> None:
    # Both channels configured (against sandbox keys made here, in the test's process).
    channels = {
        name: sandbox_settings(name, tmp_path / "sandbox" / name, "http://127.0.0.1:9")
        for name in ("alipay", "wechat")
    }
    settings = {
        "data_dir": str(tmp_path),
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "redis_url": redis_url,
        "channels_file": str(tmp_path / "none.toml"),
        "channels": channels,
        "webhook_workers_enabled": False,
    }
    out = subprocess.run(
        [sys.executable, "-c", SERVE, json.dumps(settings, default=str)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=tmp_path,
    )
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert {"paymux_alipay.channel", "paymux_wechat.channel"} <= loaded
    assert not loaded & left_out_of_image()
    assert not {m for m in loaded if "sandbox" in m or m == "paymux.devstack"}
