"""The dashboard in a real browser over the real stack: operators and merchants sign in,
find a transfer, read its timeline, query the channel, redeliver a webhook, download the
fee CSV; a merchant sees nothing of another merchant through any page or guessed URL."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect

from paymux.devstack import Stack
from tests.e2e.conftest import Api, admin_client, new_merchant
from tests.e2e.test_e2e_webhooks import Receiver

pytestmark = pytest.mark.timeout(240)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def pay(api: Api, account: str, amount: int = 12_345, kind: str = "alipay_account") -> str:
    payee = {"type": kind, "account": account, "name": "Zhang San"}
    resp = api.transfer({"amount": amount, "currency": "CNY", "payee": payee})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def business_day(timestamp: str) -> str:
    """The business day (Asia/Shanghai) of an API timestamp."""
    at = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return at.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()


def status_of(api: Api, transfer_id: str) -> str:
    return str(api.get(f"/v1/transfers/{transfer_id}").json()["status"])


@dataclass
class World:
    stack: Stack
    a: Api  # merchant A, with a webhook endpoint that answers 500
    b: Api  # merchant B
    a_key: str
    b_key: str
    a_paid: str  # A's succeeded transfer
    a_failed: str
    b_paid: str
    b_endpoint: str
    receiver: Receiver
    a_card: str  # A's bank card payout (Alipay), whose statement line the tests tamper with


def _merchant_with_key(stack: Stack, name: str) -> tuple[Api, str]:
    api = new_merchant(stack, name=name)
    key = api.client.headers["authorization"].removeprefix("Bearer ")
    return api, key


@pytest.fixture(scope="module")
def world(browser_stack: Stack) -> Any:
    receiver = Receiver(status=500).start()
    a, a_key = _merchant_with_key(browser_stack, "Acme Payroll")
    b, b_key = _merchant_with_key(browser_stack, "Globex Rewards")
    hook = a.client.post("/v1/webhook_endpoints", json={"url": receiver.url})
    assert hook.status_code == 201, hook.text
    b_hook = b.client.post("/v1/webhook_endpoints", json={"url": receiver.url})
    assert b_hook.status_code == 201, b_hook.text
    a_paid = pay(a, "alice@example.com")
    a_failed = pay(a, "fail-payee@example.com", amount=5_000)
    pay(a, "wx_openid_bob", amount=8_800, kind="wechat_openid")
    a_card = pay(a, "6222020200113456", amount=150_000, kind="bank_card")
    pay(a, "6222020200117007", amount=42_000, kind="bank_card")  # paid, then bounced
    pay(b, "wx_openid_fail", amount=9_900, kind="wechat_openid")
    b_paid = pay(b, "carol@example.com", amount=77_700)
    wait_for(lambda: status_of(a, a_card) == "succeeded", 30, "the card payout")
    for api, tid, want in (
        (a, a_paid, "succeeded"),
        (a, a_failed, "failed"),
        (b, b_paid, "succeeded"),
    ):
        wait_for(lambda: status_of(api, tid) == want, 30, f"{tid} {want}")
    # A's endpoint answers 500: with the short retry schedule its deliveries give up.
    # Wait for one to be marked failed, not just for attempts: the deliveries page is
    # filtered on that status, and three attempts arrive before the give-up is written.
    wait_for(lambda: len(receiver.ids()) >= 3, 30, "webhook attempts")
    wait_for(lambda: _has_failed_delivery(a), 60, "a delivery that gave up")
    try:
        yield World(
            stack=browser_stack,
            a=a,
            b=b,
            a_key=a_key,
            b_key=b_key,
            a_paid=a_paid,
            a_failed=a_failed,
            b_paid=b_paid,
            b_endpoint=b_hook.json()["id"],
            receiver=receiver,
            a_card=a_card,
        )
    finally:
        receiver.stop()


def _has_failed_delivery(api: Api) -> bool:
    events = api.get("/v1/events?limit=100").json()["data"]
    for event in events:
        detail = api.get(f"/v1/events/{event['id']}").json()
        if any(d["status"] == "failed" for d in detail["deliveries"]):
            return True
    return False


def sign_in(page: Page, stack: Stack, key: str) -> None:
    page.goto(f"{stack.gateway_url}/dashboard")
    expect(page).to_have_url(re.compile(r"/dashboard/login$"))
    page.fill("#key", key)
    page.click("#sign-in")
    expect(page).to_have_url(re.compile(r"/dashboard/overview$"))


def shot(page: Page, screenshots: Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


def test_operator_finds_a_transfer_reads_its_timeline_queries_and_redelivers(
    page: Page, world: World, screenshots: Path
) -> None:
    stack = world.stack
    sign_in(page, stack, stack.admin_key)

    # The session is an opaque HttpOnly, SameSite=Strict cookie; the key is nowhere.
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["paymux_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert stack.admin_key not in session["value"]
    assert page.evaluate("document.cookie") == ""  # nothing readable by a script
    stored = page.evaluate("JSON.stringify([localStorage, sessionStorage])")
    assert stack.admin_key not in stored

    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator(".card").first).to_contain_text("Today's volume")
    expect(page.locator("img.chart")).to_have_count(4)
    expect(page.locator("body")).to_contain_text("30-day margin")
    shot(page, screenshots, "operator-overview")

    # Find A's transfer by its id and open it.
    page.click("text=Transfers")
    page.fill("#q", world.a_paid)
    page.click("#search")
    rows = page.locator("#transfers tbody tr")
    expect(rows).to_have_count(1)
    rows.first.locator(f"a:text('{world.a_paid}')").click()
    expect(page.locator("#transfer-id")).to_have_text(world.a_paid)
    expect(page.locator("#transfer-status")).to_have_text("succeeded")

    timeline = page.locator("#timeline")
    expect(timeline.locator(".item-created")).to_have_count(1)
    expect(timeline.locator(".item-call").first).to_contain_text("alipay send → succeeded")
    expect(timeline.locator(".item-status")).to_contain_text(["Status → succeeded"])
    expect(timeline.locator(".item-ledger")).to_contain_text(
        ["Ledger entry: hold", "Ledger entry: settle"]
    )
    expect(timeline.locator(".item-ledger").nth(1)).to_contain_text("fee_revenue:CNY")
    hook = timeline.locator(".item-webhook").first
    expect(hook).to_contain_text("Webhook transfer.succeeded")
    expect(hook.locator("table.attempts tbody tr").first).to_contain_text("500")
    expect(page.locator("#channel-cost")).to_be_visible()
    shot(page, screenshots, "operator-transfer-timeline")

    # "Query the channel now" asks the channel and records the call on the timeline.
    page.click("#query-now")
    expect(page.locator(".flash")).to_contain_text("The channel answered succeeded")
    expect(timeline.locator(".item-call")).to_contain_text(
        ["alipay send → succeeded", "alipay query → succeeded"]
    )

    # Redeliver the event from the timeline: the receiver gets the same webhook-id again.
    before = len(world.receiver.receipts)
    hook.locator("button.redeliver").click()
    expect(page.locator(".flash")).to_contain_text("queued for 1 endpoint")
    wait_for(lambda: len(world.receiver.receipts) > before, 15, "the redelivery")

    # Webhook deliveries: the failing endpoint is listed; redeliver one failed delivery.
    page.click("text=Webhook deliveries")
    expect(page.locator("#failing-endpoints")).to_contain_text(world.receiver.url)
    page.select_option("#delivery-status", "failed")
    page.click("button:text('Filter')")
    failed_rows = page.locator("#deliveries tbody tr")
    expect(failed_rows.first).to_contain_text("failed")
    shot(page, screenshots, "operator-webhook-deliveries")
    before = len(world.receiver.receipts)
    failed_rows.first.locator("button.redeliver").click()
    expect(page.locator(".flash")).to_contain_text("queued again")
    expect(page).to_have_url(re.compile(r"status=failed"))
    wait_for(lambda: len(world.receiver.receipts) > before, 15, "the redelivery")


def test_operator_merchants_top_up_and_fee_csv(page: Page, world: World, screenshots: Path) -> None:
    stack = world.stack
    sign_in(page, stack, stack.admin_key)
    page.click("text=Merchants")
    expect(page.locator("#merchants")).to_contain_text("Acme Payroll")
    expect(page.locator("#merchants")).to_contain_text("Globex Rewards")
    shot(page, screenshots, "operator-merchants")

    page.click("#merchants a:text('Acme Payroll')")
    available_before = world.a.get("/v1/balance").json()["available"]
    form = page.locator("#topup")
    posted = {
        name: form.locator(f"input[name={name}]").get_attribute("value") or ""
        for name in ("csrf_token", "idempotency_key")
    }
    page.fill("#topup input[name=amount]", "250.50")
    page.fill("#topup input[name=description]", "December prefunding")
    page.click("#topup button")
    expect(page.locator(".flash")).to_contain_text("Top-up of 250.50 CNY recorded")
    assert world.a.get("/v1/balance").json()["available"] == available_before + 25_050
    # The same form sent twice (a double click) replays instead of paying twice.
    again = page.request.post(
        page.url + "/topups",
        form={**posted, "amount": "250.50", "description": "December prefunding"},
    )
    assert again.ok and "was already recorded" in again.text()
    assert world.a.get("/v1/balance").json()["available"] == available_before + 25_050

    # A price rule for this merchant, from now on: the API quotes with it at once.
    rule = page.locator("#fee-rule")
    rule.locator("select[name=channel]").select_option("alipay")
    rule.locator("select[name=payee_type]").select_option("bank_card")
    rule.locator("input[name=bps]").fill("10")
    rule.locator("input[name=fixed]").fill("2.00")
    rule.locator("button").click()
    expect(page.locator(".flash")).to_contain_text("for alipay bank_card is in force")
    quote = world.a.client.post(
        "/v1/transfers/quote",
        json={
            "amount": 100_000,
            "currency": "CNY",
            "payee": {"type": "bank_card", "account": "6222020200113456", "name": "Zhang San"},
            "channel": "alipay",
        },
    )
    assert quote.status_code == 200, quote.text
    assert quote.json()["fee"] == 100 + 200  # 10 bps of 1,000.00 plus 2.00

    # Fee report and its CSV: the CSV's totals are the API's (the ledger's) to the fen.
    page.click("text=Fee report")
    expect(page.locator("#fee-report")).to_contain_text("Channel cost")
    shot(page, screenshots, "operator-fee-report")
    with page.expect_download() as info:
        page.click("#download-csv")
    download = info.value
    assert download.suggested_filename.startswith("paymux-fees-")
    text = Path(download.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    total = next(r for r in rows if r["line"] == "total" and r["currency"] == "CNY")
    days = [r["day"] for r in rows if r["line"] == "group"]
    with admin_client(stack) as admin:
        api = admin.get("/v1/reports/fees", params={"from": min(days), "to": max(days)}).json()
    cny = next(t for t in api["totals"] if t["currency"] == "CNY")
    assert int(total["fees"]) == cny["fees"] > 0
    assert int(total["channel_cost"]) == cny["channel_cost"]
    assert int(total["transfer_count"]) == cny["transfer_count"] >= 3

    # Signing out ends the session on the server: the old cookie opens nothing.
    old = {c["name"]: c["value"] for c in page.context.cookies()}["paymux_session"]
    page.click("#sign-out")
    expect(page).to_have_url(re.compile(r"/dashboard/login$"))
    replay = httpx.get(
        f"{stack.gateway_url}/dashboard/overview",
        cookies={"paymux_session": old},
        follow_redirects=False,
    )
    assert replay.status_code == 303
    assert replay.headers["location"] == "/dashboard/login"


def test_merchant_sees_own_data_manages_webhooks_and_nothing_else(
    page: Page, world: World, screenshots: Path
) -> None:
    stack = world.stack
    sign_in(page, stack, world.a_key)
    expect(page.locator("body")).not_to_contain_text("margin")
    expect(page.locator("body")).not_to_contain_text("Merchants")
    shot(page, screenshots, "merchant-overview")

    page.click("text=Transfers")
    table = page.locator("#transfers")
    expect(table).to_contain_text(world.a_paid)
    expect(table).not_to_contain_text(world.b_paid)
    expect(table).not_to_contain_text("Margin")
    page.click(f"a:text('{world.a_paid}')")
    expect(page.locator("#timeline .item-call").first).to_contain_text("send → succeeded")
    expect(page.locator("#query-now")).to_have_count(0)
    expect(page.locator("#channel-cost")).to_have_count(0)
    body = page.locator("body")
    expect(body).not_to_contain_text("fee_revenue")  # house accounts are operators' only
    expect(body).not_to_contain_text("channel_cost")
    expect(page.locator("#timeline .item-ledger").first).to_contain_text("merchant_available")
    shot(page, screenshots, "merchant-transfer-timeline")

    page.click("text=Balance")
    expect(page.locator("#balance-transactions")).to_contain_text(world.a_paid)

    # Webhooks: create an endpoint (secret shown once), rotate it, see attempts, redeliver.
    page.click("text=Webhooks")
    page.fill("#new-endpoint input[name=url]", world.receiver.url + "/second")
    page.click("#new-endpoint button")
    first_secret = page.locator("#secret-once").inner_text()
    assert first_secret.startswith("whsec_")
    page.reload()
    expect(page.locator("#secret-once")).to_have_count(0)  # shown once only
    page.click("#rotate-secret")
    second = page.locator("#secret-once").inner_text()
    assert second.startswith("whsec_") and second != first_secret
    page.click("text=Webhooks")
    page.locator("#endpoints tbody tr").last.locator("a").click()
    attempts = page.locator("#attempts tbody tr")
    expect(attempts.first).to_contain_text("500")
    shot(page, screenshots, "merchant-webhook-attempts")
    before = len(world.receiver.receipts)
    attempts.first.locator("button.redeliver").click()
    expect(page.locator(".flash")).to_contain_text("queued again")
    wait_for(lambda: len(world.receiver.receipts) > before, 15, "the redelivery")

    # The fee report is the merchant's own, without cost or margin, in the page and the CSV.
    page.click("text=Fee report")
    expect(page.locator("#fee-report")).not_to_contain_text("Channel cost")
    with page.expect_download() as info:
        page.click("#download-csv")
    header = Path(info.value.path()).read_text().splitlines()[0]
    assert "channel_cost" not in header and "margin" not in header

    # URL guessing: B's transfer, endpoint, merchant page, and every operator page answer
    # as if nothing were there; query parameters naming B are ignored.
    base = stack.gateway_url + "/dashboard"
    for path in (
        f"/transfers/{world.b_paid}",
        f"/webhooks/{world.b_endpoint}",
        f"/merchants/{world.b.merchant_id}",
        "/merchants",
        "/webhooks/deliveries",
    ):
        resp = page.goto(base + path)
        assert resp is not None and resp.status == 404, path
        for secret in ("Globex Rewards", str(world.b.merchant_id), "777.00"):
            expect(page.locator("body")).not_to_contain_text(secret)
    for path in (
        f"/transfers?merchant_id={world.b.merchant_id}",
        f"/transfers?q={world.b_paid}",
        f"/reports/fees?merchant_id={world.b.merchant_id}&group_by=day",
    ):
        resp = page.goto(base + path)
        assert resp is not None and resp.status == 200, path
        expect(page.locator("body")).not_to_contain_text(world.b_paid)
    page.goto(base + f"/transfers?merchant_id={world.b.merchant_id}")
    expect(page.locator("#transfers")).to_contain_text(world.a_paid)  # still only A's own
    csv_rows = list(
        csv.DictReader(
            io.StringIO(
                page.request.get(
                    base + f"/reports/fees?merchant_id={world.b.merchant_id}&format=csv"
                ).text()
            )
        )
    )
    days = [r["day"] for r in csv_rows if r["line"] == "group"]
    own = world.a.get("/v1/reports/fees", params={"from": min(days), "to": max(days)}).json()
    total = next(r for r in csv_rows if r["line"] == "total" and r["currency"] == "CNY")
    own_total = next(t for t in own["totals"] if t["currency"] == "CNY")
    assert int(total["fees"]) == own_total["fees"]  # A's own figures, not B's
    assert int(total["transfer_count"]) == own_total["transfer_count"]

    # Forms posted with this session but without its CSRF token, or aimed at B's objects.
    page.goto(base + "/balance")
    token = page.locator("form[action='/dashboard/logout'] input[name=csrf_token]").get_attribute(
        "value"
    )
    assert token
    no_token = page.request.post(
        base + "/webhooks", form={"url": world.receiver.url}, max_redirects=0
    )
    assert no_token.status == 403
    b_event = world.b.get("/v1/events", params={"limit": 1}).json()["data"][0]["id"]
    for path in (
        f"/transfers/{world.b_paid}/events/{b_event}/redeliver",
        f"/webhooks/{world.b_endpoint}/events/{b_event}/redeliver",
        f"/webhooks/{world.b_endpoint}/rotate",
        f"/transfers/{world.b_paid}/query",
    ):
        resp = page.request.post(base + path, form={"csrf_token": token}, max_redirects=0)
        assert resp.status == 404, (path, resp.status)


def test_pages_send_security_headers_and_reject_bad_sign_ins(world: World) -> None:
    base = world.stack.gateway_url + "/dashboard"
    with httpx.Client(base_url=base, follow_redirects=False) as client:
        login = client.get("/login")
        assert login.status_code == 200
        assert login.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
        assert "script-src" not in login.headers["content-security-policy"]  # none at all
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert token is not None
        # Without the double-submit cookie the form is refused, whatever the key.
        client.cookies.clear()
        refused = client.post("/login", data={"key": world.a_key, "csrf_token": token.group(1)})
        assert refused.status_code == 403
        assert "paymux_session" not in refused.cookies
        # A wrong key: 401, no session.
        client.get("/login")
        token2 = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert token2 is not None
        wrong = client.post("/login", data={"key": "sk_wrong", "csrf_token": token2.group(1)})
        assert wrong.status_code == 401
        assert "paymux_session" not in wrong.cookies
        assert client.get("/overview").status_code == 303


def test_operator_sees_and_resolves_a_reconciliation_discrepancy(
    page: Page, world: World, screenshots: Path
) -> None:
    stack = world.stack
    with admin_client(stack) as admin:
        card = admin.get(f"/v1/transfers/{world.a_card}").json()
        reference, day = card["channel_reference"], business_day(card["completed_at"])
        # The channel's books drift silently: its statement now says another amount.
        tampered = httpx.post(
            f"{stack.sandbox_url('alipay')}/__sandbox/orders/{reference}/tamper",
            json={"amount": 150_001},
            timeout=10,
        )
        assert tampered.status_code == 200, tampered.text
        run = admin.post("/v1/reconciliation/runs", json={"channel": "alipay", "date": day})
        assert run.status_code == 201, run.text

    sign_in(page, stack, stack.admin_key)
    expect(page.locator("#open-discrepancies")).to_have_text("1")
    page.click("#open-discrepancies a")
    found = page.locator("#discrepancies tbody tr")
    expect(found).to_have_count(1)
    expect(found.first).to_contain_text("amount mismatch")
    expect(found.first).to_contain_text("1,500.01")
    shot(page, screenshots, "operator-reconciliation")

    found.first.locator(f"a:text('{world.a_card}')").click()
    item = page.locator("#timeline .item-reconciliation")
    expect(item).to_contain_text("Reconciliation: amount mismatch (open)")

    page.go_back()
    found.first.locator("input[name=reason]").fill("bank confirmed 1,500.00; statement typo")
    found.first.locator("button").click()
    expect(page.locator(".flash")).to_contain_text("resolved")
    expect(page.locator("#discrepancies")).to_contain_text("No open discrepancies")
    page.goto(f"{stack.gateway_url}/dashboard/transfers/{world.a_card}")
    expect(page.locator("#timeline .item-reconciliation")).to_contain_text("(resolved)")
    expect(page.locator("#timeline .item-reconciliation")).to_contain_text("statement typo")

    # Merchants see neither the page nor the finding on their transfer.
    page.click("#sign-out")
    sign_in(page, stack, world.a_key)
    resp = page.goto(f"{stack.gateway_url}/dashboard/reconciliation")
    assert resp is not None and resp.status == 404
    page.goto(f"{stack.gateway_url}/dashboard/transfers/{world.a_card}")
    expect(page.locator("#timeline .item-reconciliation")).to_have_count(0)


def test_merchant_statement_balances_and_is_its_own(page: Page, world: World) -> None:
    stack = world.stack
    sign_in(page, stack, world.a_key)
    day = business_day(world.a.get(f"/v1/transfers/{world.a_paid}").json()["completed_at"])
    page.goto(f"{stack.gateway_url}/dashboard/statements?date={day}")
    expect(page.locator(".card").nth(3)).to_contain_text("balanced")
    expect(page.locator("#statement")).to_contain_text(world.a_paid)
    api = world.a.get("/v1/statements", params={"date": day}).json()
    closing = page.locator("#closing").inner_text()
    assert closing.replace("¥", "").replace(",", "").replace(".", "") == str(api["closing_balance"])
    # Naming another merchant changes nothing: still A's own statement.
    page.goto(
        f"{stack.gateway_url}/dashboard/statements?date={day}&merchant_id={world.b.merchant_id}"
    )
    expect(page.locator("body")).to_contain_text(str(world.a.merchant_id))
    expect(page.locator("body")).not_to_contain_text(world.b_paid)
    with page.expect_download() as info:
        page.click("#download-statement")
    assert str(world.a.merchant_id) in Path(info.value.path()).read_text()
