"""/v1/transfer_batches: accept up to 1,000 transfers at once (JSON or CSV), read progress."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from paymux.api.auth import Caller, gateway, merchant_or_operator, merchant_scope
from paymux.api.bodies import body_schema, parse_json, validate
from paymux.api.guards import BATCH_BODY_LIMIT
from paymux.api.idempotent import idempotency_key_header, json_response, run_idempotent
from paymux.api.openapi import ok
from paymux.api.pagination import Cursor, Limit, page
from paymux.api.responses import TransferBatchItemList, TransferBatchOut
from paymux.api.schemas import TransferBatchCreate
from paymux.domain.batches import MAX_ITEMS
from paymux.service import batches as svc
from paymux.service.errors import InvalidRequest, ServiceError
from paymux.service.transfers import NewTransfer

router = APIRouter(prefix="/v1/transfer_batches", tags=["transfer batches"])

MAX_BATCH_BYTES = BATCH_BODY_LIMIT  # also enforced while streaming (api/guards.py)
CSV_COLUMNS = (
    "reference",
    "amount",
    "currency",
    "payee_type",
    "payee_account",
    "payee_name",
    "channel",
    "description",
)


_BODY_SCHEMA = body_schema(TransferBatchCreate)
_BODY_SCHEMA["requestBody"]["content"]["text/csv"] = {
    "schema": {"type": "string", "description": "header: " + ",".join(CSV_COLUMNS)}
}


class PayloadTooLarge(ServiceError):
    status, code, title = 413, "payload_too_large", "Request body too large"


class UnsupportedMediaType(ServiceError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


def _csv_items(raw: bytes) -> list[dict[str, Any]]:
    """CSV rows (header: the CSV_COLUMNS, extra columns refused) as JSON item bodies."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("the CSV body is not UTF-8") from None
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    unknown = [h for h in header if h not in CSV_COLUMNS]
    missing = [
        h
        for h in ("reference", "amount", "currency", "payee_type", "payee_account")
        if h not in header
    ]
    if unknown or missing:
        raise InvalidRequest(
            f"CSV header: unknown columns {unknown}, missing columns {missing}; "
            f"columns are {', '.join(CSV_COLUMNS)}"
        )
    items: list[dict[str, Any]] = []
    for row in reader:
        amount: Any = row["amount"]
        if isinstance(amount, str) and amount.isascii() and amount.isdigit():
            amount = int(amount)  # anything else stays text and fails validation
        item: dict[str, Any] = {
            "reference": row["reference"],
            "amount": amount,
            "currency": row["currency"],
            "payee": {"type": row["payee_type"], "account": row["payee_account"]},
        }
        if row.get("payee_name"):
            item["payee"]["name"] = row["payee_name"]
        for optional in ("channel", "description"):
            if row.get(optional):
                item[optional] = row[optional]
        items.append(item)
        if len(items) > MAX_ITEMS:
            break
    return items


def _new_item(item: Any) -> svc.NewItem:
    body = item.model_dump(mode="json", exclude={"reference"}, exclude_none=True)
    return svc.NewItem(
        reference=item.reference,
        transfer=NewTransfer(
            amount=item.amount,
            currency=item.currency,
            payee_type=item.payee.type,
            payee_account=item.payee.account,
            payee_name=item.payee.name,
            channel=item.channel,
            description=item.description,
            metadata=item.metadata or {},
        ),
        body=body,
    )


@router.post(
    "",
    status_code=202,
    summary="Create a batch of up to 1,000 transfers (requires Idempotency-Key)",
    description=(
        "Accepted at once (202, status `processing`) and worked off in the background with "
        "bounded per-channel concurrency and rate. Each item's `reference` is its idempotency "
        "key: a retried batch or a re-sent item never pays twice. Without `all_or_nothing` "
        "an item the balance cannot cover fails with `insufficient_funds` and the rest go "
        "on; with it the whole batch's amount + fees is held at once or the batch is "
        "refused with 402. Body: JSON, or `text/csv` with the header "
        "`reference,amount,currency,payee_type,payee_account,payee_name,channel,description`"
        " (then `?all_or_nothing=true`)."
    ),
    openapi_extra=_BODY_SCHEMA,
    responses={
        **ok(TransferBatchOut, 202, "Accepted (or the stored response of a replay)"),
        402: {"description": "all_or_nothing batch does not fit the balance"},
    },
)
async def create_batch(
    request: Request,
    caller: Caller = Depends(merchant_scope("transfers:write", money_moving=True)),
    key: str = Depends(idempotency_key_header),
    all_or_nothing: bool = Query(False, description="CSV bodies only (JSON: in the body)"),
) -> Response:
    gw = gateway(request)
    merchant_id = caller.merchant_id
    assert merchant_id is not None
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BATCH_BYTES:
        raise PayloadTooLarge(f"a batch body is at most {MAX_BATCH_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BATCH_BYTES:
        raise PayloadTooLarge(f"a batch body is at most {MAX_BATCH_BYTES} bytes")
    media = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if media == "text/csv":
        data: Any = {"items": _csv_items(raw), "all_or_nothing": all_or_nothing}
    elif media == "application/json":
        data = parse_json_batch(raw)
    else:
        raise UnsupportedMediaType("send application/json or text/csv")
    body = validate(TransferBatchCreate, data)
    payload = body.model_dump(mode="json")

    async def handler(fp: str) -> tuple[int, dict[str, Any], bool]:
        accepted = await svc.create_batch(
            gw,
            merchant_id,
            key,
            fp,
            [_new_item(i) for i in body.items],
            all_or_nothing=body.all_or_nothing,
        )
        view = await svc.get_batch(gw, accepted.batch.id, merchant_id)
        return 202, view, accepted.replayed

    return await run_idempotent(gw, merchant_id, key, payload, handler)


def parse_json_batch(raw: bytes) -> Any:
    """JSON with floats as Decimal (money stays exact), depth and duplicate keys checked;
    the batch size bound applies."""
    return parse_json(raw, limit=MAX_BATCH_BYTES)


@router.get(
    "/{batch_id}",
    responses=ok(TransferBatchOut),
    summary="Retrieve a batch: counts per status, totals, fees",
)
async def get_batch(
    batch_id: str,
    request: Request,
    caller: Caller = Depends(merchant_or_operator("transfers:read")),
) -> Response:
    view = await svc.get_batch(gateway(request), batch_id, caller.merchant_id)
    return json_response(200, view)


@router.get(
    "/{batch_id}/items",
    responses=ok(TransferBatchItemList),
    summary="A batch's items in request order, with their transfers",
)
async def list_batch_items(
    batch_id: str,
    request: Request,
    caller: Caller = Depends(merchant_or_operator("transfers:read")),
    limit: int = Limit,
    cursor: str | None = Cursor,
) -> Response:
    data, more = await svc.list_items(
        gateway(request), batch_id, caller.merchant_id, cursor=cursor, limit=limit
    )
    return json_response(200, page(data, more))
