"""A gateway killed after writing `pending` and before calling the channel, then restarted."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.e2e.conftest import make_stack, new_merchant
from tests.e2e.test_e2e_transfers import body, payee, sandbox_orders


def test_pending_transfer_completes_after_crash(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> None:
    stack = make_stack(tmp_path_factory.mktemp("crash"), redis_url)
    try:
        stack.start_sandboxes()
        stack.start_gateway()
        stack.wait_gateway()
        api = new_merchant(stack)
        stack.stop("gateway")
        # This gateway exits (like a kill -9) right after the pending row commits.
        proc = stack.start_gateway(PAYMUX_FAULT_INJECTION="crash_after_pending")
        stack.wait_gateway()
        with pytest.raises(httpx.HTTPError):
            api.transfer(body(payee("wechat_openid", "o_crash_victim")), key=uuid.uuid4().hex)
        assert proc.wait(10) == 17
        stack.start_gateway()
        stack.wait_gateway()
        deadline = time.monotonic() + 20
        transfers: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            transfers = api.get("/v1/transfers").json()["data"]
            if transfers and transfers[0]["status"] == "succeeded":
                break
            time.sleep(0.2)
        assert len(transfers) == 1, transfers
        t = transfers[0]
        assert t["status"] == "succeeded", t
        assert len(sandbox_orders(stack, "wechat", str(t["channel_reference"]))) == 1
        balance = api.get("/v1/balance").json()
        assert balance["held"] == 0
    finally:
        stack.stop_all()
