"""The chaos suite's checker on tiny crafted inputs: it passes a sound run and names each
kind of violation, so a chaos run that prints "ok" means something."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from tests.chaos import checks
from tests.chaos.checks import ChannelOrder, Delivery, KeyRecord, TransferRow

SECRET = "whsec_" + base64.b64encode(b"chaos-checker-test-secret-32byte").decode()


def _t(tid: str, status: str, key: str = "k1", amount: int = 1000) -> TransferRow:
    return TransferRow(tid, "mer_1", key, status, amount, 60, "alipay", f"PMX{tid}")


def _signed(event_id: str, etype: str, obj: str, secret: str = SECRET) -> Delivery:
    body = json.dumps({"id": event_id, "type": etype, "data": {"object": {"id": obj}}})
    ts = int(time.time())
    sig = Webhook(secret).sign(event_id, datetime.fromtimestamp(ts, UTC), body)
    headers = {"webhook-id": event_id, "webhook-timestamp": str(ts), "webhook-signature": sig}
    return Delivery("mer_1", headers, body)


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
    secrets = {"mer_1": SECRET}
    assert checks.check_webhooks(events, rows, sent, secrets).ok
    assert checks.check_webhooks(events, rows, [*sent, sent[0]], secrets).ok  # a retry is fine
    assert not checks.check_webhooks(events, rows, sent[:1], secrets).ok  # one never delivered
    forged = _signed("evt_2", "t", "tr_1", "whsec_" + base64.b64encode(b"x" * 32).decode())
    assert not checks.check_webhooks(events, rows, [sent[0], forged], secrets).ok
    twice = [*events, ("evt_3", "transfer.succeeded", "tr_1")]
    assert not checks.check_webhooks(twice, rows, sent, secrets).ok  # a change announced twice
    missing = [("evt_1", "transfer.processing", "tr_1")]
    assert not checks.check_webhooks(missing, rows, sent[:1], secrets).ok  # succeeded unannounced


def test_client_errors_and_table() -> None:
    assert checks.check_client_errors({201: 5, 409: 3, 503: 2}, []).ok
    assert not checks.check_client_errors({201: 5, 500: 1}, []).ok
    table = checks.render([checks.check_settled([_t("tr_1", "processing")])])
    assert "FAIL" in table and "tr_1 still processing" in table
