"""The guard interceptor: who is calling, may they (role), not too often (per-token rate), and an audit
entry for every command and every refusal.

One interceptor does all of it because the steps share one decision per call, and the audit entry
needs the outcome of the others.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import text_format
from google.protobuf.message import Message

from engine.api.auth import CALLER, Authenticator
from engine.api.interceptors import rewrap, status_for
from engine.api.policy import OPEN_METHODS, POLICY, Rule
from engine.errors import PermissionDenied, ResourceExhausted
from engine.security.principal import Principal
from engine.security.rate_limit import RateLimiter
from engine.store.audit import AuditLog

log = logging.getLogger(__name__)

_SENSITIVE_FIELDS = frozenset({"redirect"})  # CompleteLogin's redirect URL carries the broker's request token
_TARGET_FIELDS = ("account", "order_id", "client_order_id", "user", "name", "id")
_TARGET_LIMIT = 200
_DETAIL_LIMIT = 500
_REFUSED = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
_PENDING_AUDITS: set[asyncio.Task[None]] = set()  # entries of cancelled calls, referenced until written


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
        return rewrap(handler, call.unary, call.stream)

    async def admit(self, method: str, rule: Rule | None, context: grpc.aio.ServicerContext) -> Principal:
        header = dict(context.invocation_metadata() or ()).get("authorization")
        principal = await self._auth.authenticate(header if isinstance(header, str) else None)
        CALLER.set(principal)
        wait = self._limiter.take(principal.token_id)  # before the role check: refusals are audited, so limit them
        if wait:
            raise ResourceExhausted(
                f"token {principal.token_id} is over its limit of {self._limiter.per_second:g} requests/s"
                f" (burst {self._limiter.burst}); retry in {wait:.2f} s"
            )
        if rule is None:
            raise PermissionDenied(f"{_short(method)} has no access rule; refused")
        if not principal.role.allows(rule.role):
            raise PermissionDenied(f"{_short(method)} needs the {rule.role} role; {principal.user} is {principal.role}")
        return principal

    def still_valid(self, principal: Principal) -> None:
        self._auth.check(principal.token_id)

    async def record(self, method: str, request: Message | None, peer: str, outcome: str) -> None:
        """Append the audit entry. A failure is logged loudly but does not undo a command carried out."""
        who = CALLER.get(None)
        try:
            await self._audit.append(
                datetime.now(UTC),
                who.label if who else "anonymous",
                _short(method),
                _target(request),
                peer,
                outcome,
                _detail(request),
            )
        except Exception:
            log.exception("could not audit %s by %s (%s)", _short(method), who.label if who else "anonymous", outcome)


class _Call:
    """One RPC's wrapper: admit, run, and audit commands (and refusals of anything)."""

    def __init__(self, guard: AuthInterceptor, method: str, rule: Rule | None) -> None:
        self._guard = guard
        self._method = method
        self._rule = rule

    def unary(self, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                await self._guard.admit(self._method, self._rule, context)
                response = await behaviour(request, context)
            except asyncio.CancelledError:
                self._finish_later(request, context)
                raise
            except Exception as exc:
                await self._finish(request, context, exc)
                raise
            await self._finish(request, context, None)
            return response

        return run

    def stream(self, behaviour: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        """A stream is admitted once, and ended as soon as its token is revoked.

        Once admitted it sends its headers at once: a quiet stream (no order event yet) would otherwise send
        nothing until its first message, and its client, or the gRPC-web proxy answering a browser, could not
        tell it from a hung one."""

        async def run(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                principal = await self._guard.admit(self._method, self._rule, context)
                await context.send_initial_metadata(())
                async for item in behaviour(request, context):
                    self._guard.still_valid(principal)
                    yield item
            except Exception as exc:
                await self._finish(request, context, exc)
                raise

        return run

    def _should_audit(self, code: grpc.StatusCode) -> bool:
        return code in _REFUSED or (self._rule is not None and self._rule.audit)

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
            await self._guard.record(self._method, _message(request), _peer(context), outcome)

    def _finish_later(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        """The client went away mid-command: the command may still have happened, so it is audited anyway."""
        if self._rule is None or not self._rule.audit:
            return
        entry = self._guard.record(self._method, _message(request), _peer(context), "CANCELLED: the caller left")
        task = asyncio.get_running_loop().create_task(entry)
        _PENDING_AUDITS.add(task)
        task.add_done_callback(_PENDING_AUDITS.discard)


def _peer(context: grpc.aio.ServicerContext) -> str:
    """Where the call came from, for the audit trail. A call relayed by a proxy on this host (`serve --web`, Envoy)
    comes from loopback, so the address that proxy saw, the last of x-forwarded-for, is added; from any other peer
    the header is ignored, as anyone could have written it."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    host = rest.rpartition(":")[0].strip("[]")
    try:
        loopback = kind in ("ipv4", "ipv6") and ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    forwarded = dict(context.invocation_metadata() or ()).get("x-forwarded-for", "")
    if not loopback or not isinstance(forwarded, str) or not forwarded.strip():
        return peer
    return f"{peer} for {forwarded.rsplit(',', 1)[-1].strip()}"


def _message(request: Any) -> Message | None:
    return request if isinstance(request, Message) else None  # a client stream's iterator is not audited


def _short(method: str) -> str:
    """'/trademaster.v1.OrderService/PlaceOrder' -> 'OrderService/PlaceOrder'."""
    service, _, name = method.lstrip("/").rpartition("/")
    return f"{service.rsplit('.', 1)[-1]}/{name}"


def _printable(text: str, limit: int) -> str:
    """Anonymous callers choose these bytes: escape control characters (PostgreSQL text refuses NUL) and cap
    the length, so a request cannot bloat or break the audit trail."""
    escaped = text.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def _target(request: Message | None) -> str:
    if request is None:
        return ""
    fields = request.DESCRIPTOR.fields_by_name
    for name in _TARGET_FIELDS:
        if name in fields and fields[name].type == fields[name].TYPE_STRING and getattr(request, name):
            return _printable(f"{name}={getattr(request, name)}", _TARGET_LIMIT)
    return ""


def _detail(request: Message | None) -> str:
    """The request in one line, secrets cleared: enough to tell later what was asked."""
    if request is None:
        return ""
    shown = type(request)()
    shown.CopyFrom(request)
    for name in _SENSITIVE_FIELDS & set(shown.DESCRIPTOR.fields_by_name):
        shown.ClearField(name)
    return _printable(text_format.MessageToString(shown, as_one_line=True, as_utf8=True), _DETAIL_LIMIT)
