"""Channel notifications in: /callbacks/{channel}."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from paymux.api.auth import gateway
from paymux.service.errors import NotFound
from paymux.service.notifications import handle_notification

router = APIRouter(prefix="/callbacks", tags=["channel callbacks"])


_CHANNEL_TEXT = {"schema": {"type": "string"}}


@router.post(
    "/{channel}",
    summary="Asynchronous notification from a channel",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The channel's own notification (Alipay: form; WeChat: JSON)",
            "content": {
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
    responses={
        200: {
            "description": "Accepted, in the channel's own words (Alipay: `success`)",
            "content": {"text/plain": _CHANNEL_TEXT},
        },
        204: {"description": "Accepted (WeChat)"},
        400: {
            "description": "Refused (forged, malformed, unknown): the channel sends it again",
            "content": {
                "text/plain": _CHANNEL_TEXT,
                "application/json": {"schema": {"type": "object"}},
            },
        },
    },
)
async def channel_callback(channel: str, request: Request) -> Response:
    # The size limit is enforced while the body streams (api/guards.py).
    body = await request.body()
    ack = await handle_notification(gateway(request), channel, request.headers, body)
    if ack is None:
        raise NotFound(f"no channel {channel}")
    return Response(ack.body, status_code=ack.status_code, media_type=ack.content_type)
