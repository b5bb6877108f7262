"""The merchants' webhook receiver for a chaos run, as its own process.

``python -m tests.chaos.receiver --port P --out deliveries.jsonl`` accepts every POST to
``/hook/<merchant_id>``, answers 204 and appends the delivery (the Standard Webhooks
headers and the exact body) as one JSON line; the checker verifies the signatures with the
public `standardwebhooks` library afterwards, with each merchant's secret.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aiohttp import web

HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def build_app(out: Path) -> web.Application:
    sink = out.open("a", encoding="utf-8")

    async def receive(request: web.Request) -> web.Response:
        body = await request.text()
        record = {
            "merchant_id": request.match_info["merchant_id"],
            "headers": {h: request.headers.get(h, "") for h in HEADERS},
            "body": body,
        }
        sink.write(json.dumps(record) + "\n")
        sink.flush()
        return web.Response(status=204)

    async def close(_app: web.Application) -> None:
        sink.close()

    app = web.Application()
    app.router.add_post("/hook/{merchant_id}", receive)
    app.router.add_get("/health", lambda _r: _ok())
    app.on_cleanup.append(close)
    return app


async def _ok() -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    web.run_app(build_app(args.out), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
