"""Outbound merchant webhooks end to end: real gateway processes, a merchant receiver here.

The receiver verifies every delivery with the public `standardwebhooks` library, never with
Paymux's own signing code. The outage and crash tests run on a stack of their own (short
retry schedule, a gateway we may SIGKILL) with a private database, so the shared stack and
its database are never disturbed.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from paymux.devstack import Stack, free_port
from tests.e2e.conftest import Api, admin_client, make_stack, new_merchant

pytestmark = pytest.mark.timeout(120)


@dataclass
class Receipt:
    webhook_id: str
    body: dict[str, Any]
    verified: list[str]  # which of the receiver's secrets verified it
    at: float


@dataclass
class Receiver:
    """A merchant's webhook endpoint on 127.0.0.1, in a thread of the test process."""

    port: int = 0
    status: int = 200
    hold_seconds: float = 0.0
    secrets: list[str] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    acks: list[Receipt] = field(default_factory=list)  # verified, answered 2xx
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/paymux"

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.lock:
            secrets, status, hold = list(self.secrets), self.status, self.hold_seconds
        verified = []
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified.append(secret)
            except WebhookVerificationError:
                pass
        receipt = Receipt(headers.get("webhook-id", ""), json.loads(body), verified, time.time())
        with self.lock:
            self.receipts.append(receipt)
        if hold:
            time.sleep(hold)
        try:
            handler.send_response(status)
            handler.send_header("content-length", "2")
            handler.end_headers()
            handler.wfile.write(b"ok")
        except OSError:
            return  # the gateway went away mid-request
        if 200 <= status < 300 and verified:
            with self.lock:
                self.acks.append(receipt)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> set[str]:
        with self.lock:
            return {r.webhook_id for r in self.receipts}

    def acked(self, since: float = 0.0) -> set[str]:
        """Ids answered 2xx to a request that arrived at or after `since`."""
        with self.lock:
            return {r.webhook_id for r in self.acks if r.at >= since}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def create_endpoint(api: Api, url: str, **extra: Any) -> dict[str, Any]:
    resp = api.client.post("/v1/webhook_endpoints", json={"url": url, **extra})
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    assert created["secret"].startswith("whsec_")
    return created


def event_ids(api: Api, prefix: str = "") -> set[str]:
    resp = api.get("/v1/events", params={"limit": 100})
    assert resp.status_code == 200, resp.text
    return {e["id"] for e in resp.json()["data"] if e["type"].startswith(prefix)}


def transfer(api: Api, account: str, kind: str = "alipay_account") -> dict[str, Any]:
    resp = api.transfer(
        {"amount": 1500, "currency": "CNY", "payee": {"type": kind, "account": account}}
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_transfer_events_arrive_signed_rotate_list_and_redeliver(
    stack: Stack, merchant: Api, receiver: Receiver
) -> None:
    endpoint = create_endpoint(merchant, receiver.url, description="orders service")
    secret = endpoint["secret"]
    receiver.secrets = [secret]
    assert endpoint["event_types"] == ["*"] and endpoint["enabled"] is True

    done = [
        transfer(merchant, "alice@example.com"),
        transfer(merchant, "o4GgauInH_RCEdvrrNGrntXDuXXX", "wechat_openid"),
        transfer(merchant, "fail-payee@example.com"),
    ]
    assert [t["status"] for t in done] == ["succeeded", "succeeded", "failed"]
    wanted = event_ids(merchant, "transfer.")
    assert len(wanted) >= 3
    wait_for(lambda: wanted <= receiver.acked(), 20, "every transfer event")
    by_id = {r.webhook_id: r for r in receiver.receipts}
    for event_id in wanted:
        got = by_id[event_id]
        assert got.verified == [secret]
        assert got.body["id"] == event_id  # webhook-id is the event id
        api_view = merchant.get(f"/v1/events/{event_id}").json()
        assert got.body["type"] == api_view["type"]
        assert got.body["data"] == api_view["data"]
    assert {by_id[e].body["data"]["object"]["id"] for e in wanted} == {t["id"] for t in done}

    # Rotation: during the overlap both secrets verify the same delivery.
    rotated = merchant.client.post(
        f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", json={"overlap_seconds": 120}
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != secret
    receiver.secrets = [secret, new_secret]
    during = transfer(merchant, "bob@example.com")
    wait_for(
        lambda: any(r.body["data"]["object"]["id"] == during["id"] for r in receiver.receipts),
        20,
        "the event sent during the overlap",
    )
    overlap = [r for r in receiver.receipts if r.body["data"]["object"]["id"] == during["id"]]
    assert all(r.verified == [secret, new_secret] for r in overlap)

    # Ending the overlap now: only the newest secret signs.
    final = merchant.client.post(
        f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", json={"overlap_seconds": 0}
    ).json()["secret"]
    receiver.secrets = [secret, new_secret, final]
    after = transfer(merchant, "carol@example.com")
    wait_for(
        lambda: any(r.body["data"]["object"]["id"] == after["id"] for r in receiver.receipts),
        20,
        "the event sent after the overlap",
    )
    late = [r for r in receiver.receipts if r.body["data"]["object"]["id"] == after["id"]]
    assert all(r.verified == [final] for r in late)

    # Attempts are listed, newest first, and paginate.
    def all_attempts() -> list[dict[str, Any]]:
        path = f"/v1/webhook_endpoints/{endpoint['id']}/attempts"
        data: list[dict[str, Any]] = merchant.get(path, params={"limit": 100}).json()["data"]
        return data

    wait_for(lambda: len(all_attempts()) == len(receiver.receipts), 10, "attempts recorded")
    first = merchant.get(f"/v1/webhook_endpoints/{endpoint['id']}/attempts", params={"limit": 2})
    assert first.status_code == 200, first.text
    page1 = first.json()
    assert page1["has_more"] is True and len(page1["data"]) == 2
    rest = merchant.get(
        f"/v1/webhook_endpoints/{endpoint['id']}/attempts",
        params={"limit": 100, "cursor": page1["next_cursor"]},
    ).json()["data"]
    attempts = page1["data"] + rest
    assert len(attempts) == len(receiver.receipts)
    assert all(a["ok"] and a["status_code"] == 200 for a in attempts)
    # Newest recorded first (concurrent attempts may record in another order than they began).
    numbers = [int(a["id"].removeprefix("wha_")) for a in attempts]
    assert numbers == sorted(numbers, reverse=True) and len(set(numbers)) == len(numbers)
    assert {a["event_id"] for a in attempts} == receiver.ids()

    # Events: filter by type, newest first; one event shows its delivery.
    failed = merchant.get("/v1/events", params={"type": "transfer.failed"}).json()["data"]
    assert [e["type"] for e in failed] == ["transfer.failed"]
    listed = merchant.get("/v1/events", params={"limit": 100}).json()["data"]
    assert [e["id"] for e in listed] == sorted((e["id"] for e in listed), reverse=True)
    one = merchant.get(f"/v1/events/{failed[0]['id']}").json()
    assert [(d["endpoint_id"], d["status"]) for d in one["deliveries"]] == [
        (endpoint["id"], "succeeded")
    ]

    # Redelivery: a fresh delivery, same webhook-id.
    before = sum(1 for r in receiver.receipts if r.webhook_id == failed[0]["id"])
    redo = merchant.client.post(
        f"/v1/events/{failed[0]['id']}/redeliver", json={"endpoint_id": endpoint["id"]}
    )
    assert redo.status_code == 202, redo.text
    assert redo.json()["deliveries"][0]["endpoint_id"] == endpoint["id"]
    wait_for(
        lambda: sum(1 for r in receiver.receipts if r.webhook_id == failed[0]["id"]) > before,
        20,
        "the redelivered event",
    )
    again = [r for r in receiver.receipts if r.webhook_id == failed[0]["id"]][-1]
    assert again.body["id"] == failed[0]["id"] and again.verified == [final]

    # The secrets appear in the create/rotate responses only: not in reads, nor in the log.
    reads = [
        merchant.get(f"/v1/webhook_endpoints/{endpoint['id']}").text,
        merchant.get("/v1/webhook_endpoints").text,
        merchant.get(f"/v1/webhook_endpoints/{endpoint['id']}/attempts").text,
        merchant.get("/v1/events", params={"limit": 100}).text,
        merchant.get(f"/v1/events/{failed[0]['id']}").text,
    ]
    log_text = (stack.data_dir / "logs" / "gateway.log").read_text(errors="replace")
    for s in (secret, new_secret, final):
        assert all(s not in r for r in reads)
        assert s.removeprefix("whsec_") not in log_text


def test_endpoint_crud_validation_and_isolation(stack: Stack, merchant: Api) -> None:
    base = "/v1/webhook_endpoints"
    bad_type = merchant.client.post(base, json={"url": "http://127.0.0.1:9/", "event_types": ["x"]})
    assert bad_type.status_code == 422 and bad_type.json()["code"] == "validation_error"
    unknown_field = merchant.client.post(base, json={"url": "http://127.0.0.1:9/", "secret": "x"})
    assert unknown_field.status_code == 422
    not_a_url = merchant.client.post(base, json={"url": "ftp://127.0.0.1/"})
    assert not_a_url.status_code == 422 and not_a_url.json()["code"] == "unsafe_url"

    created = create_endpoint(
        merchant, "http://127.0.0.1:9/a", event_types=["transfer.failed", "transfer.failed"]
    )
    assert created["event_types"] == ["transfer.failed"]
    ep = created["id"]
    patched = merchant.client.patch(
        f"{base}/{ep}",
        json={"url": "http://127.0.0.1:9/b", "enabled": False, "description": "paused"},
    )
    assert patched.status_code == 200, patched.text
    view = patched.json()
    assert (view["url"], view["enabled"], view["description"]) == (
        "http://127.0.0.1:9/b",
        False,
        "paused",
    )
    assert "secret" not in view
    cleared = merchant.client.patch(f"{base}/{ep}", json={"description": None}).json()
    assert cleared["description"] is None and cleared["url"] == "http://127.0.0.1:9/b"

    # Another merchant sees none of it.
    other = new_merchant(stack, funds=0, name="Other merchant")
    event = next(iter(event_ids(merchant)))
    for method, path, body in (
        ("GET", f"{base}/{ep}", None),
        ("PATCH", f"{base}/{ep}", {"enabled": True}),
        ("DELETE", f"{base}/{ep}", None),
        ("POST", f"{base}/{ep}/rotate_secret", {}),
        ("GET", f"{base}/{ep}/attempts", None),
        ("GET", f"/v1/events/{event}", None),
        ("POST", f"/v1/events/{event}/redeliver", {}),
    ):
        resp = other.client.request(method, path, json=body)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["code"] == "not_found"
    assert other.get(base).json()["data"] == []
    assert event not in event_ids(other)
    # Redelivering to another merchant's endpoint is refused too.
    mine = merchant.client.post(f"/v1/events/{event}/redeliver", json={"endpoint_id": "we_nope"})
    assert mine.status_code == 404

    with admin_client(stack) as admin:
        assert admin.get(base).status_code == 403

    # Soft delete: gone from the API, 204 once, then 404.
    assert merchant.client.delete(f"{base}/{ep}").status_code == 204
    assert merchant.get(f"{base}/{ep}").status_code == 404
    assert merchant.client.delete(f"{base}/{ep}").status_code == 404
    assert ep not in {e["id"] for e in merchant.get(base).json()["data"]}


# --- a stack of our own: outages and crashes --------------------------------------------


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("e2e-webhooks")
    s = make_stack(  # a database of its own (make_stack makes a fresh one)
        tmp,
        redis_url,
        PAYMUX_WEBHOOK_RETRY_SCHEDULE="[0,1,1,2,2,3]",
        PAYMUX_WEBHOOK_TIMEOUT_SECONDS="2",
        PAYMUX_SYNC_ENABLED="false",
    )
    try:
        s.start_gateway()  # events come from top-ups: no sandbox needed
        s.wait_gateway()
        yield s
    finally:
        s.stop_all()


def topups(stack: Stack, merchant_id: str, n: int) -> None:
    with admin_client(stack) as admin:
        for _ in range(n):
            resp = admin.post(
                f"/v1/merchants/{merchant_id}/topups",
                json={"amount": 10_000, "currency": "CNY"},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            assert resp.status_code == 201, resp.text


def test_receiver_down_then_up_loses_nothing(own_stack: Stack) -> None:
    api = new_merchant(own_stack, funds=0)
    receiver = Receiver(port=free_port())  # nothing listens there yet: connection refused
    endpoint = create_endpoint(api, receiver.url, event_types=["balance.topped_up"])
    receiver.secrets = [endpoint["secret"]]
    receiver.status = 500
    try:
        topups(own_stack, str(api.merchant_id), 3)
        wanted = event_ids(api)
        assert len(wanted) == 3
        time.sleep(1.2)  # first attempts hit a closed port
        receiver.start()  # up, but failing
        wait_for(lambda: wanted <= receiver.ids(), 10, "attempts against the failing receiver")
        assert not receiver.acked()
        with receiver.lock:
            receiver.status = 200
        wait_for(lambda: wanted <= receiver.acked(), 20, "every event after the outage")
    finally:
        receiver.stop()

    attempts = api.get(
        f"/v1/webhook_endpoints/{endpoint['id']}/attempts", params={"limit": 100}
    ).json()["data"]
    assert {a["event_id"] for a in attempts} == wanted
    assert any(a["status_code"] is None and a["error"] for a in attempts)  # not listening
    assert any(a["status_code"] == 500 for a in attempts)
    assert {a["event_id"] for a in attempts if a["ok"]} == wanted
    for event_id in wanted:
        (delivery,) = api.get(f"/v1/events/{event_id}").json()["deliveries"]
        assert delivery["status"] == "succeeded" and delivery["attempts"] >= 3


def test_gateway_killed_mid_delivery_loses_nothing(own_stack: Stack) -> None:
    api = new_merchant(own_stack, funds=0)
    receiver = Receiver(hold_seconds=3.0).start()  # answers too slowly to finish before the kill
    try:
        endpoint = create_endpoint(api, receiver.url)
        receiver.secrets = [endpoint["secret"]]
        topups(own_stack, str(api.merchant_id), 4)
        wanted = event_ids(api)
        assert len(wanted) == 4
        wait_for(lambda: wanted <= receiver.ids(), 10, "deliveries in flight")
        in_flight_at_kill = receiver.ids()
        own_stack.stop("gateway", kill=True)  # SIGKILL: no shutdown, leases left behind
        assert not receiver.acked()
        with receiver.lock:
            receiver.hold_seconds = 0.0
        restarted = time.time()
        own_stack.start_gateway()
        own_stack.wait_gateway()
        # Only answers to the new process count: a reply into a killed socket proves nothing.
        wait_for(lambda: wanted <= receiver.acked(restarted), 40, "every event after restart")
        with receiver.lock:
            receipts = list(receiver.receipts)
    finally:
        receiver.stop()
    for event_id in in_flight_at_kill:
        # Sent again after the crash, with the same webhook-id and body.
        copies = [r for r in receipts if r.webhook_id == event_id]
        assert len(copies) >= 2
        assert all(r.body == copies[0].body and r.body["id"] == event_id for r in copies)
    assert all(r.verified == [endpoint["secret"]] for r in receipts)
    for event_id in wanted:
        (delivery,) = api.get(f"/v1/events/{event_id}").json()["deliveries"]
        assert delivery["status"] == "succeeded"
