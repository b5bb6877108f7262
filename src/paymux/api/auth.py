"""Bearer authentication and authorisation of every route.

A route declares what it needs with one dependency:

- ``Depends(merchant_scope("transfers:read"))``: a merchant key holding that scope (an
  unrestricted key holds every scope);
- ``Depends(operator_role(Role.operator))``: an operator key with at least that role
  (viewer < operator < admin; ``PAYMUX_ADMIN_KEY`` is the bootstrap admin);
- ``Depends(merchant_or_operator("transfers:read"))``: either (operators: viewer and up).

``money_moving=True`` makes the route fail closed (503) while the rate limiter (Redis) is
unreachable; such a route claims an Idempotency-Key, so a known key's revocation check and
rate limit are deferred into that claim (one Redis round trip, see :func:`pending_gate`).
The older names stay as strict defaults for routes that declare nothing:
``merchant_caller`` needs an unrestricted merchant key, ``admin_caller`` the admin role,
``any_caller`` either. :func:`authenticate_token` is the one function the API and the
dashboard share.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace

from fastapi import Request
from fastapi.security import HTTPBearer

from paymux import metrics, request_context
from paymux.domain.access import ALL_SCOPES, Principal, Role, role_allows, scope_allows
from paymux.service.access import (
    Authenticated,
    Authenticator,
    RateLimited,
    gw_gate,
)
from paymux.service.errors import ServiceError
from paymux.service.gateway import Gateway
from paymux.store.access_gate import Admission, GateRequest, owner_of

bearer = HTTPBearer(auto_error=False, description="A merchant secret key or an operator key")

POLICY = "per-key"  # the RateLimit-Policy name
STATE_HEADERS = "paymux_ratelimit_headers"  # request.state attribute read by the middleware
STATE_PENDING = "paymux_pending_gate"  # a deferred admission no claim has consumed yet


class Unauthorized(ServiceError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class Forbidden(ServiceError):
    status, code, title = 403, "forbidden", "Forbidden"


class ScopeMissing(ServiceError):
    status, code, title = 403, "scope_missing", "Key lacks the scope"


class RoleMissing(ServiceError):
    status, code, title = 403, "role_missing", "Operator role too low"


@dataclass(frozen=True)
class Caller:
    merchant_id: str | None  # None for operators
    principal: Principal | None = None

    @property
    def is_admin(self) -> bool:
        """True for any operator key (kept for routes written before roles existed)."""
        return self.merchant_id is None

    @property
    def is_operator(self) -> bool:
        return self.merchant_id is None

    @property
    def role(self) -> Role | None:
        return self.principal.role if self.principal else None


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def _challenge(exc: ServiceError) -> ServiceError:
    exc.headers = {"WWW-Authenticate": 'Bearer realm="paymux"'}
    if exc.status == 401 and exc.extra.get("reason") not in (None, "unknown"):
        exc.headers["WWW-Authenticate"] += ', error="invalid_token"'
    return exc


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _challenge(Unauthorized("send 'Authorization: Bearer <secret key>'"))
    return token.strip()


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass
class _Current:
    """The authenticated key of the current request (for refunding a replay and for a
    deferred admission) and the rate-limit headers the middleware will add."""

    gw: Gateway
    auth: Authenticated
    request: Request
    headers: dict[str, str]


_current: ContextVar[_Current | None] = ContextVar("paymux_authenticated", default=None)


def _rate_headers(auth: Authenticated) -> dict[str, str]:
    adm = auth.admission
    if adm is None:
        return {}
    window = max(1, math.ceil(adm.window_seconds))
    return {
        "RateLimit-Policy": f'"{POLICY}";q={adm.limit};w={window}',
        "RateLimit": f'"{POLICY}";r={adm.remaining};t={math.ceil(adm.reset_ms / 1000)}',
    }


async def authenticate_token(
    gw: Gateway,
    authenticator: Authenticator,
    token: str,
    client: str,
    *,
    money_moving: bool,
    defer: bool = False,
) -> Authenticated:
    """Authenticate ``token`` (rate limited, revocation checked); raises a ServiceError."""
    try:
        return await authenticator.authenticate(
            token, client, money_moving=money_moving, defer=defer
        )
    except ServiceError as exc:
        if exc.status == 401:
            raise _challenge(exc) from None
        if exc.status == 429 and "retry_after" in exc.extra:
            exc.headers = {"Retry-After": str(exc.extra["retry_after"])}
        raise


_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,200}")


def _adopt_request_id(request: Request) -> None:
    """The audit log records the request id; the request-id middleware normally sets it,
    else the client's X-Request-Id (visible ASCII only) is used."""
    if request_context.current_request_id() is None:
        given = request.headers.get("x-request-id", "")
        if _REQUEST_ID.fullmatch(given):
            request_context.request_id.set(given)


def _admitted(auth: Authenticated, headers: dict[str, str]) -> None:
    """Refuse with 429 when the key is over its rate limit; else record its headers."""
    headers.clear()
    headers.update(_rate_headers(auth))
    if auth.admission is not None and not auth.admission.allowed:
        metrics.rate_limited.inc()
        retry = max(1, math.ceil(auth.admission.retry_after_ms / 1000))
        exc = RateLimited(
            f"this key allows {auth.limit.per_second} requests per second "
            f"(bursts of {auth.limit.burst}); retry in {retry} s",
            retry_after=retry,
        )
        exc.headers = {**headers, "Retry-After": str(retry)}
        raise exc


async def _authenticate(request: Request, money_moving: bool) -> Principal:
    _adopt_request_id(request)
    gw = gateway(request)
    authenticator: Authenticator = request.app.state.merchant_auth
    auth = await authenticate_token(
        gw,
        authenticator,
        _token(request),
        _client(request),
        money_moving=money_moving,
        defer=money_moving,
    )
    headers: dict[str, str] = {}
    if auth.gate is None:
        _admitted(auth, headers)
    setattr(request.state, STATE_HEADERS, headers)
    current = _Current(gw, auth, request, headers)
    _current.set(current)
    if auth.gate is not None:
        setattr(request.state, STATE_PENDING, current)
    return auth.principal


@dataclass(frozen=True)
class PendingGate:
    """A deferred admission: ``request`` goes into the idempotency claim; its answer comes
    back through :meth:`admitted`, or :meth:`reauthenticate` when the key changed."""

    request: GateRequest
    _current: _Current

    def admitted(self, admission: Admission) -> None:
        cur = self._current
        cur.auth = replace(cur.auth, admission=admission, gate=None)
        setattr(cur.request.state, STATE_PENDING, None)
        _admitted(cur.auth, cur.headers)

    async def reauthenticate(self) -> None:
        """The key changed since it was cached (revoked, rolled, new limit): authenticate
        again in full, raising 401/429 as any request would."""
        cur = self._current
        authenticator: Authenticator = cur.request.app.state.merchant_auth
        auth = await authenticate_token(
            cur.gw,
            authenticator,
            _token(cur.request),
            _client(cur.request),
            money_moving=True,
        )
        cur.auth = auth
        setattr(cur.request.state, STATE_PENDING, None)
        _admitted(auth, cur.headers)


async def charge_unclaimed(state: dict[str, object]) -> None:
    """A request that deferred its admission but never reached the claim (refused by
    validation first) still counts against its key's rate limit: charge it now. Nothing
    moved, so the revocation check it skipped guarded nothing."""
    cur = state.get(STATE_PENDING)
    if not isinstance(cur, _Current) or cur.auth.gate is None:
        return
    state[STATE_PENDING] = None
    principal = cur.auth.principal
    try:
        await gw_gate(cur.gw).admit(
            owner_of(principal.merchant_id),
            principal.key_id,
            cur.auth.limit.per_second,
            cur.auth.limit.burst,
        )
    except Exception:  # best effort accounting; the response is already sent
        return


def pending_gate() -> PendingGate | None:
    """The current request's deferred admission, if its authentication deferred one."""
    cur = _current.get()
    if cur is None or cur.auth.gate is None:
        return None
    return PendingGate(cur.auth.gate, cur)


async def refund_replay() -> None:
    """A replayed idempotent response does not count against the rate limit."""
    cur = _current.get()
    if cur is None or cur.auth.admission is None:
        return
    try:
        await gw_gate(cur.gw).refund(
            owner_of(cur.auth.principal.merchant_id),
            cur.auth.principal.key_id,
            cur.auth.limit.per_second,
        )
    except Exception:  # best effort: never fail a replay over its accounting
        return


Dependency = Callable[[Request], Awaitable[Caller]]


def merchant_scope(scope: str, *, money_moving: bool = False) -> Dependency:
    async def dependency(request: Request) -> Caller:
        principal = await _authenticate(request, money_moving)
        if principal.is_operator:
            raise Forbidden(
                "this endpoint is for merchant keys", code_override="merchant_key_required"
            )
        if not scope_allows(principal.scopes, scope):
            raise ScopeMissing(
                f"this key is restricted and lacks the scope {scope!r}"
                if scope != ALL_SCOPES
                else "this endpoint needs an unrestricted key",
                required_scope=scope,
            )
        return Caller(principal.merchant_id, principal)

    dependency.paymux_scope = scope  # type: ignore[attr-defined]
    return dependency


def operator_role(role: Role, *, money_moving: bool = False) -> Dependency:
    async def dependency(request: Request) -> Caller:
        principal = await _authenticate(request, money_moving)
        if not principal.is_operator:
            raise Forbidden(
                "this endpoint needs an operator key", code_override="operator_key_required"
            )
        assert principal.role is not None
        if not role_allows(principal.role, role):
            raise RoleMissing(
                f"this endpoint needs the {role.value} role (yours: {principal.role.value})",
                required_role=role.value,
            )
        return Caller(None, principal)

    dependency.paymux_role = role  # type: ignore[attr-defined]
    return dependency


def merchant_or_operator(
    scope: str, role: Role = Role.viewer, *, money_moving: bool = False
) -> Dependency:
    async def dependency(request: Request) -> Caller:
        principal = await _authenticate(request, money_moving)
        if principal.is_operator:
            assert principal.role is not None
            if not role_allows(principal.role, role):
                raise RoleMissing(
                    f"this endpoint needs the {role.value} role", required_role=role.value
                )
            return Caller(None, principal)
        if not scope_allows(principal.scopes, scope):
            raise ScopeMissing(
                f"this key is restricted and lacks the scope {scope!r}", required_scope=scope
            )
        return Caller(principal.merchant_id, principal)

    dependency.paymux_scope = scope  # type: ignore[attr-defined]
    dependency.paymux_role = role  # type: ignore[attr-defined]
    return dependency


# Strict defaults for routes that have not declared a scope or role.
merchant_caller = merchant_scope(ALL_SCOPES)
admin_caller = operator_role(Role.admin)
any_caller = merchant_or_operator(ALL_SCOPES)
