"""What every simulator wire front does around its handlers: faults, authentication, rate limits, errors.

A front supplies a Dialect (how its broker spells errors and carries tokens) and plain handlers;
`endpoint` wraps each handler so the order of checks, and the fault knobs, are the same for all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from engine.sim.exchange import RejectKind, SimRejected
from engine.sim.faults import After, Before
from engine.sim.venue import SessionError, SimUser, SimVenue


class ErrorKind(StrEnum):
    TOKEN = "TOKEN"  # missing, invalid, expired or revoked credentials
    INPUT = "INPUT"
    ORDER = "ORDER"
    MARGIN = "MARGIN"
    HOLDING = "HOLDING"
    RATE_LIMIT = "RATE_LIMIT"
    NETWORK = "NETWORK"  # the broker's own trouble: 5xx
    NOT_FOUND = "NOT_FOUND"


REJECT_ERRORS = {
    RejectKind.INPUT: ErrorKind.INPUT,
    RejectKind.MARGIN: ErrorKind.MARGIN,
    RejectKind.HOLDING: ErrorKind.HOLDING,
    RejectKind.ORDER: ErrorKind.ORDER,
}


class WireError(Exception):
    """Raised by a handler to answer with the front's error dialect."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class Dialect(Protocol):
    def error(self, kind: ErrorKind, message: str, retry_after: float | None = None) -> Response:
        """The broker's error response for `kind`, with the status code it uses."""
        ...

    def credentials(self, request: Request) -> tuple[str | None, str]:
        """(api_key if the broker sends one, access token) from the request; raises SessionError if absent."""
        ...


class DroppedResponse(Response):
    """Starts a response and then breaks the connection: the request was handled, the answer is lost."""

    def __init__(self) -> None:
        super().__init__(status_code=200, headers={"content-length": "64"}, media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        raise ConnectionAbortedError("simulated fault: response dropped after the request was handled")


UserHandler = Callable[[Request, SimUser], Awaitable[Response]]
OpenHandler = Callable[[Request], Awaitable[Response]]


def endpoint(
    venue: SimVenue, dialect: Dialect, name: str, category: str, handler: UserHandler
) -> Callable[[Request], Awaitable[Response]]:
    """An authenticated, rate-limited, fault-injectable endpoint named `name` for the fault knobs."""

    async def run(request: Request) -> Response:
        async def authenticated() -> Response:
            try:
                api_key, token = dialect.credentials(request)
                user, _ = venue.authenticate(token, api_key)
            except SessionError as exc:
                return dialect.error(ErrorKind.TOKEN, str(exc))
            wait = venue.limits.admit(user.user_id, category)
            if wait is not None:
                venue.rate_limited[user.user_id, category] += 1
                return dialect.error(ErrorKind.RATE_LIMIT, f"Too many requests: {category} limit", wait)
            return await handler(request, user)

        return await _with_faults(venue, dialect, name, authenticated)

    return run


def open_endpoint(
    venue: SimVenue, dialect: Dialect, name: str, handler: OpenHandler
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint without a session (login, token exchange, instrument dumps); faults still apply."""

    async def run(request: Request) -> Response:
        return await _with_faults(venue, dialect, name, lambda: handler(request))

    return run


async def _with_faults(
    venue: SimVenue, dialect: Dialect, name: str, call: Callable[[], Awaitable[Response]]
) -> Response:
    decision = venue.faults.decide(name)
    if decision.latency_seconds:
        await asyncio.sleep(decision.latency_seconds)
    if decision.before is Before.LIMIT:
        return dialect.error(ErrorKind.RATE_LIMIT, "Too many requests (simulated burst)", 1.0)
    if decision.before is Before.ERROR:
        return dialect.error(ErrorKind.NETWORK, "Service unavailable (simulated fault)")
    try:
        response = await call()
    except WireError as exc:
        return dialect.error(exc.kind, exc.message)
    except SimRejected as exc:
        return dialect.error(REJECT_ERRORS[exc.kind], exc.message)
    if decision.after is After.TIMEOUT:
        await asyncio.sleep(decision.hang_seconds)
    elif decision.after is After.DROP:
        return DroppedResponse()
    return response


@dataclass
class Front:
    """A broker's wire protocol over a venue: its routes and the tasks it runs while serving."""

    routes: list[BaseRoute]
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
