"""Templates, formatting filters, security headers and the dashboard's route class."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from paymux.domain.money import format_minor
from paymux.service.errors import ServiceError

# No script at all; styles and images only from us (charts are data: SVG images).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_env = Environment(
    loader=PackageLoader("paymux.api.dashboard", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def money(minor: int | None, currency: str = "CNY") -> str:
    if minor is None:
        return "—"
    text = format_minor(int(minor), currency)
    sign = "-" if text.startswith("-") else ""
    whole, _, frac = text.lstrip("-").partition(".")
    return f"{sign}{int(whole):,}" + (f".{frac}" if frac else "")


def age(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


_TONE = {
    "succeeded": "good",
    "failed": "bad",
    "returned": "bad",
    "processing": "wait",
    "pending": "wait",
    "requires_confirmation": "wait",
}


def tone(status: str | None) -> str:
    return _TONE.get(status or "", "neutral")


_env.filters["money"] = money
_env.filters["age"] = age
_env.filters["tone"] = tone


def qs(params: dict[str, str], **override: str) -> str:
    """A query string of the non-empty parameters, with ``override`` applied."""
    merged = {**params, **override}
    return urlencode({k: v for k, v in merged.items() if v})


_env.globals["qs"] = qs


def page(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    tz = ZoneInfo(request.app.state.gateway.settings.business_timezone)

    def local(ts: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return "—" if ts is None else ts.astimezone(tz).strftime(fmt)

    html = _env.get_template(template).render(
        request=request, local=local, timezone=tz.key, **context
    )
    return HTMLResponse(html, status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


class NotSignedIn(Exception):
    """No valid session: the page sends the browser to the sign-in form."""


class CsrfRejected(ServiceError):
    status, code, title = 403, "csrf_rejected", "Form expired"


class DashboardRoute(APIRoute):
    """Adds the security headers to every dashboard response, sends a browser without a
    session to sign in, and shows service errors as an HTML page, not problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except NotSignedIn:
                response = redirect("/dashboard/login")
            except ServiceError as exc:
                response = page(
                    request,
                    "error.html",
                    status_code=exc.status,
                    title=exc.title,
                    detail=exc.detail,
                    session=getattr(request.state, "dashboard_session", None),
                )
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return run
