"""Channel notifications in: /callbacks/{channel}."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from paymux.api.auth import gateway
from paymux.service.errors import NotFound
from paymux.service.notifications import handle_notification

router = APIRouter(prefix="/callbacks", tags=["channel callbacks"])

MAX_NOTIFICATION_BYTES = 64 * 1024


@router.post("/{channel}", summary="Asynchronous notification from a channel")
async def channel_callback(channel: str, request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_NOTIFICATION_BYTES:
        return Response(b"too large", status_code=413, media_type="text/plain")
    ack = await handle_notification(gateway(request), channel, request.headers, body)
    if ack is None:
        raise NotFound(f"no channel {channel}")
    return Response(ack.body, status_code=ack.status_code, media_type=ack.content_type)
