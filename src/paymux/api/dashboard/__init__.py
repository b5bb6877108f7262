"""The operator and merchant dashboard, served by the gateway under /dashboard.

Server-rendered (Jinja2 templates and one stylesheet shipped as package data), no script;
charts are server-side SVG. See docs/DASHBOARD.md.
"""

from __future__ import annotations

from fastapi import APIRouter

from paymux.api.dashboard import (
    access,
    merchant_pages,
    operator_pages,
    pages,
    statement_pages,
)

router = APIRouter()
for _module in (access, pages, operator_pages, merchant_pages, statement_pages):
    router.include_router(_module.router)

__all__ = ["router"]
