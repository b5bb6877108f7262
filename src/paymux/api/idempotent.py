"""The Idempotency-Key protocol around a money-moving POST (see DESIGN.md).

One Redis round trip claims the key (or finds a stored response / a conflict), one stores
the final response. A request that fails validation or is refused before money moves
stores nothing, so the merchant may retry with the same key.

While the handler runs, a background task renews the claim's short lease, so a request
whose process dies frees its key within ``idempotency_lock_seconds`` (docs/RELIABILITY.md,
the retry contract). Without Redis there is no claim, and no money moves: the request is a
503 (raised by the store as IdempotencyUnavailable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from paymux.api.auth import pending_gate, refund_replay
from paymux.service.errors import (
    IdempotencyInFlight,
    IdempotencyKeyReused,
    InvalidRequest,
    ServiceError,
)
from paymux.service.gateway import Gateway
from paymux.store.idempotency import (
    ClaimKind,
    IdempotencyStore,
    IdempotencyUnavailable,
    InvalidIdempotencyKey,
    StoredResponse,
    fingerprint,
)

REPLAYED = "Idempotent-Replayed"
log = logging.getLogger(__name__)

# Given a stored response, the answer to send instead (e.g. the transfer's current state
# when the stored one is a snapshot a newer state has replaced), or None to send it as is.
Refresh = Callable[[StoredResponse], Awaitable[Response | None]]


class MissingIdempotencyKey(ServiceError):
    status, code, title = 400, "idempotency_key_missing", "Idempotency-Key required"


def idempotency_key(request: Request) -> str:
    raw = request.headers.get("idempotency-key")
    if raw is None:
        raise MissingIdempotencyKey("this request moves money: send an Idempotency-Key header")
    try:
        return IdempotencyStore.validate_key(raw)
    except InvalidIdempotencyKey as exc:
        raise InvalidRequest(f"Idempotency-Key: {exc}") from None


async def idempotency_key_header(request: Request) -> str:
    """The same check as a dependency (``key: str = Depends(idempotency_key_header)``), which
    also puts the required header into the OpenAPI document (api/openapi.py). Async, so
    FastAPI calls it on the event loop instead of hopping to a worker thread and back."""
    return idempotency_key(request)


def json_response(status: int, body: dict[str, Any], *, replayed: bool = False) -> Response:
    headers = {REPLAYED: "true"} if replayed else None
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


async def run_idempotent(
    gw: Gateway,
    scope: str,
    key: str,
    payload: Any,
    handler: Callable[[str], Awaitable[tuple[int, dict[str, Any], bool]]],
    *,
    refresh: Refresh | None = None,
) -> Response:
    """``handler(fingerprint)`` returns (status, body, replayed_from_database)."""
    store = gw.idempotency
    fp = fingerprint(payload)
    gate = pending_gate()
    if gate is not None and not store.on_one_slot(scope, gate.request.keys):
        # The API key's records live on another Cluster slot than this claim (an
        # operator's key, a merchant's top-up): admit the key on its own round trip.
        await gate.reauthenticate()  # raises 401 / 429 as any request would
        gate = None
    charged = gate is None  # the request was already counted against the rate limit
    if gate is None:
        claim = await store.claim(scope, key, fp)
    else:
        # The key's revocation check and rate limit ride in the claim: one round trip, and
        # a replay found there is not counted.
        claim = await store.claim(scope, key, fp, gate=gate.request)
        if claim.kind is ClaimKind.stale:
            await gate.reauthenticate()  # raises 401 / 429 as a first request would
            charged = True
            claim = await store.claim(scope, key, fp)
        else:
            assert claim.admission is not None
            gate.admitted(claim.admission)  # raises 429 when limited (nothing claimed)
    if claim.kind is ClaimKind.replay:
        assert claim.response is not None
        if charged:
            await refund_replay()  # a replay does not count against the rate limit
        if refresh is not None and (fresh := await refresh(claim.response)) is not None:
            return fresh
        return Response(
            claim.response.body,
            status_code=claim.response.status_code,
            media_type="application/json",
            headers={REPLAYED: "true"},
        )
    if claim.kind is ClaimKind.mismatch:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
    if claim.kind is ClaimKind.in_flight:
        raise IdempotencyInFlight("a request with this Idempotency-Key is still in progress")
    renewer = asyncio.create_task(_keep_lease(store, scope, key, fp))
    try:
        status, body, replayed = await handler(fp)
    except BaseException:
        renewer.cancel()
        # Nothing was stored under the key; a retry re-runs (the database unique key stops
        # a second transfer if the first one did commit).
        with contextlib.suppress(IdempotencyUnavailable):  # the lease runs out by itself
            await store.release(scope, key, fp)
        raise
    finally:
        renewer.cancel()
    if replayed:
        await refund_replay()
    response = json_response(status, body, replayed=replayed)
    try:
        await store.complete(scope, key, fp, StoredResponse(status, bytes(response.body), {}))
    except IdempotencyUnavailable:
        # The work is done and committed; answer it. A retry finds the row by its unique
        # (merchant, key) once the lease has run out.
        log.warning("idempotency record for a completed request not stored: Redis unavailable")
    return response


async def _keep_lease(store: IdempotencyStore, scope: str, key: str, fp: str) -> None:
    """Renew the in-flight lease every third of its length until cancelled."""
    interval = store.lock_seconds / 3
    while True:
        await asyncio.sleep(interval)
        try:
            if not await store.renew(scope, key, fp):
                log.warning("in-flight idempotency lease lost; the database key still guards")
                return
        except IdempotencyUnavailable:
            continue  # Redis is away: keep trying; the unique key guards meanwhile
