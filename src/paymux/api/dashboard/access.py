"""Signing in and out, the session every page depends on, and CSRF checks on every POST.

Operators sign in with an operator key (or the bootstrap admin key), merchants with one of
their secret keys; the key goes through the same authenticator as the API (rate limits,
failed-attempt blocking, revocation). It is checked once and dropped: the browser gets only
the opaque session cookie, and every page re-checks that the key that opened the session
is still usable, so revoking or rolling it ends the session. An operator's role and a
merchant key's scopes limit the pages and actions as they limit the API. Every POST
carries the session's CSRF token in a hidden field (and, when the browser sends one, an
Origin header that must be ours); the sign-in form, which has no session yet, uses a
double-submit cookie instead.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from paymux.api.auth import authenticate_token, gateway
from paymux.api.dashboard import sessions
from paymux.api.dashboard.render import (
    CsrfRejected,
    DashboardRoute,
    NotSignedIn,
    page,
    redirect,
)
from paymux.api.dashboard.sessions import Session
from paymux.domain.access import Principal, Role, role_allows
from paymux.service.access import ENV_ADMIN_KEY_ID, Authenticator
from paymux.service.errors import NotFound, ServiceError
from paymux.service.merchants import merchant_name
from paymux.store import keys_repo

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)


class RoleTooLow(ServiceError):
    status, code, title = 403, "role_missing", "Your role does not allow this"


async def _key_still_usable(request: Request, session: Session) -> bool:
    gw = gateway(request)
    if session.key_id == ENV_ADMIN_KEY_ID:
        return gw.settings.admin_key is not None
    key = await keys_repo.get_key(gw.db, session.key_id)
    return key is not None and key.usable_at(gw.clock())


async def signed_in(request: Request) -> Session:
    sid = request.cookies.get(sessions.COOKIE)
    session = await sessions.load(gateway(request), sid)
    if session is None:
        raise NotSignedIn
    if not await _key_still_usable(request, session):
        await sessions.destroy(gateway(request), sid)
        raise NotSignedIn
    request.state.dashboard_session = session
    request.state.dashboard_sid = sid
    return session


SessionDependency = Callable[..., Awaitable[Session]]


def operator(role: Role = Role.viewer) -> SessionDependency:
    """Operator pages answer a merchant as if they did not exist; a role below ``role``
    sees the page's refusal."""

    async def dependency(session: Session = Depends(signed_in)) -> Session:
        if not session.is_operator:
            raise NotFound("no such page")
        have = Role(session.operator_role or Role.viewer.value)
        if not role_allows(have, role):
            raise RoleTooLow(f"this needs the {role.value} role (yours: {have.value})")
        return session

    return dependency


def merchant(scope: str) -> SessionDependency:
    """A merchant's own pages; the key that signed in must hold ``scope``."""

    async def dependency(session: Session = Depends(signed_in)) -> Session:
        if session.is_operator:
            raise NotFound("this page is a merchant's own; open the merchant from Merchants")
        if not session.may(scope):
            raise RoleTooLow(f"the key you signed in with lacks the scope {scope!r}")
        return session

    return dependency


def reader(scope: str) -> SessionDependency:
    """Pages for both: any operator, or a merchant whose key holds ``scope``."""

    async def dependency(session: Session = Depends(signed_in)) -> Session:
        if not session.may(scope):
            raise RoleTooLow(f"the key you signed in with lacks the scope {scope!r}")
        return session

    return dependency


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # SameSite=Strict cookies already keep cross-site posts out
    ours = urlsplit(str(request.base_url))
    theirs = urlsplit(origin)
    return (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc)


async def checked_form(request: Request, session: Session = Depends(signed_in)) -> FormData:
    """The posted form, after the CSRF token and the Origin were checked."""
    form = await request.form(max_files=0, max_fields=50)
    if not _same_origin(request) or not sessions.csrf_ok(session, form.get("csrf_token")):
        raise CsrfRejected("the form was not sent from this dashboard page; reload and retry")
    return form


@router.get("")
async def home(request: Request) -> Response:
    sid = request.cookies.get(sessions.COOKIE)
    if await sessions.load(gateway(request), sid) is None:
        return redirect("/dashboard/login")
    return redirect("/dashboard/overview")


def _login_page(request: Request, *, error: str | None, status_code: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = page(
        request,
        "login.html",
        status_code=status_code,
        csrf_token=token,
        error=error,
        session=None,
    )
    sessions.set_cookie(response, request, sessions.LOGIN_CSRF_COOKIE, token, 1800)
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _login_page(request, error=None)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/login")
async def login(request: Request) -> Response:
    gw = gateway(request)
    form = await request.form(max_files=0, max_fields=10)
    cookie = request.cookies.get(sessions.LOGIN_CSRF_COOKIE, "")
    posted = form.get("csrf_token")
    if (
        not cookie
        or not isinstance(posted, str)
        or not hmac.compare_digest(cookie.encode(), posted.encode())
        or not _same_origin(request)
    ):
        raise CsrfRejected("the sign-in form expired; reload the page and sign in again")
    key = form.get("key")
    key = key.strip() if isinstance(key, str) else ""
    if not key or len(key) > 256:
        return _login_page(request, error="That key is not valid.", status_code=401)
    authenticator: Authenticator = request.app.state.merchant_auth
    try:
        auth = await authenticate_token(
            gw, authenticator, key, _client(request), money_moving=False
        )
    except ServiceError as exc:
        if exc.status != 401:
            raise  # e.g. 429 after too many failed attempts: the error page says so
        return _login_page(request, error=f"That key is not valid: {exc.detail}.", status_code=401)
    principal = auth.principal
    session_id, _ = await sessions.create(
        gw,
        role="operator" if principal.is_operator else "merchant",
        merchant_id=principal.merchant_id,
        name=await _display_name(request, principal),
        key_id=principal.key_id,
        operator_role=principal.role.value if principal.role else None,
        scopes=principal.scopes,
    )
    done: Response = redirect("/dashboard/overview")
    sessions.set_cookie(done, request, sessions.COOKIE, session_id, sessions.MAX_AGE_SECONDS)
    done.delete_cookie(sessions.LOGIN_CSRF_COOKIE, path=sessions.COOKIE_PATH)
    return done


async def _display_name(request: Request, principal: Principal) -> str:
    if principal.is_operator:
        return f"Operator ({principal.role.value if principal.role else 'viewer'})"
    mid = principal.merchant_id
    name = await merchant_name(gateway(request), mid) if mid else None
    return str(name or mid)


@router.post("/logout")
async def logout(
    request: Request, session: Session = Depends(signed_in), _: FormData = Depends(checked_form)
) -> Response:
    await sessions.destroy(gateway(request), request.cookies.get(sessions.COOKIE))
    response = redirect("/dashboard/login")
    response.delete_cookie(sessions.COOKIE, path=sessions.COOKIE_PATH)
    return response
