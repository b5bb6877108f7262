"""API keys (create, list, revoke, roll), operators, per-merchant rate limits, and the
authentication of a bearer key — every change recorded in the audit log.

Authentication keeps verified keys in an in-process cache, but never trusts it blindly:
each request runs one Redis script (:class:`paymux.store.access_gate.AccessGate`) that returns
the key's current version together with the rate-limit decision. Revoking, rolling or
changing a key writes a new random version after its commit, so on every worker the next
request with that key misses the cache and re-reads the database: revocation takes effect
at once, and a cached key costs no database statement. A key whose version Redis lost
(flush, failover) gets a fresh one, which no cache holds: a miss, answered from the
database, never a stale "allow". If Redis cannot be reached, every request re-reads the
database (revocation stays exact) and rate limiting fails closed for money-moving routes.
The database is read with ONE statement (key, holder, rate limit): twice for a key this
process has not seen (before and after learning its version), once when the version
changed or the copy is older than ``auth_cache_seconds``, otherwise never.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError

from paymux import metrics
from paymux.domain.access import (
    ALL_SCOPES,
    ApiKey,
    Operator,
    Principal,
    RateLimit,
    Role,
    normalise_scopes,
)
from paymux.domain.ids import new_id
from paymux.request_context import current_request_id
from paymux.service.errors import NotFound, ServiceError, ServiceUnavailable
from paymux.service.gateway import Gateway
from paymux.service.views import iso
from paymux.store import audit_repo, keys_repo, merchants_repo
from paymux.store.access_gate import AccessGate, Admission, GateRequest, gate_request, owner_of
from paymux.store.audit_repo import AuditDraft
from paymux.store.db import WriteTx

log = logging.getLogger(__name__)

ENV_ADMIN_KEY_ID = "key_admin_env"  # PAYMUX_ADMIN_KEY: the bootstrap admin
PREFIX_LENGTH = 11  # "sk_" + 8 characters: enough to tell keys apart, useless to guess


class AuthFailed(ServiceError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class TooManyFailures(ServiceError):
    status, code, title = 429, "too_many_failed_authentications", "Too many failed attempts"


class RateLimited(ServiceError):
    status, code, title = 429, "rate_limited", "Too many requests"


class RateLimiterUnavailable(ServiceUnavailable):
    """Redis (rate limits) is unreachable: one outage answer, 503 service_unavailable with
    Retry-After, like every other dependency outage (docs/RELIABILITY.md)."""


class KeyConflict(ServiceError):
    status, code, title = 409, "key_state_conflict", "Conflict"


def hash_key(key: str) -> str:
    # Keys are 256-bit random, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(key.encode()).hexdigest()


def new_secret(kind: str) -> str:
    return ("sk_" if kind == "merchant" else "ok_") + secrets.token_urlsafe(32)


def key_prefix(secret: str) -> str:
    return secret[:PREFIX_LENGTH]


# ---------------------------------------------------------------- views


def key_view(key: ApiKey, last_used: int | None = None) -> dict[str, Any]:
    """What a list shows: the prefix and the last use, never the secret or its hash."""
    view: dict[str, Any] = {
        "id": key.id,
        "object": "api_key",
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
        "revoked_at": iso(key.revoked_at),
        "last_used_at": (
            iso(datetime.fromtimestamp(last_used).astimezone()) if last_used else None
        ),
    }
    if key.kind == "merchant":
        view["merchant_id"] = key.merchant_id
    else:
        view["operator_id"] = key.operator_id
        view["role"] = key.role.value if key.role else None
    return view


def operator_view(op: Operator) -> dict[str, Any]:
    return {
        "id": op.id,
        "object": "operator",
        "name": op.name,
        "role": op.role.value,
        "created_at": iso(op.created_at),
        "disabled_at": iso(op.disabled_at),
    }


# ---------------------------------------------------------------- audit


def audit_draft(
    actor: Principal | None,
    action: str,
    object_type: str,
    object_id: str | None,
    merchant_id: str | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> AuditDraft:
    """An audit record of ``actor``'s change; ``before``/``after`` must hold no secret.

    Call it on the event loop, or pass ``request_id``: the writer thread of a
    :meth:`Database.run_write` does not see the request's context variables."""
    return AuditDraft(
        actor_key_id=actor.key_id if actor else None,
        actor_kind=actor.kind if actor else "system",
        actor_role=actor.role.value if actor and actor.role else None,
        actor_merchant_id=actor.merchant_id if actor else None,
        action=action,
        object_type=object_type,
        object_id=object_id,
        merchant_id=merchant_id,
        before=before,
        after=after,
        request_id=request_id or current_request_id(),
    )


# ---------------------------------------------------------------- keys


def _new_key(
    kind: str,
    *,
    now: datetime,
    merchant_id: str | None = None,
    operator_id: str | None = None,
    name: str | None = None,
    scopes: tuple[str, ...] = (ALL_SCOPES,),
) -> tuple[ApiKey, str]:
    secret = new_secret(kind)
    key = ApiKey(
        id=new_id("key"),
        kind=kind,
        merchant_id=merchant_id,
        operator_id=operator_id,
        name=name,
        prefix=key_prefix(secret),
        scopes=scopes,
        created_at=now,
    )
    return key, secret


async def create_merchant_key(
    gw: Gateway,
    actor: Principal,
    merchant_id: str,
    *,
    name: str | None,
    scopes: list[str] | None,
) -> tuple[ApiKey, str]:
    """A new key for ``merchant_id``; the secret is returned here only."""
    rid = current_request_id()  # read here: write() runs on the writer thread
    if not await merchants_repo.exists(gw.db, merchant_id):
        raise NotFound(f"no merchant {merchant_id}")
    key, secret = _new_key(
        "merchant",
        now=gw.clock(),
        merchant_id=merchant_id,
        name=name,
        scopes=normalise_scopes(scopes),
    )

    def write(conn: WriteTx) -> None:
        keys_repo.insert_key(conn, key, hash_key(secret), actor.key_id)
        audit_repo.append(
            conn,
            audit_draft(
                actor,
                "api_key.create",
                "api_key",
                key.id,
                merchant_id,
                after=key_view(key),
                request_id=rid,
            ),
            gw.clock(),
        )

    await gw.db.run_write(write)
    return key, secret


async def list_keys(
    gw: Gateway, *, merchant_id: str | None = None, operator_id: str | None = None
) -> list[dict[str, Any]]:
    keys = await keys_repo.list_keys(gw.db, merchant_id=merchant_id, operator_id=operator_id)
    try:
        used = await gw_gate(gw).last_used([(owner_of(k.merchant_id), k.id) for k in keys])
    except RedisError:
        used = {}
    return [key_view(k, used.get(k.id)) for k in keys]


async def _change_key(
    gw: Gateway,
    actor: Principal,
    key_id: str,
    merchant_id: str | None,
    action: str,
    change: Callable[[WriteTx, ApiKey], None],
) -> ApiKey:
    """Run ``change(conn, key)`` on a key (of ``merchant_id`` when given), audit it, and
    invalidate every worker's cached copy."""
    rid = current_request_id()  # read here: write() runs on the writer thread

    def write(conn: WriteTx) -> tuple[ApiKey, ApiKey]:
        before = keys_repo.get_key_sync(conn, key_id)
        if before is None or (merchant_id is not None and before.merchant_id != merchant_id):
            raise NotFound(f"no API key {key_id}")
        change(conn, before)
        after = keys_repo.get_key_sync(conn, key_id)
        assert after is not None
        audit_repo.append(
            conn,
            audit_draft(
                actor,
                action,
                "api_key",
                key_id,
                before.merchant_id,
                before=key_view(before),
                after=key_view(after),
                request_id=rid,
            ),
            gw.clock(),
        )
        return before, after

    _, after = await gw.db.run_write(write)
    # After the commit: a worker that reloads now reads the new state.
    await gw_gate(gw).bump_version(owner_of(after.merchant_id), key_id)
    return after


async def revoke_key(
    gw: Gateway, actor: Principal, key_id: str, *, merchant_id: str | None
) -> ApiKey:
    now = gw.clock()

    def change(conn: WriteTx, key: ApiKey) -> None:
        if key.id == ENV_ADMIN_KEY_ID:
            raise KeyConflict("the bootstrap admin key is revoked by removing PAYMUX_ADMIN_KEY")
        keys_repo.revoke(conn, key.id, now)

    return await _change_key(gw, actor, key_id, merchant_id, "api_key.revoke", change)


async def roll_key(
    gw: Gateway,
    actor: Principal,
    key_id: str,
    *,
    merchant_id: str | None,
    overlap_seconds: int,
) -> tuple[ApiKey, ApiKey, str]:
    """A new key with the same holder, name and scopes; the old one keeps working for
    ``overlap_seconds`` (0: stops at once). Returns (old, new, new secret)."""
    now = gw.clock()
    old = await keys_repo.get_key(gw.db, key_id)
    if old is None or (merchant_id is not None and old.merchant_id != merchant_id):
        raise NotFound(f"no API key {key_id}")
    if not old.usable_at(now):
        raise KeyConflict("only a usable key can be rolled")
    new, secret = _new_key(
        old.kind,
        now=now,
        merchant_id=old.merchant_id,
        operator_id=old.operator_id,
        name=old.name,
        scopes=old.scopes,
    )
    expires = now + timedelta(seconds=overlap_seconds)

    def change(conn: WriteTx, key: ApiKey) -> None:
        keys_repo.insert_key(conn, new, hash_key(secret), actor.key_id)
        if overlap_seconds == 0:
            keys_repo.revoke(conn, key.id, now)
        else:
            keys_repo.set_expiry(conn, key.id, expires)

    rolled = await _change_key(gw, actor, key_id, merchant_id, "api_key.roll", change)
    return rolled, new, secret


# ---------------------------------------------------------------- operators


async def create_operator(
    gw: Gateway, actor: Principal, name: str, role: Role
) -> tuple[Operator, ApiKey, str]:
    rid = current_request_id()  # read here: write() runs on the writer thread
    now = gw.clock()
    op = Operator(id=new_id("op"), name=name, role=role, created_at=now)
    key, secret = _new_key("operator", now=now, operator_id=op.id, name="default")
    key = ApiKey(**{**key.__dict__, "role": role})

    def write(conn: WriteTx) -> None:
        keys_repo.insert_operator(conn, op)
        keys_repo.insert_key(conn, key, hash_key(secret), actor.key_id)
        audit_repo.append(
            conn,
            audit_draft(
                actor,
                "operator.create",
                "operator",
                op.id,
                None,
                after=operator_view(op),
                request_id=rid,
            ),
            now,
        )

    await gw.db.run_write(write)
    return op, key, secret


async def create_operator_key(
    gw: Gateway, actor: Principal, operator_id: str, name: str | None
) -> tuple[ApiKey, str]:
    rid = current_request_id()  # read here: write() runs on the writer thread
    now = gw.clock()
    key, secret = _new_key("operator", now=now, operator_id=operator_id, name=name)

    def write(conn: WriteTx) -> Operator:
        op = keys_repo.get_operator_sync(conn, operator_id)
        if op is None:
            raise NotFound(f"no operator {operator_id}")
        keys_repo.insert_key(conn, key, hash_key(secret), actor.key_id)
        audit_repo.append(
            conn,
            audit_draft(
                actor,
                "api_key.create",
                "api_key",
                key.id,
                None,
                after=key_view(key),
                request_id=rid,
            ),
            now,
        )
        return op

    op = await gw.db.run_write(write)
    return ApiKey(**{**key.__dict__, "role": op.role}), secret


async def update_operator(
    gw: Gateway, actor: Principal, operator_id: str, *, role: Role | None, disable: bool
) -> Operator:
    rid = current_request_id()  # read here: write() runs on the writer thread
    now = gw.clock()

    def write(conn: WriteTx) -> Operator:
        before = keys_repo.get_operator_sync(conn, operator_id)
        if before is None:
            raise NotFound(f"no operator {operator_id}")
        keys_repo.update_operator(
            conn, operator_id, role=role, disabled_at=now if disable else None
        )
        after = keys_repo.get_operator_sync(conn, operator_id)
        assert after is not None
        audit_repo.append(
            conn,
            audit_draft(
                actor,
                "operator.update",
                "operator",
                operator_id,
                None,
                before=operator_view(before),
                after=operator_view(after),
                request_id=rid,
            ),
            now,
        )
        return after

    after = await gw.db.run_write(write)
    for key in await keys_repo.list_keys(gw.db, operator_id=operator_id):
        await gw_gate(gw).bump_version(owner_of(key.merchant_id), key.id)
    return after


async def list_operators(gw: Gateway) -> list[Operator]:
    return await keys_repo.list_operators(gw.db)


# ---------------------------------------------------------------- rate limits


def default_limit(gw: Gateway) -> RateLimit:
    return RateLimit(gw.settings.rate_limit_per_second, gw.settings.rate_limit_burst)


async def rate_limit_of(gw: Gateway, merchant_id: str) -> RateLimit:
    return await keys_repo.get_rate_limit(gw.db, merchant_id) or default_limit(gw)


async def set_rate_limit(
    gw: Gateway, actor: Principal, merchant_id: str, limit: RateLimit
) -> RateLimit:
    rid = current_request_id()  # read here: write() runs on the writer thread
    if not await merchants_repo.exists(gw.db, merchant_id):
        raise NotFound(f"no merchant {merchant_id}")
    now = gw.clock()

    def write(conn: WriteTx) -> None:
        before = keys_repo.get_rate_limit_sync(conn, merchant_id) or default_limit(gw)
        keys_repo.put_rate_limit(conn, merchant_id, limit, now)
        audit_repo.append(
            conn,
            audit_draft(
                actor,
                "merchant.rate_limit.update",
                "merchant",
                merchant_id,
                merchant_id,
                before=before.__dict__,
                after=limit.__dict__,
                request_id=rid,
            ),
            now,
        )

    await gw.db.run_write(write)
    for key_id in await keys_repo.key_ids_of_merchant(gw.db, merchant_id):
        await gw_gate(gw).bump_version(merchant_id, key_id)  # cached keys carry the old limit
    return limit


# ---------------------------------------------------------------- authentication


def gw_gate(gw: Gateway) -> AccessGate:
    gate: AccessGate | None = getattr(gw, "access_gate", None)
    if gate is None:
        gate = AccessGate(gw.redis)
        gw.access_gate = gate  # type: ignore[attr-defined]
    return gate


@dataclass(frozen=True)
class _Cached:
    key: ApiKey
    limit: RateLimit
    version: str
    loaded: float  # monotonic


@dataclass(frozen=True)
class Authenticated:
    principal: Principal
    limit: RateLimit
    admission: Admission | None  # None: Redis unreachable (or deferred), not rate limited
    # Deferred admission: the revocation check and rate limit run inside the idempotency
    # claim (one round trip); set only when the caller asked for it and the key's version
    # is already cached.
    gate: GateRequest | None = None


class Authenticator:
    """Bearer secret -> :class:`Principal`, rate limited, revocation checked every time."""

    def __init__(self, gw: Gateway) -> None:
        self._gw = gw
        self._cache: dict[str, _Cached] = {}
        admin = gw.settings.admin_key
        self._admin_digest = hash_key(admin.get_secret_value()) if admin is not None else None

    @property
    def gate(self) -> AccessGate:
        return gw_gate(self._gw)

    async def _load(self, digest: str) -> tuple[ApiKey, RateLimit] | None:
        """The key and its rate limit from the database: one statement."""
        found = await keys_repo.find_by_hash_with_limit(self._gw.db, digest)
        if found is None:
            return None
        key, own_limit = found  # operator keys have none: no merchant
        return key, own_limit or default_limit(self._gw)

    async def _failed(self, client: str, token: str, why: str) -> ServiceError:
        metrics.auth_failures.labels(why).inc()
        s = self._gw.settings
        wait = 0
        # Only unknown keys are guesses: a revoked or rolled-out key still in some client's
        # configuration must not lock that client's address out of its new key.
        try:
            if why == "unknown":
                wait = await self.gate.failures_block(
                    client,
                    key_prefix(token),
                    s.auth_failure_limit,
                    s.auth_failure_window_seconds,
                    record=True,
                )
        except RedisError:
            wait = 0
        if wait:
            return TooManyFailures(
                "too many failed authentications from this address or for this key prefix",
                retry_after=wait,
            )
        detail = {
            "unknown": "the key is not valid",
            "revoked": "the key has been revoked",
            "expired": "the key has expired (it was rolled)",
            "disabled": "the key's holder is deactivated",
        }[why]
        return AuthFailed(detail, reason=why)

    async def authenticate(
        self, token: str, client: str, *, money_moving: bool, defer: bool = False
    ) -> Authenticated:
        """``defer``: the caller will claim an idempotency key with the returned ``gate``,
        which checks revocation and the rate limit in that same round trip."""
        digest = hash_key(token)
        gw = self._gw
        if self._admin_digest is not None and hmac.compare_digest(digest, self._admin_digest):
            principal = Principal(ENV_ADMIN_KEY_ID, "operator", None, role=Role.admin)
            limit = default_limit(gw)
            return Authenticated(
                principal, limit, await self._admit(None, principal.key_id, limit, money_moving)
            )
        cached = self._cache.get(digest)
        fresh = cached is not None and (
            time.monotonic() - cached.loaded < gw.settings.auth_cache_seconds
        )
        if cached is None:
            # An unknown key: refuse early when this client is already blocked, so a
            # guesser cannot make us read the database.
            try:
                wait = await self.gate.failures_block(
                    client,
                    key_prefix(token),
                    gw.settings.auth_failure_limit,
                    gw.settings.auth_failure_window_seconds,
                    record=False,
                )
            except RedisError:
                wait = 0
            if wait:
                metrics.auth_failures.labels("blocked").inc()
                raise TooManyFailures(
                    "too many failed authentications from this address or for this key prefix",
                    retry_after=wait,
                )
            # The key's id and owner name its Redis records; the version is unknown ("")
            # until Redis answers, so this copy is read again below, after the version.
            loaded = await self._load(digest)
            if loaded is None:
                raise await self._failed(client, token, "unknown")
            cached = _Cached(loaded[0], loaded[1], "", time.monotonic())
        elif defer and fresh and cached.version and cached.key.usable_at(gw.clock()):
            key = cached.key
            principal = Principal(key.id, key.kind, key.merchant_id, key.scopes, key.role)
            gate = gate_request(
                owner_of(key.merchant_id),
                key.id,
                cached.version,
                cached.limit.per_second,
                cached.limit.burst,
            )
            return Authenticated(principal, cached.limit, None, gate)
        admission = await self._admit(
            cached.key.merchant_id, cached.key.id, cached.limit, money_moving
        )
        if admission is None:
            # Redis unreachable: the cache cannot be validated, so read the database.
            self._cache.pop(digest, None)
            loaded = await self._load(digest)
            if loaded is None:
                raise await self._failed(client, token, "unknown")
            cached = _Cached(loaded[0], loaded[1], "", time.monotonic())
        elif admission.version != cached.version or not fresh:
            # Changed since we cached it, just loaded (version unknown until now), or held
            # longer than auth_cache_seconds: read it (again) AFTER learning the version. A
            # revocation writes a new version after its commit, so this read sees any
            # revocation up to that version, and a later one changes the version again: a
            # stale key is never cached as current. A version is random, never reused, and
            # a key without one (Redis lost it) gets a new one: a miss, never a stale hit.
            loaded = await self._load(digest)
            if loaded is None:
                self._cache.pop(digest, None)
                raise await self._failed(client, token, "unknown")
            cached = _Cached(loaded[0], loaded[1], admission.version, time.monotonic())
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = cached
        key = cached.key
        if not key.usable_at(gw.clock()):
            why = (
                "revoked"
                if key.revoked_at is not None
                else "disabled"
                if not key.holder_active
                else "expired"
            )
            raise await self._failed(client, token, why)
        principal = Principal(key.id, key.kind, key.merchant_id, key.scopes, key.role)
        return Authenticated(principal, cached.limit, admission)

    async def _admit(
        self, merchant_id: str | None, key_id: str, limit: RateLimit, money_moving: bool
    ) -> Admission | None:
        try:
            return await self.gate.admit(
                owner_of(merchant_id), key_id, limit.per_second, limit.burst
            )
        except RedisError:
            metrics.rate_limiter_unavailable.inc()
            if money_moving:
                raise RateLimiterUnavailable(
                    "the rate limiter is unreachable; money-moving requests are refused "
                    "until it is back"
                ) from None
            log.warning("rate limiter unreachable: request %s not rate limited", key_id)
            return None


async def record(gw: Gateway, draft: AuditDraft) -> None:
    """Append ``draft`` on its own, for changes whose use case has no audit hook yet (the
    record then follows the change's commit instead of sharing its transaction)."""
    now = gw.clock()
    await gw.db.run_write(lambda conn: audit_repo.append(conn, draft, now))
