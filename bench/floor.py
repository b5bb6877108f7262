"""The floor: only what no gateway can avoid, on the gateway's own server stack.

Parse the JSON request, one Redis write, sign the channel request and verify the answer
with the Alipay adapter's own code (``AlipayChannel.send``), call the same sandbox, reply
JSON. Uvicorn with uvloop + httptools and a raw ASGI app, like ``paymux serve``.

    python -m bench.floor --port P --redis-url URL --alipay-url URL --alipay-data-dir DIR
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from paymux_alipay.channel import AlipayChannel, AlipaySettings
from paymux_alipay.devkit import sandbox_channel_settings
from redis.asyncio import Redis

from paymux.channels.base import TransferOrder
from paymux.domain.payees import PayeeType

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]


class Floor:
    def __init__(
        self, redis_url: str, alipay_url: str, alipay_data_dir: Path, notify_url: str | None
    ) -> None:
        self._redis_url = redis_url
        self._notify_url = notify_url
        self._settings = AlipaySettings(**sandbox_channel_settings(alipay_data_dir, alipay_url))
        self._redis: Redis | None = None
        self._channel: AlipayChannel | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["path"] == "/healthz":
            await _reply(send, 200, b'{"status":"ok"}')
            return
        if scope["method"] != "POST" or scope["path"] != "/transfer":
            await _reply(send, 404, b'{"error":"not found"}')
            return
        body = await _read_body(receive)
        await self._transfer(body, send)

    async def _transfer(self, body: bytes, send: Send) -> None:
        assert self._redis is not None and self._channel is not None
        req = orjson.loads(body)
        reference = uuid.uuid4().hex
        # The one unavoidable Redis write: claiming the request's idempotency key.
        await self._redis.set(f"floor:{reference}", b"1", ex=3600)
        result = await self._channel.send(
            TransferOrder(
                reference=reference,
                amount=int(req["amount"]),
                currency=str(req["currency"]),
                payee_type=PayeeType(req["payee"]["type"]),
                payee_account=str(req["payee"]["account"]),
                payee_name=req["payee"].get("name"),
                description=req.get("description"),
                notify_url=self._notify_url,
            )
        )
        answer = {
            "id": reference,
            "status": result.outcome.value,
            "channel_order_id": result.channel_order_id,
        }
        await _reply(send, 201, orjson.dumps(answer))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._redis = Redis.from_url(self._redis_url, max_connections=512)
                self._channel = AlipayChannel(self._settings)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._channel is not None:
                    await self._channel.aclose()
                if self._redis is not None:
                    await self._redis.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _reply(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON})
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--alipay-url", required=True)
    parser.add_argument("--alipay-data-dir", type=Path, required=True)
    parser.add_argument("--notify-url", default=None)
    args = parser.parse_args(argv)
    app = Floor(args.redis_url, args.alipay_url, args.alipay_data_dir, args.notify_url)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
