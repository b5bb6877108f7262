"""The OpenAPI document, completed from what the routes really do.

FastAPI documents what it can see in a signature; Paymux's handlers parse their own bodies
and answer problem documents, so this module adds, for every operation:

- ``security``: the merchant key and/or an operator (admin) key, read from the auth
  dependency the route uses (``merchant_scope`` / ``operator_role`` /
  ``merchant_or_operator`` in api/auth.py mark themselves);
- the ``Idempotency-Key`` header (required, 1-255 visible ASCII characters) when the route
  depends on :func:`paymux.api.idempotent.idempotency_key_header`;
- every error status the stack can answer, each an RFC 9457 ``Problem``: 400, 404, 422
  and 503 always; 401, 403 and 429 for authenticated routes; 413 and 415 for routes with
  a body; 409 for changes; 402 for money-moving routes;
- FastAPI's own 422 ``HTTPValidationError`` replaced by ``Problem`` (that is what we send).

Success schemas come from the route (``responses=ok(Model)``); a test fails on an empty one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from paymux.api.problems import PROBLEM_TYPE

MERCHANT_SCHEME = "merchantKey"
ADMIN_SCHEME = "adminKey"
IDEMPOTENCY_HEADER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "Unique per request (24 h, per merchant): a retry with the same key and "
    "body answers the stored response with `Idempotent-Replayed: true`.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details, with a stable `code`",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
ERROR_TITLES = {
    400: "Bad request (malformed URL, header or Idempotency-Key)",
    401: "No valid key",
    402: "Insufficient funds",
    403: "The key may not do this",
    404: "No such object (or not yours)",
    409: "Conflict (e.g. the same Idempotency-Key still in flight)",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Invalid request",
    429: "Rate limited",
    503: "A dependency (database, Redis, channel) is unavailable",
}
_BODY_METHODS = {"post", "put", "patch", "delete"}


def ok(model: type[BaseModel], status: int = 200, description: str = "OK") -> dict[int | str, Any]:
    """``responses=`` for a route whose handler returns a JSON ``Response`` built by hand."""
    return {status: {"model": model, "description": description}}


def _walk(dependant: Any) -> Iterator[Callable[..., Any]]:
    for dep in getattr(dependant, "dependencies", ()):
        if dep.call is not None:
            yield dep.call
        yield from _walk(dep)


def _auth_schemes(calls: list[Callable[..., Any]]) -> list[str]:
    """Auth dependencies (api/auth.py) carry ``paymux_scope`` (merchant keys) and/or
    ``paymux_role`` (operator keys)."""
    for call in calls:
        merchant = hasattr(call, "paymux_scope")
        operator = hasattr(call, "paymux_role")
        if merchant or operator:
            return [MERCHANT_SCHEME] * merchant + [ADMIN_SCHEME] * operator
    return []


def _api_routes(app: FastAPI) -> Iterator[tuple[str, set[str], APIRoute]]:
    """(path, methods, route) of every API route, included routers flattened."""
    try:  # recent FastAPI keeps included routers nested
        from fastapi.routing import iter_route_contexts  # noqa: PLC0415
    except ImportError:  # pragma: no cover - older FastAPI: routes are flat
        for r in app.routes:
            if isinstance(r, APIRoute):
                yield r.path_format, set(r.methods or ()), r
        return
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            yield str(context.path_format), set(context.methods or ()), route


def complete(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["schemas"].pop("HTTPValidationError", None)
    components["schemas"].pop("ValidationError", None)
    components.setdefault("securitySchemes", {}).update(
        {
            MERCHANT_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "description": "A merchant's secret key (sk_...)",
            },
            ADMIN_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "description": "An operator key (roles viewer, operator, admin; the "
                "bootstrap admin key is PAYMUX_ADMIN_KEY)",
            },
        }
    )
    paths = schema.get("paths", {})
    routes: dict[tuple[str, str], APIRoute] = {}
    for path_format, methods, route in _api_routes(app):
        for method in methods:
            routes[(path_format, method.lower())] = route
    for path, item in paths.items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            found = routes.get((path, method))
            calls = list(_walk(found.dependant)) if found is not None else []
            _complete_operation(path, method, operation, calls)
    return schema


def _complete_operation(
    path: str, method: str, operation: dict[str, Any], calls: list[Callable[..., Any]]
) -> None:
    from paymux.api.idempotent import idempotency_key_header  # noqa: PLC0415

    schemes = _auth_schemes(calls)
    if schemes:
        operation["security"] = [{scheme: []} for scheme in schemes]
    params = operation.setdefault("parameters", [])
    idempotent = idempotency_key_header in calls
    if idempotent:
        params[:] = [p for p in params if p.get("name", "").lower() != "idempotency-key"]
        params.append(dict(IDEMPOTENCY_HEADER))
    if not params:
        operation.pop("parameters")
    statuses = {400, 404, 422, 503}
    if schemes:
        statuses |= {401, 403, 429}
    if method in _BODY_METHODS:
        statuses |= {409, 413}
        if "requestBody" in operation:
            statuses.add(415)
    if idempotent:
        statuses |= {402, 409}
    responses = operation["responses"]
    described = [s for s, r in responses.items() if s.startswith("2") and not _empty(r)]
    for status in [s for s, r in responses.items() if s.startswith("2") and _empty(r)]:
        if described:  # FastAPI's default 200 next to the status the route really answers
            responses.pop(status)
    for declared in responses.values():
        content = declared.get("content", {})
        # FastAPI's default empty JSON schema, next to the content the route declared itself
        if len(content) > 1 and content.get("application/json", {}).get("schema") == {}:
            content.pop("application/json")
    problem = {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for status in sorted(statuses):
        declared = responses.get(str(status))
        if declared is None or status == 422:  # FastAPI's own 422 is not what we send
            responses[str(status)] = {"description": ERROR_TITLES[status], "content": problem}
        else:  # the route documented its own (e.g. a channel's refusal): problems too
            declared.setdefault("content", {}).update(problem)


def _empty(response: dict[str, Any]) -> bool:
    content = response.get("content")
    return content is not None and all(c.get("schema") in (None, {}) for c in content.values())


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            app.openapi_schema = complete(app, schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
