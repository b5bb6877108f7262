"""Fuzz every operation of the OpenAPI document against the real stack (issue 11).

Run by CI (`.ci/run`) on its own, not by `make test` (the file name does not match
``test_*.py``): ``pytest tests/fuzz/fuzz_openapi.py``. Schemathesis generates valid and
invalid requests for every operation, once with a funded merchant's key and once with the
admin key, with a fixed seed and a bounded number of examples, and fails on any 5xx, any
status, content type, header or body that the document does not describe, and any 405
whose ``Allow`` header does not name exactly the documented methods.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from paymux.devstack import Stack
from tests.e2e.conftest import admin_client, make_stack, new_merchant

SEED = "20261126"
MAX_EXAMPLES = os.environ.get("PAYMUX_FUZZ_MAX_EXAMPLES", "25")
MAX_SECONDS = os.environ.get("PAYMUX_FUZZ_MAX_SECONDS", "90")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "unsupported_method",
        "allow_header_conformance",
        "allow_header_complete",  # ours: tests/fuzz/schemathesis_hooks.py
    ]
)
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    s = make_stack(tmp_path_factory.mktemp("fuzz"), redis_url)
    try:
        s.start_sandboxes()
        s.start_gateway()
        s.wait_gateway()
        yield s
    finally:
        s.stop_all()


def run_schemathesis(stack: Stack, key: str, report: Path) -> subprocess.CompletedProcess[str]:
    argv = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--no-color",
        "run",
        f"{stack.gateway_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        SEED,
        "--max-examples",
        MAX_EXAMPLES,
        "--max-time",
        MAX_SECONDS,
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "30",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "PYTHONPATH": str(HERE)}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)


@pytest.mark.parametrize("who", ["merchant", "admin"])
def test_every_operation_survives_the_fuzzer(stack: Stack, who: str, tmp_path: Path) -> None:
    if who == "admin":
        key = stack.admin_key
    else:
        merchant = new_merchant(stack, funds=10**12)
        key = merchant.client.headers["Authorization"].removeprefix("Bearer ")
    result = run_schemathesis(stack, key, tmp_path / f"{who}.xml")
    print(result.stdout[-20000:])
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    with admin_client(stack) as admin:
        assert admin.get("/readyz").status_code == 200  # and the gateway is still standing
