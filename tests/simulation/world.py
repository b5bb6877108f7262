"""The simulated outside world: the channels' order books, their notifications, the clock.

It survives a simulated crash of the gateway (only the gateway's in-memory state is lost),
and every decision it makes is drawn from one seeded ``random.Random``, so a seed replays
the same history.

The simulated channels behave like the real ones where it matters for correctness: an
order is keyed by our reference and deduped on it (same reference, same order, never a
second payout), a definitive refusal is FAILED, everything not seen is PROCESSING, an order
finishes later and may bounce (REFUND / 退票) after success, and every final state is
notified, possibly more than once and in any order.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from paymux.channels.base import Ack, ChannelResult, InvalidSignature, Notification, TransferOrder
from paymux.domain.outcomes import Outcome
from paymux.domain.payees import PayeeType


class SimulatedCrash(BaseException):
    """The gateway process dies here. A BaseException, so no ``except Exception`` in our
    code can swallow it: everything in memory is lost, the database keeps what committed."""


@dataclass
class Faults:
    """Probabilities of each fault, per call. ``Faults.none()`` for the settle phase."""

    crash_before_send: float = 0.01  # we die before the request leaves
    lost_request: float = 0.03  # the request never reaches the channel (no order)
    lost_answer: float = 0.05  # the channel acts, its answer never reaches us (timeout)
    crash_after_send: float = 0.01  # the channel acts, we die before applying its answer
    query_timeout: float = 0.05
    crash_in_query: float = 0.005
    crash_in_commit: float = 0.003  # we die inside a transaction (rolled back)
    duplicate_notification: float = 0.3
    forged_notification: float = 0.01

    @classmethod
    def none(cls) -> Faults:
        return cls(**{name: 0.0 for name in cls.__dataclass_fields__})


@dataclass
class SimOrder:
    channel: str
    reference: str
    amount: int
    payee_account: str
    order_id: str
    status: Outcome  # PROCESSING, REQUIRES_CONFIRMATION, SUCCEEDED, FAILED, RETURNED, CANCELED
    final: Outcome  # what PROCESSING (or the payee's confirmation) becomes
    final_at: datetime
    returns_at: datetime | None  # a paid order that the bank bounces at this time


@dataclass(order=True)
class Queued:
    deliver_at: datetime
    seq: int
    channel: str = field(compare=False)
    body: bytes = field(compare=False)
    forged: bool = field(compare=False, default=False)


class World:
    def __init__(self, seed: int, start: datetime) -> None:
        self.rng = random.Random(seed)
        self.now = start
        self.faults = Faults()
        self.orders: dict[tuple[str, str], SimOrder] = {}
        self.creations: dict[tuple[str, str], int] = {}  # orders made per reference
        self.by_ref: dict[str, SimOrder] = {}
        self.touched: set[str] = set()  # references made or changed since last looked at
        self.inbox: list[Queued] = []  # notifications on their way to us
        self.delivered: list[Queued] = []  # for late redelivery (stale, out of order)
        self.violations: list[str] = []  # breaches of the channel contract by the gateway
        self.dead = False
        self.outage_until: dict[str, datetime] = {}  # a channel unreachable until then
        self._seq = itertools.count()
        self._ids = itertools.count(1)

    def clock(self) -> datetime:
        return self.now

    def die(self, where: str) -> SimulatedCrash:
        """The gateway dies here. ``dead`` stays set until the driver restarts it, so work a
        ``gather(return_exceptions=True)`` keeps running after the crash dies too."""
        self.dead = True
        return SimulatedCrash(where)

    def unreachable(self, channel: str) -> bool:
        until = self.outage_until.get(channel)
        return until is not None and self.now < until

    def check_alive(self) -> None:
        if self.dead:
            raise SimulatedCrash("the process is already dead")

    def chance(self, p: float) -> bool:
        return p > 0 and self.rng.random() < p

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        for order in self.orders.values():
            self._progress(order)

    # --- the channels' side ---------------------------------------------------------------

    def _progress(self, order: SimOrder) -> None:
        waiting = (Outcome.PROCESSING, Outcome.REQUIRES_CONFIRMATION)
        if order.status in waiting and order.final_at <= self.now:
            order.status = order.final
            self.touched.add(order.reference)
            self._notify(order)
        if (
            order.status is Outcome.SUCCEEDED
            and order.returns_at is not None
            and order.returns_at <= self.now
        ):
            order.status = Outcome.RETURNED
            self.touched.add(order.reference)
            self._notify(order)

    def _notify(self, order: SimOrder) -> None:
        copies = 1
        while copies < 4 and self.chance(self.faults.duplicate_notification):
            copies += 1
        body = json.dumps(
            {
                "reference": order.reference,
                "outcome": order.status.value,
                "order_id": order.order_id,
                "amount": order.amount,
                "currency": "CNY",
            }
        ).encode()
        for _ in range(copies):
            self.queue(order.channel, body, delay=self.rng.uniform(0, 20))

    def queue(self, channel: str, body: bytes, *, delay: float, forged: bool = False) -> None:
        at = self.now + timedelta(seconds=delay)
        heapq.heappush(self.inbox, Queued(at, next(self._seq), channel, body, forged))

    def drop_duplicates(self) -> None:
        """Keep one queued copy of each notification (the earliest)."""
        kept: dict[tuple[str, bytes], Queued] = {}
        for q in sorted(self.inbox):
            kept.setdefault((q.channel, q.body), q)
        self.inbox = sorted(kept.values())
        heapq.heapify(self.inbox)

    def take_due(self) -> Queued | None:
        """A due notification; not always the oldest one, so deliveries reorder."""
        due = [q for q in self.inbox if q.deliver_at <= self.now]
        if not due:
            return None
        pick = due[0] if len(due) == 1 or self.rng.random() < 0.5 else self.rng.choice(due)
        self.inbox.remove(pick)
        heapq.heapify(self.inbox)
        return pick

    def open_order(self, channel: str, order: TransferOrder) -> SimOrder:
        """The channel receives a transfer request: dedupe on the reference, else create."""
        key = (channel, order.reference)
        existing = self.orders.get(key)
        if existing is not None:
            if existing.amount != order.amount or existing.payee_account != order.payee_account:
                self.violations.append(
                    f"{channel} reference {order.reference} resent with different parameters"
                )
            return existing
        self.creations[key] = self.creations.get(key, 0) + 1
        account = order.payee_account
        final, settle_in, returns_in = self._fate(account)
        # WeChat: the payee must confirm in the app first (WAIT_USER_CONFIRM); they confirm,
        # reject or let it expire by final_at, unless the merchant cancels before.
        confirm = channel == "wechat" and ("confirm" in account or self.chance(0.2))
        created = SimOrder(
            channel=channel,
            reference=order.reference,
            amount=order.amount,
            payee_account=account,
            order_id=f"SIM{channel[:2].upper()}{next(self._ids):010d}",
            status=Outcome.PROCESSING,
            final=final,
            final_at=self.now + timedelta(seconds=settle_in),
            returns_at=(
                None if returns_in is None else self.now + timedelta(seconds=settle_in + returns_in)
            ),
        )
        self.orders[key] = self.by_ref[order.reference] = created
        self.touched.add(order.reference)
        if confirm:
            created.status = Outcome.REQUIRES_CONFIRMATION
            created.final_at = self.now + timedelta(seconds=self.rng.uniform(5, 180))
        elif settle_in == 0:
            created.status = final
            self._notify(created)
        return created

    def cancel(self, channel: str, reference: str) -> Outcome | None:
        """The merchant asks to cancel: only before the payee confirmed. None: no order."""
        order = self.orders.get((channel, reference))
        if order is None:
            return None
        if order.status is Outcome.REQUIRES_CONFIRMATION:
            order.status = Outcome.CANCELED
            order.returns_at = None
            self.touched.add(reference)
            self._notify(order)
        return order.status

    def _fate(self, account: str) -> tuple[Outcome, float, float | None]:
        """(final outcome, seconds until final (0: at once), seconds until a bounce)."""
        if "fail" in account or account.endswith("4004"):
            return Outcome.FAILED, 0.0, None
        if "return" in account or account.endswith("7007"):
            return Outcome.SUCCEEDED, 0.0, self.rng.uniform(1, 120)
        if "delay" in account or account.endswith("2002"):
            return Outcome.SUCCEEDED, self.rng.uniform(1, 60), None
        roll = self.rng.random()
        if roll < 0.7:
            return Outcome.SUCCEEDED, 0.0, None
        if roll < 0.85:
            return Outcome.SUCCEEDED, self.rng.uniform(1, 90), None
        if roll < 0.95:
            return Outcome.FAILED, self.rng.uniform(1, 90), None
        return Outcome.SUCCEEDED, self.rng.uniform(1, 30), self.rng.uniform(1, 120)


def result_of(order: SimOrder) -> ChannelResult:
    failed = order.status is Outcome.FAILED
    return ChannelResult(
        order.status,
        channel_order_id=order.order_id,
        failure_code="PAYEE_NOT_EXIST" if failed else None,
        failure_message="payee does not exist" if failed else None,
        raw_status=order.status.value,
    )


@dataclass
class SimChannel:
    """A :class:`paymux.channels.base.Channel` over the world's order book. A new one is
    made for every gateway life; the world (the channel's own state) persists."""

    world: World
    name: str
    payee_types: frozenset[PayeeType]
    account_id: str = "sim-account"

    async def send(self, order: TransferOrder) -> ChannelResult:
        w = self.world
        w.check_alive()
        if w.chance(w.faults.crash_before_send):
            raise w.die(f"before sending {order.reference}")
        if w.unreachable(self.name):
            return ChannelResult(Outcome.PROCESSING, raw_status="paymux_sim_unreachable")
        if w.chance(w.faults.lost_request):
            return ChannelResult(Outcome.PROCESSING, raw_status="paymux_sim_lost_request")
        placed = w.open_order(self.name, order)
        if w.chance(w.faults.crash_after_send):
            raise w.die(f"after {self.name} accepted {order.reference}")
        if w.chance(w.faults.lost_answer):
            return ChannelResult(Outcome.PROCESSING, raw_status="paymux_sim_lost_answer")
        return result_of(placed)

    async def query(self, order: TransferOrder) -> ChannelResult:
        w = self.world
        w.check_alive()
        if w.chance(w.faults.crash_in_query):
            raise w.die(f"while querying {order.reference}")
        if w.unreachable(self.name):
            return ChannelResult(Outcome.PROCESSING, raw_status="paymux_sim_unreachable")
        if w.chance(w.faults.query_timeout):
            return ChannelResult(Outcome.PROCESSING, raw_status="paymux_sim_query_timeout")
        found = w.orders.get((self.name, order.reference))
        if found is None:
            return ChannelResult(Outcome.NOT_FOUND)
        return result_of(found)

    async def cancel(self, order: TransferOrder) -> ChannelResult:
        """Cancellable: CANCELED when the channel cancelled, else its current state."""
        w = self.world
        w.check_alive()
        if w.chance(w.faults.crash_before_send):
            raise w.die(f"before cancelling {order.reference}")
        if w.unreachable(self.name):
            return ChannelResult(Outcome.PROCESSING, raw_status="paymux_sim_unreachable")
        if w.chance(w.faults.lost_request):
            return ChannelResult(Outcome.PROCESSING, raw_status="paymux_sim_lost_request")
        status = w.cancel(self.name, order.reference)
        if w.chance(w.faults.crash_after_send):
            raise w.die(f"after {self.name} answered the cancel of {order.reference}")
        if w.chance(w.faults.lost_answer) or status is None:
            return ChannelResult(Outcome.PROCESSING, raw_status="paymux_sim_lost_answer")
        return result_of(w.orders[(self.name, order.reference)])

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        if headers.get("x-sim-signature") != "valid":
            raise InvalidSignature("simulated bad signature")
        data = json.loads(body)
        return Notification(
            reference=data["reference"],
            outcome=Outcome(data["outcome"]),
            channel_order_id=data["order_id"],
            amount=data["amount"],
            currency=data["currency"],
            channel_account=self.account_id,
            failure_code="PAYEE_NOT_EXIST" if data["outcome"] == "failed" else None,
            raw_status=data["outcome"],
        )

    def notification_ack(self, ok: bool) -> Ack:
        return Ack(200 if ok else 500, b"success" if ok else b"fail", "text/plain")

    async def aclose(self) -> None:
        return None


def sim_channels(world: World) -> dict[str, SimChannel]:
    return {
        "alipay": SimChannel(
            world, "alipay", frozenset({PayeeType.ALIPAY_ACCOUNT, PayeeType.BANK_CARD})
        ),
        "wechat": SimChannel(world, "wechat", frozenset({PayeeType.WECHAT_OPENID})),
    }
