"""The chaos suite's checker on tiny crafted inputs: it passes a sound run and names each
kind of violation, so a chaos run that prints "ok" means something."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks.webhooks import Webhook

from tests.chaos import checks
from tests.chaos.checks import ChannelOrder, Delivery, KeyRecord, TransferRow
from tests.chaos.receiver import build_app

SECRET = "whsec_" + base64.b64encode(b"chaos-checker-test-secret-32byte").decode()


def _t(tid: str, status: str, key: str = "k1", amount: int = 1000) -> TransferRow:
    return TransferRow(tid, "mer_1", key, status, amount, 60, "alipay", f"PMX{tid}")


def _headers(event_id: str, body: str, secret: str, ts: int) -> dict[str, str]:
    sig = Webhook(secret).sign(event_id, datetime.fromtimestamp(ts, UTC), body)
    return {"webhook-id": event_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


def _signed(event_id: str, etype: str, obj: str, secret: str = SECRET) -> Delivery:
    """A delivery signed with ``secret`` as the receiver records it (verified with mer_1's)."""
    body = json.dumps({"id": event_id, "type": etype, "data": {"object": {"id": obj}}})
    headers = _headers(event_id, body, secret, int(time.time()))
    return Delivery("mer_1", headers, body, checks.verify_on_receipt(SECRET, body, headers))


def test_keys() -> None:
    ok = KeyRecord("mer_1", "k1", [(409, None), (201, "tr_1"), (200, "tr_1")])
    refused = KeyRecord("mer_1", "k2", [(402, None)])
    rows = [_t("tr_1", "succeeded")]
    assert checks.check_keys([ok, refused], rows).ok
    assert not checks.check_keys([KeyRecord("mer_1", "k1", [(503, None)])], rows).ok  # unanswered
    two = KeyRecord("mer_1", "k1", [(201, "tr_1"), (200, "tr_9")])
    assert not checks.check_keys([two], rows).ok  # two different transfers for one key
    assert not checks.check_keys([ok], [*rows, _t("tr_2", "failed", key="k1")]).ok
    assert not checks.check_keys([KeyRecord("mer_1", "k1", [(402, None)])], rows).ok


def test_channel_orders() -> None:
    rows = [_t("tr_1", "succeeded"), _t("tr_2", "failed")]
    good = [ChannelOrder("alipay", "PMXtr_1", 1000, "SUCCESS")]
    assert checks.check_channel_orders(good, rows).ok  # a refused transfer may have no order
    assert not checks.check_channel_orders(good * 2, rows).ok  # two orders, one reference
    assert not checks.check_channel_orders([], rows).ok  # succeeded, channel never paid
    wrong = [ChannelOrder("alipay", "PMXtr_1", 1000, "FAIL")]
    assert not checks.check_channel_orders(wrong, rows).ok
    stranger = [*good, ChannelOrder("alipay", "PMXnobody", 5, "SUCCESS")]
    assert not checks.check_channel_orders(stranger, rows).ok


def test_settled_and_balances() -> None:
    rows = [_t("tr_1", "succeeded"), _t("tr_2", "returned"), _t("tr_3", "failed")]
    assert checks.check_settled(rows).ok
    assert not checks.check_settled([*rows, _t("tr_4", "processing")]).ok
    # 10_000 topped up; tr_1 costs 1060, tr_2 keeps only its fee 60 after the bounce.
    assert checks.check_balances(rows, {"mer_1": 10_000}, {"mer_1": 8_880}).ok
    assert not checks.check_balances(rows, {"mer_1": 10_000}, {"mer_1": 8_881}).ok
    in_flight = [*rows, _t("tr_4", "pending")]  # held: 1060 out of available
    assert checks.check_balances(in_flight, {"mer_1": 10_000}, {"mer_1": 7_820}).ok


def test_webhooks() -> None:
    rows = [_t("tr_1", "succeeded")]
    events = [("evt_1", "transfer.processing", "tr_1"), ("evt_2", "transfer.succeeded", "tr_1")]
    sent = [_signed("evt_1", "transfer.processing", "tr_1"), _signed("evt_2", "t", "tr_1")]
    assert checks.check_webhooks(events, rows, sent).ok
    assert checks.check_webhooks(events, rows, [*sent, sent[0]]).ok  # a retry is fine
    assert not checks.check_webhooks(events, rows, sent[:1]).ok  # one never delivered
    forged = _signed("evt_2", "t", "tr_1", "whsec_" + base64.b64encode(b"x" * 32).decode())
    assert not checks.check_webhooks(events, rows, [sent[0], forged]).ok
    twice = [*events, ("evt_3", "transfer.succeeded", "tr_1")]
    assert not checks.check_webhooks(twice, rows, sent).ok  # a change announced twice
    missing = [("evt_1", "transfer.processing", "tr_1")]
    assert not checks.check_webhooks(missing, rows, sent[:1]).ok  # succeeded unannounced


def test_webhook_signatures_are_judged_on_receipt() -> None:
    """Standard Webhooks rejects a timestamp more than 5 minutes old, so a delivery is judged
    as it arrives: one verified then still counts when a long run is checked much later, and
    one signed too long ago (a replay) is refused on arrival."""
    body = json.dumps({"id": "evt_1", "type": "transfer.succeeded", "data": {"object": {}}})
    late = _headers("evt_1", body, SECRET, int(time.time()) - 600)
    assert checks.verify_on_receipt(SECRET, body, late) is not None  # too old on arrival
    assert checks.verify_on_receipt(None, body, late) == "no secret for this merchant"
    # Verified when it came 10 minutes ago: the end of the run does not judge it again.
    earlier = Delivery("mer_1", late, body, None)
    rows = [_t("tr_1", "succeeded")]
    events = [("evt_1", "transfer.succeeded", "tr_1")]
    assert checks.check_webhooks(events, rows, [earlier]).ok
    refused = Delivery("mer_1", late, body, "Message timestamp too old")
    assert not checks.check_webhooks(events, rows, [refused]).ok


async def test_the_receiver_verifies_each_delivery_as_it_arrives(tmp_path: Path) -> None:
    out = tmp_path / "deliveries.jsonl"
    body = json.dumps({"id": "evt_1", "type": "transfer.succeeded", "data": {"object": {}}})
    now = int(time.time())
    forged = "whsec_" + base64.b64encode(b"x" * 32).decode()
    async with TestClient(TestServer(build_app(out))) as client:
        assert (await client.post("/secrets/mer_1", data=SECRET)).status == 204
        for headers in (
            _headers("evt_1", body, SECRET, now),
            _headers("evt_1", body, forged, now),
            _headers("evt_1", body, SECRET, now - 600),
        ):
            assert (await client.post("/hook/mer_1", data=body, headers=headers)).status == 204
        await client.post("/hook/mer_2", data=body, headers=_headers("evt_1", body, SECRET, now))
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [d["error"] is None for d in got] == [True, False, False, False]
    assert got[0]["body"] == body and got[0]["headers"]["webhook-id"] == "evt_1"
    assert got[3]["error"] == "no secret for this merchant"


def test_client_errors_and_table() -> None:
    assert checks.check_client_errors({201: 5, 409: 3, 503: 2}, []).ok
    assert not checks.check_client_errors({201: 5, 500: 1}, []).ok
    table = checks.render([checks.check_settled([_t("tr_1", "processing")])])
    assert "FAIL" in table and "tr_1 still processing" in table
