"""Dashboard sessions: an opaque id in a cookie, the state in Redis.

The browser holds only a random session id (HttpOnly, SameSite=Strict, Secure under https,
scoped to /dashboard); the secret key typed at sign-in is checked once and never stored,
neither in the cookie nor in Redis (which keeps the role, the merchant id and the CSRF
token under the SHA-256 of the session id). Sessions expire after an idle period and
after an absolute lifetime; signing out deletes the state at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass

import orjson
from starlette.requests import Request
from starlette.responses import Response

from paymux.service.gateway import Gateway

COOKIE = "paymux_session"
LOGIN_CSRF_COOKIE = "paymux_login_csrf"
COOKIE_PATH = "/dashboard"
IDLE_SECONDS = 3600
MAX_AGE_SECONDS = 12 * 3600
FLASH_SECONDS = 300
_PREFIX = "paymux:dashboard:session:"
_FLASH_PREFIX = "paymux:dashboard:flash:"


@dataclass(frozen=True)
class Session:
    role: str  # operator | merchant
    merchant_id: str | None  # the merchant's id; None for operators
    name: str  # shown in the header
    csrf: str
    created: float  # unix seconds
    key_id: str = ""  # the key that signed in: revoking it ends the session
    operator_role: str | None = None  # viewer | operator | admin
    scopes: tuple[str, ...] = ("*",)  # a merchant key's scopes

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def may(self, scope: str) -> bool:
        """Whether a merchant session's key holds ``scope`` (operators: always)."""
        return self.is_operator or "*" in self.scopes or scope in self.scopes

    @property
    def scope(self) -> str | None:
        """The merchant id every query is limited to; None (everything) for operators."""
        return None if self.is_operator else self.merchant_id


def _key(session_id: str) -> str:
    return _PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


def _flash_key(session_id: str) -> str:
    return _FLASH_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


async def create(
    gw: Gateway,
    *,
    role: str,
    merchant_id: str | None,
    name: str,
    key_id: str,
    operator_role: str | None = None,
    scopes: tuple[str, ...] = ("*",),
) -> tuple[str, Session]:
    session_id = secrets.token_urlsafe(32)
    session = Session(
        role=role,
        merchant_id=merchant_id,
        name=name,
        csrf=secrets.token_urlsafe(32),
        created=time.time(),
        key_id=key_id,
        operator_role=operator_role,
        scopes=tuple(scopes),
    )
    await gw.redis.set(_key(session_id), orjson.dumps(asdict(session)), ex=IDLE_SECONDS)
    return session_id, session


async def load(gw: Gateway, session_id: str | None) -> Session | None:
    if not session_id or len(session_id) > 128:
        return None
    key = _key(session_id)
    raw = await gw.redis.get(key)
    if raw is None:
        return None
    data = orjson.loads(raw)
    session = Session(**{**data, "scopes": tuple(data.get("scopes", ("*",)))})
    if time.time() - session.created > MAX_AGE_SECONDS:
        await gw.redis.delete(key)
        return None
    await gw.redis.expire(key, IDLE_SECONDS)  # idle expiry slides with use
    return session


async def destroy(gw: Gateway, session_id: str | None) -> None:
    if session_id:
        await gw.redis.delete(_key(session_id), _flash_key(session_id))


async def flash(gw: Gateway, session_id: str, message: dict[str, str]) -> None:
    """A message for the next page only (e.g. a secret shown once)."""
    await gw.redis.set(_flash_key(session_id), orjson.dumps(message), ex=FLASH_SECONDS)


async def pop_flash(gw: Gateway, session_id: str) -> dict[str, str] | None:
    raw = await gw.redis.getdel(_flash_key(session_id))
    return None if raw is None else dict(orjson.loads(raw))


def csrf_ok(session: Session, token: object) -> bool:
    return isinstance(token, str) and hmac.compare_digest(token.encode(), session.csrf.encode())
