"""Bearer authentication: a merchant's secret key or the operator's admin key."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request
from fastapi.security import HTTPBearer

from paymux.service.errors import ServiceError
from paymux.service.gateway import Gateway
from paymux.service.merchants import MerchantAuth

bearer = HTTPBearer(auto_error=False, description="A merchant secret key or the admin key")


class Unauthorized(ServiceError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class Forbidden(ServiceError):
    status, code, title = 403, "forbidden", "Forbidden"


@dataclass(frozen=True)
class Caller:
    merchant_id: str | None  # None for the operator (admin key)

    @property
    def is_admin(self) -> bool:
        return self.merchant_id is None


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <secret key>'")
    return token.strip()


async def _resolve(request: Request) -> Caller:
    token = _token(request)
    gw = gateway(request)
    admin = gw.settings.admin_key
    if admin is not None and hmac.compare_digest(token.encode(), admin.get_secret_value().encode()):
        return Caller(merchant_id=None)
    auth: MerchantAuth = request.app.state.merchant_auth
    merchant_id = await auth.authenticate(token)
    if merchant_id is None:
        raise Unauthorized("the key is not valid")
    return Caller(merchant_id=merchant_id)


async def any_caller(request: Request) -> Caller:
    return await _resolve(request)


async def merchant_caller(request: Request) -> Caller:
    caller = await _resolve(request)
    if caller.is_admin:
        raise Forbidden("this endpoint is for merchant keys")
    return caller


async def admin_caller(request: Request) -> Caller:
    caller = await _resolve(request)
    if not caller.is_admin:
        raise Forbidden("this endpoint needs the admin key")
    return caller
