"""Adds the ``RateLimit`` / ``RateLimit-Policy`` headers (IETF httpapi draft) that the auth
dependency computed for this request to whatever response the route returns, and charges
the rate limit of a request whose deferred admission no idempotency claim consumed."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paymux.api.auth import STATE_HEADERS, charge_unclaimed


class RateLimitHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = state.get(STATE_HEADERS)
                if extra:
                    names = {k.lower() for k, _ in message.get("headers", [])}
                    message["headers"] = [
                        *message.get("headers", []),
                        *(
                            (k.lower().encode(), v.encode())
                            for k, v in extra.items()
                            if k.lower().encode() not in names
                        ),
                    ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            await charge_unclaimed(state)
