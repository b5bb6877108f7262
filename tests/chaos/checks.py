"""What a chaos run must prove, as pure functions of what it collected.

The runner gathers plain data (the merchants' view of every key, our database, the
sandboxes' order books, the webhook deliveries) and each check here turns it into one row of
the final table: a figure and the violations found. Pure, so the checker itself is tested on
crafted input (tests/chaos/test_chaos_checks.py).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.simulation.invariants import expected_events

IN_FLIGHT = {"pending", "processing", "requires_confirmation"}
SETTLED = {"succeeded", "returned"}

# The sandboxes' status words in our vocabulary (anything else: still moving).
CHANNEL_STATUS = {
    "SUCCESS": "succeeded",
    "FAIL": "failed",
    "REFUND": "returned",
    "CANCELLED": "failed",
    "DEALING": "processing",
    "ACCEPTED": "processing",
    "PROCESSING": "processing",
    "TRANSFERING": "processing",
    "WAIT_USER_CONFIRM": "processing",
    "CANCELING": "processing",
}


@dataclass
class KeyRecord:
    """One idempotency key as the merchant saw it: every answer, in order."""

    merchant_id: str
    key: str
    answers: list[tuple[int, str | None]] = field(default_factory=list)  # (status, transfer id)
    no_answer: int = 0  # attempts that got no HTTP answer at all

    @property
    def final(self) -> tuple[int, str | None] | None:
        done = [a for a in self.answers if a[0] in (200, 201, 402)]
        return done[-1] if done else None


@dataclass(frozen=True)
class TransferRow:
    id: str
    merchant_id: str
    key: str
    status: str
    amount: int
    fee: int
    channel: str
    reference: str


@dataclass(frozen=True)
class ChannelOrder:
    channel: str
    reference: str
    amount: int  # fen
    status: str  # the channel's own word


@dataclass(frozen=True)
class Delivery:
    merchant_id: str
    headers: Mapping[str, str]
    body: str
    error: str | None  # the signature check made on receipt: None when it verified


def verify_on_receipt(secret: str | None, body: str, headers: Mapping[str, str]) -> str | None:
    """Verify one delivery as it arrives, with the public `standardwebhooks` library: None
    when valid, else why not. On receipt, not at the end of the run: the library rejects a
    timestamp more than 5 minutes from now, which every delivery of a long run would be."""
    try:
        if secret is None:
            raise WebhookVerificationError("no secret for this merchant")
        Webhook(secret).verify(body, dict(headers))
    except WebhookVerificationError as exc:
        return str(exc) or type(exc).__name__
    return None


@dataclass
class Row:
    check: str
    figure: str
    violations: list[str]

    @property
    def ok(self) -> bool:
        return not self.violations


def check_keys(keys: Iterable[KeyRecord], transfers: Iterable[TransferRow]) -> Row:
    by_key: dict[tuple[str, str], list[TransferRow]] = defaultdict(list)
    for t in transfers:
        by_key[(t.merchant_id, t.key)].append(t)
    problems: list[str] = []
    n = answered = refused = 0
    for k in keys:
        n += 1
        final = k.final
        ids = {tid for status, tid in k.answers if status in (200, 201) and tid}
        rows = by_key.get((k.merchant_id, k.key), [])
        if len(ids) > 1:
            problems.append(f"key {k.key} answered with different transfers {sorted(ids)}")
        if final is None:
            problems.append(f"key {k.key} never answered ({len(k.answers)} answers, all retry)")
            continue
        if final[0] == 402:
            refused += 1
            if rows:
                problems.append(f"key {k.key} answered 402 but has transfer {rows[0].id}")
            continue
        answered += 1
        if len(rows) != 1 or rows[0].id != final[1]:
            problems.append(f"key {k.key} answered {final[1]}, database has {[r.id for r in rows]}")
    return Row(
        "every key answered with exactly one transfer",
        f"{n} keys: {answered} transfers, {refused} refused (402)",
        problems,
    )


def check_channel_orders(orders: Iterable[ChannelOrder], transfers: Iterable[TransferRow]) -> Row:
    by_ref = {t.reference: t for t in transfers}
    seen: Counter[tuple[str, str]] = Counter()
    problems: list[str] = []
    orders = list(orders)
    for o in orders:
        seen[(o.channel, o.reference)] += 1
        t = by_ref.get(o.reference)
        if t is None:
            problems.append(f"{o.channel} order {o.reference} has no transfer of ours")
            continue
        if t.channel != o.channel or t.amount != o.amount:
            problems.append(
                f"{o.reference}: order {o.channel}/{o.amount} vs {t.channel}/{t.amount}"
            )
        theirs = CHANNEL_STATUS.get(o.status, "processing")
        if t.status in ("succeeded", "failed", "returned") and theirs != t.status:
            problems.append(f"{o.reference}: we say {t.status}, {o.channel} says {o.status}")
    problems += [f"{c} has {n} orders for {ref}" for (c, ref), n in seen.items() if n > 1]
    have = {o.reference for o in orders}
    problems += [
        f"{t.reference}: we say {t.status} but {t.channel} has no order"
        for t in by_ref.values()
        if t.status in SETTLED and t.reference not in have
    ]
    return Row(
        "at most one channel order per reference, agreeing with us",
        f"{len(orders)} orders for {len(by_ref)} transfers",
        problems,
    )


def check_settled(transfers: Iterable[TransferRow]) -> Row:
    counts = Counter(t.status for t in transfers)
    stuck = [f"{t.id} still {t.status}" for t in transfers if t.status in IN_FLIGHT]
    figure = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
    return Row("nothing pending/processing after settling", figure or "no transfers", stuck[:20])


def check_ledger(ok: bool, output: str) -> Row:
    return Row(
        "paymux ledger check",
        output.strip().splitlines()[-1] if output.strip() else "",
        [] if ok else [output.strip()[:500]],
    )


def check_balances(
    transfers: Iterable[TransferRow], topups: Mapping[str, int], available: Mapping[str, int]
) -> Row:
    """available + held = top-ups - (amount + fee) of settled + amount of returned."""
    expect = dict(topups)
    held: dict[str, int] = defaultdict(int)
    for t in transfers:
        if t.status in SETTLED:
            expect[t.merchant_id] = expect.get(t.merchant_id, 0) - t.amount - t.fee
        if t.status == "returned":
            expect[t.merchant_id] += t.amount
        if t.status in IN_FLIGHT:
            held[t.merchant_id] += t.amount + t.fee
    problems = []
    for m in sorted(set(expect) | set(available)):
        have = available.get(m, 0) + held.get(m, 0)
        if have != expect.get(m, 0):
            problems.append(f"{m}: available + held {have} != expected {expect.get(m, 0)}")
    return Row(
        "balance = top-ups - settled - fees + returns",
        f"{len(expect)} merchants, {sum(topups.values())} fen topped up",
        problems,
    )


def check_webhooks(
    events: Iterable[tuple[str, str, str]],  # (event id, type, object id) from our outbox
    transfers: Iterable[TransferRow],
    deliveries: Iterable[Delivery],
) -> Row:
    """One event per state change, each delivered with a valid Standard Webhooks signature
    (as the receiver found it on receipt)."""
    problems: list[str] = []
    events = list(events)
    ours = {eid: (etype, obj) for eid, etype, obj in events}
    per_transfer: dict[str, list[str]] = defaultdict(list)
    for _eid, etype, obj in events:
        if etype.startswith("transfer."):
            per_transfer[obj].append(etype.removeprefix("transfer."))
    for t in transfers:  # ``events`` come in the order they were written (time-ordered ids)
        chain = per_transfer.get(t.id, [])
        problems += [f"transfer {t.id}: {p}" for p in expected_events(t.status, chain)]
    delivered: dict[str, int] = Counter()
    bad = 0
    for d in deliveries:
        if d.error is not None:
            bad += 1
            problems.append(f"delivery {d.headers.get('webhook-id')} does not verify: {d.error}")
            continue
        eid = json.loads(d.body).get("id")
        if eid != d.headers.get("webhook-id") or eid not in ours:
            problems.append(f"delivery {d.headers.get('webhook-id')} is no event of ours")
            continue
        delivered[eid] += 1
    missing = [eid for eid in ours if eid not in delivered]
    problems += [f"event {eid} ({ours[eid][0]}) never delivered" for eid in missing[:20]]
    if len(missing) > 20:
        problems.append(f"... {len(missing)} events never delivered")
    resent = sum(n - 1 for n in delivered.values())
    return Row(
        "one event per state change, delivered and signed",
        f"{len(ours)} events, {len(delivered)} delivered ({resent} again), {bad} bad signatures",
        problems,
    )


def check_client_errors(statuses: Mapping[int, int], unexpected: Iterable[str]) -> Row:
    problems = [f"{n} answers {s}" for s, n in statuses.items() if s >= 500 and s != 503]
    problems += list(unexpected)[:20]
    figure = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
    return Row("no 500 seen by any client", figure, problems)


def render(rows: list[Row]) -> str:
    width = max(len(r.check) for r in rows)
    lines = [f"{'check':<{width}}  result  figures", f"{'-' * width}  ------  -------"]
    for r in rows:
        lines.append(f"{r.check:<{width}}  {'ok' if r.ok else 'FAIL':<6}  {r.figure}")
        lines += [f"{'':<{width}}    - {v}" for v in r.violations[:10]]
        if len(r.violations) > 10:
            lines.append(f"{'':<{width}}    ... {len(r.violations) - 10} more")
    return "\n".join(lines)
