"""/internal/stats: the gateway's own cost counters, for the benchmark (operator only).

Counters are per process: with several workers each answers for itself, so the response
carries the process id and a caller (bench/run.py) keeps one snapshot per process.
"""

from __future__ import annotations

import os

from fastapi import APIRouter, Depends, Request
from prometheus_client import Counter
from starlette.responses import Response

from paymux import metrics
from paymux.api.auth import Caller, admin_caller, gateway
from paymux.api.idempotent import json_response
from paymux.service.gateway import Gateway
from paymux.store.redis_client import CountingRedis

router = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)


def _total(counter: Counter, **labels: str) -> int:
    total = 0.0
    for family in counter.collect():
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            if all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return int(total)


def snapshot(gw: Gateway) -> dict[str, int]:
    return {
        "pid": os.getpid(),
        **gw.db.counters.snapshot(),
        "redis_round_trips": gw.redis.round_trips if isinstance(gw.redis, CountingRedis) else 0,
        "channel_calls": _total(metrics.channel_calls),
        "channel_sends": _total(metrics.channel_calls, kind="send"),
        "transfers_created": _total(metrics.transfers_created),
    }


@router.get("/stats", summary="Per-process cost counters (statements, round trips, calls)")
async def stats(request: Request, _: Caller = Depends(admin_caller)) -> Response:
    return json_response(200, snapshot(gateway(request)))
