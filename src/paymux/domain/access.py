"""Who may do what: merchant key scopes and operator roles (pure rules, no I/O).

A merchant key is either unrestricted (every merchant scope) or restricted to a list of
scopes. An operator key has one role; roles are ordered, each includes the ones below it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# Every merchant scope a route can require. A route declares the one it needs (see
# api/auth.py); a new route with a new kind of object adds its scope here.
MERCHANT_SCOPES: frozenset[str] = frozenset(
    {
        "transfers:write",
        "transfers:read",
        "balance:read",
        "reports:read",
        "events:read",
        "webhooks:read",
        "webhooks:write",
        "keys:read",
        "keys:write",
    }
)
# An unrestricted key holds this pseudo-scope instead of a list.
ALL_SCOPES = "*"


class Role(StrEnum):
    viewer = "viewer"  # reads everything operators can see
    operator = "operator"  # + top-ups, fee rules, resolving discrepancies
    admin = "admin"  # + operators, keys, merchants, rate limits


_RANK = {Role.viewer: 0, Role.operator: 1, Role.admin: 2}


def role_allows(have: Role, need: Role) -> bool:
    return _RANK[have] >= _RANK[need]


class InvalidScopes(ValueError):
    pass


def normalise_scopes(scopes: Iterable[str] | None) -> tuple[str, ...]:
    """``None`` or ``["*"]``: unrestricted; otherwise a sorted list of known scopes.

    A write scope does not imply its read scope: a key that only creates transfers does not
    need to list them.
    """
    if scopes is None:
        return (ALL_SCOPES,)
    given = list(scopes)
    if given == [ALL_SCOPES]:
        return (ALL_SCOPES,)
    unknown = sorted(set(given) - MERCHANT_SCOPES)
    if unknown:
        raise InvalidScopes(f"unknown scope(s): {', '.join(unknown)}")
    if not given:
        raise InvalidScopes("a restricted key needs at least one scope")
    return tuple(sorted(set(given)))


def scope_allows(scopes: tuple[str, ...], need: str) -> bool:
    return ALL_SCOPES in scopes or need in scopes


@dataclass(frozen=True)
class ApiKey:
    """A key as stored (never the secret). ``role`` is the operator's role for operator
    keys; ``active_merchant`` is False once the merchant is deactivated."""

    id: str
    kind: str  # merchant | operator
    merchant_id: str | None
    operator_id: str | None
    name: str | None
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    role: Role | None = None
    holder_active: bool = True

    def usable_at(self, now: datetime) -> bool:
        if self.revoked_at is not None or not self.holder_active:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class Operator:
    id: str
    name: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None = None


@dataclass(frozen=True)
class RateLimit:
    per_second: int
    burst: int


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key that authenticated the request and what it may do."""

    key_id: str
    kind: str  # merchant | operator
    merchant_id: str | None
    scopes: tuple[str, ...] = (ALL_SCOPES,)
    role: Role | None = None

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"
