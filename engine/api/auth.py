"""Who may call what: bearer-token authentication, the role each RPC needs, per-token rate limits, and
an audit entry for every command and every refusal.

One interceptor does all four because they share one decision per call (who is this, may they), and
the audit entry needs the outcome of the other three.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import text_format
from google.protobuf.message import Message

from engine.api.interceptors import status_for
from engine.errors import PermissionDenied, ResourceExhausted, Unauthenticated
from engine.security.principal import Principal
from engine.security.rate_limit import RateLimiter
from engine.security.tokens import Role, parse_token, verify_secret
from engine.store.audit import AuditLog
from engine.store.users import UserStore

log = logging.getLogger(__name__)

_CALLER: ContextVar[Principal] = ContextVar("caller")
_SENSITIVE_FIELDS = frozenset({"redirect"})  # CompleteLogin's redirect URL carries the broker's request token
_TARGET_FIELDS = ("account", "order_id", "client_order_id", "user", "name", "id")
_DETAIL_LIMIT = 500


def caller() -> Principal:
    """The authenticated caller of the RPC being served."""
    return _CALLER.get()


@dataclass(frozen=True, slots=True)
class Rule:
    role: Role
    audit: bool = False  # commands are audited whatever their outcome; reads only when refused


_V, _T, _A = Role.VIEWER, Role.TRADER, Role.ADMIN
POLICY: dict[str, Rule] = {
    "/trademaster.v1.AccountService/ListAccounts": Rule(_V),
    "/trademaster.v1.AccountService/GetAccount": Rule(_V),
    "/trademaster.v1.AccountService/StartLogin": Rule(_T, audit=True),
    "/trademaster.v1.AccountService/CompleteLogin": Rule(_T, audit=True),
    "/trademaster.v1.OrderService/PlaceOrder": Rule(_T, audit=True),
    "/trademaster.v1.OrderService/PreviewRoute": Rule(_V),
    "/trademaster.v1.OrderService/CancelOrder": Rule(_T, audit=True),
    "/trademaster.v1.OrderService/ModifyOrder": Rule(_T, audit=True),
    "/trademaster.v1.OrderService/GetOrder": Rule(_V),
    "/trademaster.v1.OrderService/ListOrders": Rule(_V),
    "/trademaster.v1.OrderService/StreamOrderEvents": Rule(_V),
    "/trademaster.v1.PortfolioService/GetPortfolio": Rule(_V),
    "/trademaster.v1.PortfolioService/StreamPortfolio": Rule(_V),
    "/trademaster.v1.SecurityService/WhoAmI": Rule(_V),
    "/trademaster.v1.SecurityService/AddUser": Rule(_A, audit=True),
    "/trademaster.v1.SecurityService/ListUsers": Rule(_A),
    "/trademaster.v1.SecurityService/RemoveUser": Rule(_A, audit=True),
    "/trademaster.v1.SecurityService/CreateToken": Rule(_V, audit=True),
    "/trademaster.v1.SecurityService/ListTokens": Rule(_V),
    "/trademaster.v1.SecurityService/RevokeToken": Rule(_V, audit=True),
    "/trademaster.v1.SecurityService/TailAudit": Rule(_A),
    "/trademaster.v1.SecurityService/VerifyAudit": Rule(_A),
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Rule(_V),
}
OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
"""Liveness probes (systemd, Kubernetes, load balancers) cannot carry a token; health reveals nothing."""


@dataclass(frozen=True, slots=True)
class _Verified:
    digest: bytes
    principal: Principal
    until: float


class Authenticator:
    """Turns a presented token into a Principal. Verified tokens are cached briefly, since argon2 costs
    milliseconds; revoking or removing through the API drops the cache entry at once, and a change made
    behind the daemon's back (straight in the database) is seen within ``cache_seconds``."""

    def __init__(self, users: UserStore, cache_seconds: float = 5.0) -> None:
        self._users = users
        self._cache_seconds = cache_seconds
        self._cache: dict[str, _Verified] = {}

    async def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise Unauthenticated(
                "missing API token: send the header 'authorization: Bearer <token>' "
                "(the CLI reads --token, TRADEMASTER_TOKEN or the admin token file in the data dir)"
            )
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise Unauthenticated("the authorization header must be 'Bearer <token>'")
        try:
            token_id, secret = parse_token(presented)
        except ValueError as exc:
            raise Unauthenticated(str(exc)) from None
        digest = hashlib.sha256(secret.encode()).digest()
        cached = self._cache.get(token_id)
        if cached is not None and cached.until > time.monotonic() and hmac.compare_digest(cached.digest, digest):
            return cached.principal
        owner = await self._users.owner(token_id)
        if owner is None:
            raise Unauthenticated(f"API token {token_id} is unknown or revoked")
        if not await asyncio.to_thread(verify_secret, owner.secret_hash, secret):
            raise Unauthenticated(f"API token {token_id}: wrong secret")
        user = owner.user
        principal = Principal(user.name, user.role, token_id, frozenset(user.accounts))
        self._cache[token_id] = _Verified(digest, principal, time.monotonic() + self._cache_seconds)
        return principal

    def forget(self, token_id: str | None = None, user: str | None = None) -> None:
        """Drop cached verifications of a token, or of every token of a user."""
        for key, entry in list(self._cache.items()):
            if key == token_id or entry.principal.user == user:
                del self._cache[key]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: Authenticator, limiter: RateLimiter, audit: AuditLog) -> None:
        self._auth = authenticator
        self._limiter = limiter
        self._audit = audit

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method in OPEN_METHODS:
            return handler
        call = _Call(self, details.method, POLICY.get(details.method))
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                call.unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                call.stream(handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                call.stream(handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        raise RuntimeError(f"{details.method}: client-streaming RPCs have no access rule")

    async def admit(self, method: str, rule: Rule | None, context: grpc.aio.ServicerContext) -> Principal:
        header = dict(context.invocation_metadata() or ()).get("authorization")
        principal = await self._auth.authenticate(header if isinstance(header, str) else None)
        _CALLER.set(principal)
        if rule is None:
            raise PermissionDenied(f"{_short(method)} has no access rule; refused")
        if not principal.role.allows(rule.role):
            raise PermissionDenied(f"{_short(method)} needs the {rule.role} role; {principal.user} is {principal.role}")
        wait = self._limiter.take(principal.token_id)
        if wait:
            raise ResourceExhausted(
                f"token {principal.token_id} is over its limit of {self._limiter.per_second:g} requests/s"
                f" (burst {self._limiter.burst}); retry in {wait:.2f} s"
            )
        return principal

    async def record(self, method: str, request: Any, context: grpc.aio.ServicerContext, outcome: str) -> None:
        """Append the audit entry; a failure is logged loudly but does not undo a command that was carried out."""
        who = _CALLER.get(None)
        try:
            await self._audit.append(
                datetime.now(UTC),
                who.label if who else "anonymous",
                _short(method),
                _target(request),
                context.peer() or "",
                outcome,
                _detail(request),
            )
        except Exception:
            log.exception("could not audit %s by %s (%s)", _short(method), who.label if who else "anonymous", outcome)


class _Call:
    """One RPC's wrapper: admit, run, and audit commands (and refusals of anything)."""

    def __init__(self, interceptor: AuthInterceptor, method: str, rule: Rule | None) -> None:
        self._icpt = interceptor
        self._method = method
        self._rule = rule

    def _should_audit(self, code: grpc.StatusCode) -> bool:
        refused = code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
        return refused or (self._rule is not None and self._rule.audit)

    def unary(self, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                await self._icpt.admit(self._method, self._rule, context)
                response = await behaviour(request, context)
            except Exception as exc:
                await self._finish(request, context, exc)
                raise
            await self._finish(request, context, None)
            return response

        return run

    def stream(self, behaviour: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def run(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                await self._icpt.admit(self._method, self._rule, context)
            except Exception as exc:
                await self._finish(request, context, exc)
                raise
            async for item in behaviour(request, context):
                yield item

        return run

    async def _finish(self, request: Any, context: grpc.aio.ServicerContext, exc: Exception | None) -> None:
        if exc is None:
            code, outcome = grpc.StatusCode.OK, "OK"
        elif isinstance(exc, grpc.aio.AbortError):
            code = context.code() or grpc.StatusCode.UNKNOWN
            outcome = f"{code.name}: {context.details() or ''}"
        else:
            code, message = status_for(exc)
            outcome = f"{code.name}: {message}"
        if self._should_audit(code):
            await self._icpt.record(self._method, request if isinstance(request, Message) else None, context, outcome)


def _short(method: str) -> str:
    """'/trademaster.v1.OrderService/PlaceOrder' -> 'OrderService/PlaceOrder'."""
    service, _, name = method.lstrip("/").rpartition("/")
    return f"{service.rsplit('.', 1)[-1]}/{name}"


def _target(request: Message | None) -> str:
    if request is None:
        return ""
    fields = request.DESCRIPTOR.fields_by_name
    for name in _TARGET_FIELDS:
        if name in fields and fields[name].type == fields[name].TYPE_STRING and getattr(request, name):
            return f"{name}={getattr(request, name)}"
    return ""


def _detail(request: Message | None) -> str:
    """The request in one line, secrets cleared: enough to tell later what was asked."""
    if request is None:
        return ""
    shown = type(request)()
    shown.CopyFrom(request)
    for name in _SENSITIVE_FIELDS & set(shown.DESCRIPTOR.fields_by_name):
        shown.ClearField(name)
    text = text_format.MessageToString(shown, as_one_line=True)
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1] + "…"
