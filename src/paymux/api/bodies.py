"""Strict JSON request bodies: numbers never become floats, and nothing hostile gets in.

JSON is parsed with ``parse_float=Decimal`` and money fields are StrictInt, so ``10.5`` or
``1e3`` is a validation error, not a silently rounded amount. Before parsing, the body must
be declared JSON (415), fit the route's size limit (413; :mod:`paymux.api.guards` already
stopped it while streaming) and nest at most :data:`MAX_DEPTH` levels (the standard
library's parser recurses, so a 1,000-deep array would raise ``RecursionError``); an
object may not repeat a key (last-wins would let two readers see two different requests).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from paymux.api.guards import BODY_LIMIT_SCOPE_KEY, DEFAULT_BODY_LIMIT, is_json_media_type
from paymux.service.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)
MAX_BODY_BYTES = DEFAULT_BODY_LIMIT
MAX_DEPTH = 32
# Strings (with their escapes) are skipped whole; what is left are the brackets.
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw`` (strings are skipped)."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def parse_json(raw: bytes, *, limit: int = MAX_BODY_BYTES) -> Any:
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    if json_depth(raw) > MAX_DEPTH:
        raise InvalidRequest(f"request body nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(
            raw or b"{}",
            parse_float=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicate_keys,
        )
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidRequest("the request has invalid fields", errors=errors) from None


def require_json(request: Request, raw: bytes) -> None:
    if raw and not is_json_media_type(request.headers.get("content-type", "")):
        raise UnsupportedMediaType("send the body as JSON with 'Content-Type: application/json'")


async def read_json(request: Request) -> Any:
    """The request's JSON body, parsed with every check above (``{}`` when empty)."""
    raw = await request.body()
    require_json(request, raw)
    return parse_json(raw, limit=request.scope.get(BODY_LIMIT_SCOPE_KEY, MAX_BODY_BYTES))


async def read_model(request: Request, model: type[M]) -> tuple[M, Any]:
    """The validated model and the parsed JSON it came from."""
    data = await read_json(request)
    return validate(model, data), data


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI requestBody for routes that parse their own body (nested models inlined)."""
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(schema, schema.get("$defs", {}))}},
        }
    }
