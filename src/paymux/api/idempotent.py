"""The Idempotency-Key protocol around a money-moving POST (see DESIGN.md).

One Redis round trip claims the key (or finds a stored response / a conflict), one stores
the final response. A request that fails validation or is refused before money moves
stores nothing, so the merchant may retry with the same key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from paymux.api.auth import refund_replay
from paymux.idempotency import (
    ClaimKind,
    IdempotencyStore,
    InvalidIdempotencyKey,
    StoredResponse,
    fingerprint,
)
from paymux.service.errors import (
    IdempotencyInFlight,
    IdempotencyKeyReused,
    InvalidRequest,
    ServiceError,
)
from paymux.service.gateway import Gateway

REPLAYED = "Idempotent-Replayed"


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
) -> Response:
    """``handler(fingerprint)`` returns (status, body, replayed_from_database)."""
    store = gw.idempotency
    fp = fingerprint(payload)
    claim = await store.claim(scope, key, fp)
    if claim.kind is ClaimKind.replay:
        assert claim.response is not None
        await refund_replay()  # a replay does not count against the rate limit
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
    try:
        status, body, replayed = await handler(fp)
    except BaseException:
        # Nothing was stored under the key; a retry re-runs (the database unique key stops
        # a second transfer if the first one did commit).
        await store.release(scope, key, fp)
        raise
    if replayed:
        await refund_replay()
    response = json_response(status, body, replayed=replayed)
    await store.complete(scope, key, fp, StoredResponse(status, bytes(response.body), {}))
    return response
