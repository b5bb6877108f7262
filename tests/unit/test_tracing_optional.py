"""Without OpenTelemetry installed, tracing is a no-op and everything still imports."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import sys

class NoOtel:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError("no opentelemetry here")
        return None

sys.meta_path.insert(0, NoOtel())
from paymux import tracing
from paymux.channels.http import ChannelHttp
assert not tracing.setup_from_environment()
with tracing.span("channel.send", channel="alipay"):
    pass
assert tracing.request_hooks() == {}
assert tracing.outgoing_headers() == {}
for transport in ("httpx", "aiohttp"):
    ChannelHttp(
        base_url="http://127.0.0.1:1",
        timeout_seconds=1.0,
        connect_timeout_seconds=1.0,
        transport=transport,
    )
print("ok")
"""


def test_tracing_is_import_safe_without_opentelemetry() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PAYMUX_OTEL_ENABLED": "true", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
