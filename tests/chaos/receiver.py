"""The merchants' webhook receiver for a chaos run, as its own process.

``python -m tests.chaos.receiver --port P --out deliveries.jsonl`` accepts every POST to
``/hook/<merchant_id>``, verifies its Standard Webhooks signature at once with the public
`standardwebhooks` library and the merchant's secret (given earlier by the runner as
``POST /secrets/<merchant_id>``), answers 204 and appends the delivery (headers, exact body
and the verdict) as one JSON line for the checker. Verified on receipt because the library
rejects a timestamp more than 5 minutes old: checked at the end, a long run's deliveries
would all fail.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aiohttp import web

from tests.chaos.checks import verify_on_receipt

HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def build_app(out: Path) -> web.Application:
    sink = out.open("a", encoding="utf-8")
    secrets: dict[str, str] = {}

    async def add_secret(request: web.Request) -> web.Response:
        secrets[request.match_info["merchant_id"]] = (await request.text()).strip()
        return web.Response(status=204)

    async def receive(request: web.Request) -> web.Response:
        body = await request.text()
        merchant_id = request.match_info["merchant_id"]
        headers = {h: request.headers.get(h, "") for h in HEADERS}
        record = {
            "merchant_id": merchant_id,
            "headers": headers,
            "body": body,
            "error": verify_on_receipt(secrets.get(merchant_id), body, headers),
        }
        sink.write(json.dumps(record) + "\n")
        sink.flush()
        return web.Response(status=204)

    async def close(_app: web.Application) -> None:
        sink.close()

    app = web.Application()
    app.router.add_post("/hook/{merchant_id}", receive)
    app.router.add_post("/secrets/{merchant_id}", add_secret)
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
