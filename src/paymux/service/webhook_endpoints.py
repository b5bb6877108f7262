"""Merchants' webhook endpoints, their signing secrets, attempts, and the events they receive.

A secret is returned only by `create_endpoint` and `rotate_secret`; no view here contains
one. Rotation keeps the previous secret signing until its `expires_at`, so a merchant can
deploy the new secret while deliveries carry both signatures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import orjson

from paymux.domain.ids import new_id
from paymux.service.errors import Conflict, InvalidRequest, NotFound, ServiceError
from paymux.service.gateway import Gateway
from paymux.service.views import iso
from paymux.store import events_repo, webhook_deliveries_repo
from paymux.store import webhook_endpoints_repo as repo
from paymux.store.events_repo import DeliveryRow, EventRow
from paymux.store.webhook_deliveries_repo import new_delivery, parse_event_types
from paymux.store.webhook_endpoints_repo import AttemptRow, EndpointPatch, EndpointRow
from paymux.webhooks import signing, ssrf
from paymux.webhooks.relay import WILDCARD, delivery_schedule, enqueue_now, subscribed

# Every type Outbox.emit is called with; "*" subscribes to all of them (and future ones).
EVENT_TYPES: tuple[str, ...] = (
    "balance.topped_up",
    "transfer.processing",
    "transfer.succeeded",
    "transfer.failed",
    "transfer.returned",
    "transfer.requires_confirmation",
    "transfer.canceled",
    "transfer_batch.completed",
)
ATTEMPT_ID_PREFIX = "wha_"


class UnsafeWebhookURL(ServiceError):
    status, code, title = 422, "unsafe_url", "Webhook URL not allowed"


def check_event_types(types: Sequence[str]) -> list[str]:
    """The subscription, de-duplicated in order; unknown types are refused."""
    unknown = [t for t in types if t != WILDCARD and t not in EVENT_TYPES]
    if unknown:
        raise InvalidRequest(
            f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)} or '*'"
        )
    if not types:
        raise InvalidRequest("event_types needs at least one type (or '*')")
    return list(dict.fromkeys(types))


async def check_url(gw: Gateway, url: str) -> None:
    try:
        await ssrf.check_url(
            url,
            allow_http=gw.settings.webhook_allow_http,
            allow_private=gw.settings.webhook_allow_private,
        )
    except ssrf.UnsafeURL as exc:
        raise UnsafeWebhookURL(str(exc)) from None


def endpoint_view(row: EndpointRow) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "webhook_endpoint",
        "url": row["url"],
        "event_types": parse_event_types(row["event_types"]),
        "description": row["description"],
        "enabled": bool(row["enabled"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def attempt_view(row: AttemptRow) -> dict[str, Any]:
    return {
        "id": f"{ATTEMPT_ID_PREFIX}{row['id']}",
        "object": "webhook_attempt",
        "endpoint_id": row["endpoint_id"],
        "event_id": row["event_id"],
        "delivery_id": row["delivery_id"],
        "attempt": row["attempt"],
        "ok": bool(row["ok"]),
        "status_code": row["status_code"],
        "latency_ms": row["latency_ms"],
        "response_excerpt": row["response_excerpt"],
        "error": row["error"],
        "created_at": iso(row["created_at"]),
    }


def event_view(row: EventRow) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(row["payload"])
    return {"id": payload.pop("id"), "object": "event", **payload}


def delivery_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "webhook_delivery",
        "event_id": row["event_id"],
        "endpoint_id": row["endpoint_id"],
        "status": row["status"],
        "attempts": row["attempts"],
        "next_attempt_at": iso(row["next_attempt_at"]),
        "created_at": iso(row["created_at"]),
    }


# --- endpoints -------------------------------------------------------------------------


async def create_endpoint(
    gw: Gateway,
    merchant_id: str,
    *,
    url: str,
    event_types: Sequence[str],
    description: str | None,
) -> tuple[EndpointRow, str]:
    """The new endpoint and its first secret (the only time the secret is returned)."""
    types = check_event_types(event_types)
    await check_url(gw, url)
    now = gw.clock()
    secret = signing.generate_secret()
    row = EndpointRow(
        id=new_id("we"),
        merchant_id=merchant_id,
        url=url,
        event_types=orjson.dumps(types).decode(),
        description=description,
        enabled=True,
        created_at=now,
        updated_at=now,
        deleted_at=None,
    )
    await repo.insert(gw.db, row, secret)
    return row, secret


async def get_endpoint(gw: Gateway, merchant_id: str, endpoint_id: str) -> EndpointRow:
    """A live endpoint of this merchant; another merchant's or a deleted one is 404."""
    found = await repo.get_live(gw.db, merchant_id, endpoint_id)
    if found is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return found


async def list_endpoints(
    gw: Gateway, merchant_id: str, *, limit: int, starting_after: str | None
) -> tuple[list[EndpointRow], bool]:
    return await repo.page(gw.db, merchant_id, limit=limit, starting_after=starting_after)


@dataclass(frozen=True)
class EndpointChanges:
    """Fields a PATCH sets; `fields` names the ones present (description may become None)."""

    fields: frozenset[str]
    url: str | None = None
    event_types: Sequence[str] | None = None
    description: str | None = None
    enabled: bool | None = None


async def update_endpoint(
    gw: Gateway, merchant_id: str, endpoint_id: str, changes: EndpointChanges
) -> EndpointRow:
    await get_endpoint(gw, merchant_id, endpoint_id)
    values: EndpointPatch = {}
    if "url" in changes.fields and changes.url is not None:
        await check_url(gw, changes.url)
        values["url"] = changes.url
    if "event_types" in changes.fields and changes.event_types is not None:
        values["event_types"] = orjson.dumps(check_event_types(changes.event_types)).decode()
    if "description" in changes.fields:
        values["description"] = changes.description
    if "enabled" in changes.fields and changes.enabled is not None:
        values["enabled"] = changes.enabled
    if values:
        values["updated_at"] = gw.clock()
        await repo.update_live(gw.db, endpoint_id, values)
    return await get_endpoint(gw, merchant_id, endpoint_id)


async def delete_endpoint(gw: Gateway, merchant_id: str, endpoint_id: str) -> None:
    """Soft delete: nothing more is delivered; deliveries and attempts stay on record."""
    await get_endpoint(gw, merchant_id, endpoint_id)
    await repo.soft_delete(gw.db, endpoint_id, gw.clock())


async def rotate_secret(
    gw: Gateway, merchant_id: str, endpoint_id: str, *, overlap_seconds: int | None
) -> tuple[EndpointRow, str, datetime]:
    """A new secret; the current ones keep signing until the returned expiry."""
    endpoint = await get_endpoint(gw, merchant_id, endpoint_id)
    overlap = (
        gw.settings.webhook_secret_overlap_seconds if overlap_seconds is None else overlap_seconds
    )
    now = gw.clock()
    expires = now + timedelta(seconds=overlap)
    secret = signing.generate_secret()
    await repo.add_secret(gw.db, endpoint_id, secret, now=now, others_expire=expires)
    return endpoint, secret, expires


def _attempt_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    digits = cursor.removeprefix(ATTEMPT_ID_PREFIX)
    if not digits.isascii() or not digits.isdigit():
        raise InvalidRequest("cursor is not an attempt id")
    return int(digits)


async def list_attempts(
    gw: Gateway, merchant_id: str, endpoint_id: str, *, limit: int, starting_after: str | None
) -> tuple[list[AttemptRow], bool]:
    """Attempts to one endpoint, newest first."""
    await get_endpoint(gw, merchant_id, endpoint_id)
    return await repo.attempts_page(
        gw.db, endpoint_id, limit=limit, before_id=_attempt_cursor(starting_after)
    )


# --- events ----------------------------------------------------------------------------


async def list_events(
    gw: Gateway,
    merchant_id: str,
    *,
    event_type: str | None,
    limit: int,
    starting_after: str | None,
) -> tuple[list[EventRow], bool]:
    """The merchant's events, newest first (event ids are time-ordered)."""
    return await events_repo.page(
        gw.db,
        merchant_id,
        event_type=event_type,
        limit=limit,
        starting_after=starting_after,
    )


async def get_event(
    gw: Gateway, merchant_id: str, event_id: str
) -> tuple[EventRow, list[DeliveryRow]]:
    """The event and its deliveries (oldest first)."""
    found = await events_repo.with_deliveries(gw.db, merchant_id, event_id)
    if found is None:
        raise NotFound(f"no event {event_id}")
    return found


async def redeliver_event(
    gw: Gateway, merchant_id: str, event_id: str, *, endpoint_id: str | None
) -> list[dict[str, Any]]:
    """Fresh deliveries of the event, due now: to `endpoint_id`, or to every live subscriber.

    The payload and so the `webhook-id` are the original event's: a merchant that already
    processed it recognises the duplicate.
    """
    event, _ = await get_event(gw, merchant_id, event_id)
    if endpoint_id is not None:
        endpoint = await get_endpoint(gw, merchant_id, endpoint_id)
        if not endpoint["enabled"]:
            raise Conflict(
                f"webhook endpoint {endpoint_id} is disabled", code_override="endpoint_disabled"
            )
        targets = [endpoint_id]
    else:
        live = await repo.live_subscriptions(gw.db, merchant_id)
        targets = [i for i, types in live if subscribed(parse_event_types(types), event["type"])]
        if not targets:
            raise Conflict(
                f"no enabled webhook endpoint subscribes to {event['type']}",
                code_override="no_matching_endpoint",
            )
    now = gw.clock()
    rows = [new_delivery(event_id, target, now) for target in targets]
    await gw.db.run_write(partial(webhook_deliveries_repo.insert_deliveries, rows=rows))
    await enqueue_now(delivery_schedule(gw), [r["id"] for r in rows])
    return rows
