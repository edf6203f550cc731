"""Upstox API v2 (and the v3 order calls) over a SimVenue, spoken exactly enough for the official SDK.

One port serves what Upstox splits over api.upstox.com and api-hft.upstox.com: point both the SDK's
`host` and `order_host` at it. Credentials are `Authorization: Bearer <token>`; bodies are JSON except
the login form and token exchange, which are form-encoded as at Upstox.

Errors are `{"status": "error", "errors": [problem]}` with every problem key in snake_case and camelCase
(the SDK reads the latter): 401 UDAPI100050 for a missing, expired or revoked token, 429 UDAPI10005 past
a rate limit, 503 UDAPI100500 for a simulated outage, 400 with the field named in property_path for a
refused request. `upstox_wire.ErrorCode` lists every code and which ones are the simulator's own.

Endpoints, with the fault-knob name and rate-limit category of each:
    GET    /v2/login/authorization/dialog        login    (no session) the login form
    POST   /v2/login/authorization/dialog        login    (no session) 302 to redirect_uri?code&state
    POST   /v2/login/authorization/token         token    (no session) code -> flat token response
    GET    /market-quote/instruments/exchange/complete.json.gz   instruments (no session)
    DELETE /v2/logout                            logout   other
    GET    /v2/user/profile                      profile  other
    POST   /v2/order/place, /v3/order/place      place    order   (v3: slice, market_protection)
    PUT    /v2/order/modify, /v3/order/modify    modify   order
    DELETE /v2/order/cancel, /v3/order/cancel    cancel   order
    GET    /v2/order/retrieve-all                orders   other
    GET    /v2/order/details, /v2/order/history  order    other
    GET    /v2/order/trades                      order_trades other
    GET    /v2/order/trades/get-trades-for-day   trades   other
    GET    /v2/portfolio/short-term-positions    positions other
    GET    /v2/portfolio/long-term-holdings      holdings other
    GET    /v2/user/get-funds-and-margin         margins  other
    GET    /v2/market-quote/ltp, /v3/market-quote/ltp   quote quote
A refused order is still recorded, as at Upstox: it shows in the order book as "rejected". A v3 order
sliced into several stops at the first refused slice; the slices placed before it stand.
"""

from __future__ import annotations

import html
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import time
from decimal import Decimal
from time import perf_counter
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from engine.brokers.pacing import UPSTOX_LIMITS
from engine.domain import InstrumentId, Product, Side
from engine.sim.config import SimAppSettings
from engine.sim.exchange import SimExchange
from engine.sim.http import ErrorKind, Front, OpenHandler, UserHandler, endpoint, open_endpoint
from engine.sim.records import SimOrder
from engine.sim.upstox_wire import (
    DayFlow,
    ErrorCode,
    FieldError,
    Listing,
    UpstoxDirectory,
    day_flows,
    error_body,
    history_rows,
    holding_row,
    instrument_master_gz,
    ltp_row,
    ltp_v3_row,
    margin_rows,
    order_row,
    parse_body,
    parse_modify,
    parse_place,
    position_row,
    profile_data,
    token_response,
    trade_row,
)
from engine.sim.venue import SessionError, SimUser, SimVenue

LIMITS = UPSTOX_LIMITS
TOKEN_EXPIRY = time(3, 30)  # IST, the morning after login
MAX_QUOTE_KEYS = 500
_ANY_METHOD = ["GET", "POST", "PUT", "DELETE", "PATCH"]

# How the book's refusal messages (engine.sim.rules, engine.sim.exchange) name the field at fault.
_REFUSED_FIELDS: tuple[tuple[re.Pattern[str], ErrorCode, str | None], ...] = (
    (re.compile(r"^(trigger price|a \S+ order needs a trigger price)"), ErrorCode.TRIGGER_PRICE, "trigger_price"),
    (re.compile(r"^price \S+ is outside the price band"), ErrorCode.PRICE_BAND, "price"),
    (re.compile(r"^(price|a \S+ order needs a price)"), ErrorCode.PRICE, "price"),
    (re.compile(r"^quantity"), ErrorCode.QUANTITY, "quantity"),
    (re.compile(r"^product"), ErrorCode.PRODUCT, "product"),
    (re.compile(r"^unknown instrument"), ErrorCode.INSTRUMENT, "instrument_token"),
    (re.compile(r" is closed "), ErrorCode.MARKET_CLOSED, None),
)
_KIND_ERRORS: dict[ErrorKind, tuple[int, ErrorCode, str | None]] = {
    ErrorKind.TOKEN: (401, ErrorCode.INVALID_TOKEN, None),
    ErrorKind.RATE_LIMIT: (429, ErrorCode.RATE_LIMIT, None),
    ErrorKind.NETWORK: (503, ErrorCode.SERVER_ERROR, None),
    ErrorKind.NOT_FOUND: (404, ErrorCode.NOT_SUPPORTED, None),
    ErrorKind.MARGIN: (400, ErrorCode.INSUFFICIENT_FUNDS, None),
    ErrorKind.HOLDING: (400, ErrorCode.INSUFFICIENT_HOLDINGS, "quantity"),
    ErrorKind.ORDER: (400, ErrorCode.ORDER, "order_id"),
    ErrorKind.INPUT: (400, ErrorCode.INVALID_INPUT, None),
}


def problem(
    status: int,
    code: str,
    message: str,
    property_path: str | None = None,
    invalid_value: object = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, property_path, invalid_value), status_code=status, headers=headers)


def success(data: Any, latency_from: float | None = None) -> JSONResponse:
    """Upstox's success envelope; v3 order calls add how long the request took, in milliseconds."""
    body: dict[str, Any] = {"status": "success", "data": data}
    if latency_from is not None:
        body["metadata"] = {"latency": round((perf_counter() - latency_from) * 1000)}
    return JSONResponse(body)


class UpstoxDialect:
    """Upstox's error envelope and bearer tokens; the book's refusals get the code of the field they name."""

    def error(self, kind: ErrorKind, message: str, retry_after: float | None = None) -> Response:
        status, code, path = _KIND_ERRORS[kind]
        if kind in (ErrorKind.INPUT, ErrorKind.ORDER):
            for pattern, refused_code, refused_path in _REFUSED_FIELDS:
                if pattern.search(message):
                    code, path = refused_code, refused_path
                    break
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else None
        return problem(status, code, message, path, headers=headers)

    def credentials(self, request: Request) -> tuple[str | None, str]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise SessionError("missing Authorization: Bearer <access_token> header")
        return None, token.strip()


def _answer_field_errors(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """Turn a FieldError raised while reading a request into Upstox's error response."""

    async def run(*args: Any) -> Response:
        try:
            return await handler(*args)
        except FieldError as exc:
            return problem(exc.status, exc.code, exc.message, exc.property_path, exc.invalid_value)

    return run


async def _form(request: Request) -> dict[str, str]:
    """A form-encoded body's fields (first value of each), without Starlette's multipart dependency."""
    return dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))


def _required_query(request: Request, name: str, code: ErrorCode) -> str:
    value = request.query_params.get(name, "").strip()
    if not value:
        raise FieldError(code, f"{name} is required", name)
    return value


class UpstoxFront:
    def __init__(self, venue: SimVenue) -> None:
        self.venue = venue
        self.dialect = UpstoxDialect()
        self.directory = UpstoxDirectory.default(venue.instruments)
        self._master_gz = instrument_master_gz(self.directory)

    def routes(self) -> list[BaseRoute]:
        user, anyone = self._user_route, self._open_route
        return [
            anyone("GET", "/v2/login/authorization/dialog", "login", self.login_page),
            anyone("POST", "/v2/login/authorization/dialog", "login", self.login_submit),
            anyone("POST", "/v2/login/authorization/token", "token", self.token),
            anyone("GET", "/market-quote/instruments/exchange/complete.json.gz", "instruments", self.instruments),
            user("DELETE", "/v2/logout", "logout", "other", self.logout),
            user("GET", "/v2/user/profile", "profile", "other", self.profile),
            user("POST", "/v2/order/place", "place", "order", self.place_v2),
            user("POST", "/v3/order/place", "place", "order", self.place_v3),
            user("PUT", "/v2/order/modify", "modify", "order", self.modify_v2),
            user("PUT", "/v3/order/modify", "modify", "order", self.modify_v3),
            user("DELETE", "/v2/order/cancel", "cancel", "order", self.cancel_v2),
            user("DELETE", "/v3/order/cancel", "cancel", "order", self.cancel_v3),
            user("GET", "/v2/order/retrieve-all", "orders", "other", self.order_book),
            user("GET", "/v2/order/details", "order", "other", self.order_details),
            user("GET", "/v2/order/history", "order", "other", self.order_history),
            user("GET", "/v2/order/trades/get-trades-for-day", "trades", "other", self.trades),
            user("GET", "/v2/order/trades", "order_trades", "other", self.order_trades),
            user("GET", "/v2/portfolio/short-term-positions", "positions", "other", self.positions),
            user("GET", "/v2/portfolio/long-term-holdings", "holdings", "other", self.holdings),
            user("GET", "/v2/user/get-funds-and-margin", "margins", "other", self.margins),
            user("GET", "/v2/market-quote/ltp", "quote", "quote", self.ltp_v2),
            user("GET", "/v3/market-quote/ltp", "quote", "quote", self.ltp_v3),
            Route("/{path:path}", self.not_supported, methods=_ANY_METHOD),
        ]

    def _user_route(self, method: str, path: str, name: str, category: str, handler: UserHandler) -> Route:
        run = endpoint(self.venue, self.dialect, name, category, _answer_field_errors(handler))
        return Route(path, run, methods=[method])

    def _open_route(self, method: str, path: str, name: str, handler: OpenHandler) -> Route:
        return Route(
            path, open_endpoint(self.venue, self.dialect, name, _answer_field_errors(handler)), methods=[method]
        )

    async def not_supported(self, request: Request) -> Response:
        return problem(404, ErrorCode.NOT_SUPPORTED, "This request is not supported by Upstox API")

    # ---- login ------------------------------------------------------------------------------------

    def _app(self, client_id: str, redirect_uri: str) -> SimAppSettings:
        try:
            app = self.venue.app(client_id)
        except SessionError:
            raise FieldError(ErrorCode.LOGIN, f"unknown client_id {client_id!r}", "client_id", client_id) from None
        if redirect_uri != app.redirect_url:
            raise FieldError(
                ErrorCode.LOGIN, "redirect_uri does not match the app's redirect URL", "redirect_uri", redirect_uri
            )
        return app

    async def login_page(self, request: Request) -> Response:
        query = request.query_params
        if query.get("response_type") != "code":
            raise FieldError(ErrorCode.LOGIN, "response_type must be code", "response_type", query.get("response_type"))
        client_id, redirect_uri = query.get("client_id", ""), query.get("redirect_uri", "")
        self._app(client_id, redirect_uri)
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name, value in (
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("state", query.get("state", "")),
            )
        )
        return HTMLResponse(
            "<!doctype html><title>Upstox (simulated) login</title>"
            f'<form method="post" action="{request.url.path}">{hidden}'
            '<label>User ID <input name="user_id"></label> '
            '<label>Password <input name="password" type="password"></label> '
            '<button type="submit">Log in</button></form>'
        )

    async def login_submit(self, request: Request) -> Response:
        form = await _form(request)
        client_id, redirect_uri = form.get("client_id", ""), form.get("redirect_uri", "")
        self._app(client_id, redirect_uri)
        try:
            code = self.venue.issue_code(client_id, form.get("user_id", ""), form.get("password", ""))
        except SessionError as exc:
            raise FieldError(ErrorCode.INVALID_CREDENTIALS, str(exc), "user_id", status=401) from None
        query = {"code": code} | ({"state": form["state"]} if form.get("state") else {})
        separator = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{separator}{urlencode(query)}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = await _form(request)
        grant_type = form.get("grant_type")
        if grant_type != "authorization_code":
            raise FieldError(ErrorCode.INVALID_INPUT, "grant_type must be authorization_code", "grant_type", grant_type)
        client_id = form.get("client_id", "")
        app = self._app(client_id, form.get("redirect_uri", ""))
        if not secrets.compare_digest(app.api_secret.encode(), form.get("client_secret", "").encode()):
            raise FieldError(ErrorCode.INVALID_CREDENTIALS, "Invalid Credentials", "client_secret", status=401)
        try:
            session = self.venue.redeem(client_id, form.get("code", ""))
        except SessionError as exc:
            raise FieldError(ErrorCode.INVALID_CREDENTIALS, str(exc), "code", status=401) from None
        settings = self.venue.users[session.user_id].settings
        return JSONResponse(token_response(profile_data(settings, self.directory.exchanges()), session.access_token))

    async def logout(self, request: Request, user: SimUser) -> Response:
        _, token = self.dialect.credentials(request)
        self.venue.logout(token)
        return success(True)

    async def profile(self, request: Request, user: SimUser) -> Response:
        return success(profile_data(user.settings, self.directory.exchanges()))

    async def instruments(self, request: Request) -> Response:
        return Response(self._master_gz, media_type="application/gzip")

    # ---- orders -----------------------------------------------------------------------------------

    async def place_v2(self, request: Request, user: SimUser) -> Response:
        order = parse_place(parse_body(await request.body()), self.directory, v3=False)
        with self.venue.trading(user) as exchange:
            order_id = exchange.place(order.request, validity=order.validity, meta=order.meta)
        return success({"order_id": order_id})

    async def place_v3(self, request: Request, user: SimUser) -> Response:
        started = perf_counter()
        order = parse_place(parse_body(await request.body()), self.directory, v3=True)
        with self.venue.trading(user) as exchange:
            ids = [exchange.place(part, validity=order.validity, meta=order.meta) for part in order.slices()]
        return success({"order_ids": ids}, started)

    async def modify_v2(self, request: Request, user: SimUser) -> Response:
        return success({"order_id": await self._modify(request, user)})

    async def modify_v3(self, request: Request, user: SimUser) -> Response:
        started = perf_counter()
        return success({"order_id": await self._modify(request, user)}, started)

    async def _modify(self, request: Request, user: SimUser) -> str:
        change = parse_modify(parse_body(await request.body()))
        with self.venue.trading(user) as exchange:
            change.check(exchange.order_record(change.order_id))
            exchange.modify(change.order_id, change.change)
        return change.order_id

    async def cancel_v2(self, request: Request, user: SimUser) -> Response:
        return success({"order_id": self._cancel(request, user)})

    async def cancel_v3(self, request: Request, user: SimUser) -> Response:
        started = perf_counter()
        return success({"order_id": self._cancel(request, user)}, started)

    def _cancel(self, request: Request, user: SimUser) -> str:
        order_id = _required_query(request, "order_id", ErrorCode.ORDER)
        with self.venue.trading(user) as exchange:
            exchange.cancel(order_id)
        return order_id

    # ---- reads ------------------------------------------------------------------------------------

    def _listing(self, order: SimOrder) -> Listing | None:
        return self.directory.of(order.instrument)

    async def order_book(self, request: Request, user: SimUser) -> Response:
        with self.venue.trading(user) as exchange:
            orders = exchange.order_records()
        return success(
            [order_row(o, listing, user.user_id) for o in orders if (listing := self._listing(o)) is not None]
        )

    async def order_details(self, request: Request, user: SimUser) -> Response:
        order_id = _required_query(request, "order_id", ErrorCode.ORDER)
        with self.venue.trading(user) as exchange:
            order = exchange.order_record(order_id)
        listing = self._listing(order)
        return success(order_row(order, listing, user.user_id) if listing else None)

    async def order_history(self, request: Request, user: SimUser) -> Response:
        """By order_id, or else every order carrying `tag` (the daemon's client order id)."""
        order_id = request.query_params.get("order_id", "").strip()
        tag = request.query_params.get("tag", "").strip()
        if not order_id and not tag:
            raise FieldError(ErrorCode.ORDER, "order_id or tag is required", "order_id")
        with self.venue.trading(user) as exchange:
            orders = [exchange.order_record(order_id)] if order_id else _tagged(exchange, tag)
        rows = []
        for order in orders:
            listing = self._listing(order)
            if listing is not None:
                rows.extend(history_rows(order, listing, user.user_id))
        return success(rows)

    async def trades(self, request: Request, user: SimUser) -> Response:
        return success(self._trade_rows(user, None))

    async def order_trades(self, request: Request, user: SimUser) -> Response:
        order_id = _required_query(request, "order_id", ErrorCode.ORDER)
        return success(self._trade_rows(user, order_id))

    def _trade_rows(self, user: SimUser, order_id: str | None) -> list[dict[str, Any]]:
        with self.venue.trading(user) as exchange:
            if order_id is not None:
                exchange.order_record(order_id)  # refuses an unknown order
            orders = {o.order_id: o for o in exchange.order_records()}
            trades = [t for t in exchange.trades() if order_id in (None, t.broker_order_id)]
        rows = []
        for trade in trades:
            order = orders[trade.broker_order_id]
            listing = self._listing(order)
            if listing is not None:
                rows.append(trade_row(trade, order, listing))
        return rows

    async def positions(self, request: Request, user: SimUser) -> Response:
        with self.venue.trading(user) as exchange:
            positions = exchange.position_records()
            flows = day_flows(exchange.trades())
            rows = []
            for position in positions:
                listing = self.directory.of(position.instrument)
                if listing is not None:
                    last = exchange.quote(position.instrument).last_price
                    flow = flows.get((position.instrument, position.product))
                    rows.append(position_row(position, last, listing, flow or DayFlow()))
        return success(rows)

    async def holdings(self, request: Request, user: SimUser) -> Response:
        with self.venue.trading(user) as exchange:
            holdings = exchange.holdings()
            claimed = _delivery_sells(exchange)
        rows = []
        for holding in holdings:
            listing = self.directory.of(holding.instrument)
            if listing is not None:
                used = min(holding.quantity, claimed.get(holding.instrument, 0))
                rows.append(holding_row(holding, listing, used))
        return success(rows)

    async def margins(self, request: Request, user: SimUser) -> Response:
        segment = request.query_params.get("segment") or None
        with self.venue.trading(user) as exchange:
            funds = exchange.funds()
        return success(margin_rows(funds, segment))

    async def ltp_v2(self, request: Request, user: SimUser) -> Response:
        return success(self._quotes(request, user, "symbol", ltp_row))

    async def ltp_v3(self, request: Request, user: SimUser) -> Response:
        return success(self._quotes(request, user, "instrument_key", ltp_v3_row))

    def _quotes(
        self, request: Request, user: SimUser, parameter: str, render: Callable[[Listing, Decimal], dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """Last prices keyed `<segment>:<symbol>`, each naming its instrument key, as Upstox keys them."""
        text = _required_query(request, parameter, ErrorCode.INSTRUMENT)
        request_keys = [k.strip() for k in text.split(",") if k.strip()]
        if len(request_keys) > MAX_QUOTE_KEYS:
            raise FieldError(ErrorCode.INVALID_INPUT, f"at most {MAX_QUOTE_KEYS} instruments per request", parameter)
        listings = []
        for key in request_keys:
            listing = self.directory.by_key(key)
            if listing is None:
                raise FieldError(ErrorCode.INSTRUMENT, f"unknown instrument key {key}", parameter, key)
            listings.append(listing)
        with self.venue.trading(user) as exchange:
            return {
                listing.quote_key: render(listing, exchange.quote(listing.instrument.id).last_price)
                for listing in listings
            }


def _tagged(exchange: SimExchange, tag: str) -> list[SimOrder]:
    return [o for o in exchange.order_records() if o.tag == tag]


def _delivery_sells(exchange: SimExchange) -> dict[InstrumentId, int]:
    """Quantity that live delivery (CNC) sell orders have claimed from holdings, per instrument."""
    claimed: dict[InstrumentId, int] = {}
    for order in exchange.order_records():
        if order.is_live and order.product is Product.CNC and order.side is Side.SELL:
            claimed[order.instrument] = claimed.get(order.instrument, 0) + order.remaining
    return claimed


def build_front(venue: SimVenue) -> Front:
    return Front(routes=UpstoxFront(venue).routes())
