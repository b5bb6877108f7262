"""paymux_client is a separate distribution: only httpx, pydantic, tenacity and the Standard
Webhooks verifier, never the gateway; typed (py.typed) and versioned."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"

PROGRAM = """
import sys
import paymux_client
from paymux_client import AsyncPaymux, Paymux
Paymux(api_key="sk", base_url="http://127.0.0.1:1")
ours = ("paymux.", "paymux_alipay", "paymux_wechat")
gateway = sorted(m for m in sys.modules if m == "paymux" or m.startswith(ours))
assert not gateway, gateway
heavy = sorted(m for m in ("fastapi", "sqlalchemy", "redis", "cryptography") if m in sys.modules)
assert not heavy, heavy
print(paymux_client.__version__)
"""


def test_dependencies_are_only_the_four() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    names = sorted(d.split(">")[0].split("<")[0].split("=")[0] for d in project["dependencies"])
    assert names == ["httpx", "pydantic", "standardwebhooks", "tenacity"]
    assert project["name"] == "paymux-client" and project["version"]
    assert (CLIENT / "src" / "paymux_client" / "py.typed").is_file()
    assert len((CLIENT / "README.md").read_text().splitlines()) <= 12


def test_importing_the_client_loads_nothing_of_the_gateway() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    version = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]["version"]
    assert out.stdout.strip() == version
