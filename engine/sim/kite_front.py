"""Zerodha Kite Connect v3 over a SimVenue: routes, Kite's error dialect, the login pages and postbacks.

Handlers only parse, call the user's simulated exchange and render with `kite_wire`; the shared
`endpoint` wrapper applies faults, sessions and rate limits in the same order for every broker. The
official `kiteconnect` SDK is the judge of this module (tests/integration/test_kite_sim.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, time
from decimal import Decimal
from importlib import resources
from json import JSONDecodeError
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from engine.brokers.pacing import KITE_LIMITS
from engine.domain import Instrument, InstrumentId, Side
from engine.domain.sessions import IST
from engine.sim import kite_wire as wire
from engine.sim.exchange import SimExchange, SimRejected
from engine.sim.http import REJECT_ERRORS, ErrorKind, Front, WireError, endpoint, open_endpoint
from engine.sim.records import SimOrder
from engine.sim.venue import SessionError, SimUser, SimVenue

log = logging.getLogger(__name__)

LIMITS = KITE_LIMITS
TOKEN_EXPIRY = time(6, 0)  # IST: every Kite session ends at six the next morning
KITE_VERSION = "3"
QUOTE_LIMIT, LTP_LIMIT = 500, 1000  # instruments per request
DEFAULT_CIRCUIT_PERCENT = Decimal(20)  # circuit limits shown when the simulator enforces no price band
MARKET_OPEN = time(9, 15)
POSTBACK_QUEUE = 1000
POSTBACK_TIMEOUT_SECONDS = 2.0

Handler = Callable[[Request], Awaitable[Response]]
UserHandler = Callable[[Request, SimUser], Awaitable[Response]]


class KiteDialect:
    """Kite's error envelope and status codes, and its `Authorization: token api_key:access_token`."""

    def error(self, kind: ErrorKind, message: str, retry_after: float | None = None) -> Response:
        body, status = wire.error_body(kind, message)
        headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after else None
        return JSONResponse(body, status_code=status, headers=headers)

    def credentials(self, request: Request) -> tuple[str | None, str]:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        api_key, _, token = value.strip().partition(":")
        if scheme.lower() != "token" or not api_key or not token:
            raise SessionError("Incorrect `api_key` or `access_token`.")
        return api_key, token


def _ok(data: Any) -> JSONResponse:
    return JSONResponse(wire.ok(data))


async def _fields(request: Request) -> dict[str, str]:
    """Query and form-encoded body fields, the body winning: Kite's calls send one or the other."""
    fields = dict(request.query_params)
    body = await request.body()
    if body and "json" not in request.headers.get("content-type", ""):
        fields.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return fields


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except (JSONDecodeError, UnicodeDecodeError):
        raise WireError(ErrorKind.INPUT, "body: expected a JSON array of orders") from None


def _new_id() -> str:
    """A Kite-style 19-digit id, for autoslice parents."""
    return str(10**18 + secrets.randbelow(9 * 10**18))


class Postbacks:
    """Kite's postbacks: every order change, signed, POSTed to each app the user has a live session with.

    The venue announces changes synchronously inside requests and ticks; they are rendered at once (the
    order keeps changing), queued in a bounded queue and sent by one background task with a short
    timeout, so a slow or dead receiver costs dropped postbacks, never a stalled simulator.
    """

    def __init__(self, venue: SimVenue, tokens: dict[InstrumentId, int]) -> None:
        self._venue = venue
        self._tokens = tokens
        self._queue: asyncio.Queue[tuple[str, wire.JSON]] = asyncio.Queue(POSTBACK_QUEUE)
        self._loop: asyncio.AbstractEventLoop | None = None
        venue.subscribe(self._on_order)

    def _on_order(self, user: SimUser, order: SimOrder) -> None:
        for api_key in sorted(self._venue.session_apps(user.user_id)):
            app = self._venue.apps.get(api_key)
            if app is None or not app.postback_url:
                continue
            token = self._tokens.get(order.instrument, 0)
            body = wire.postback_json(order, user.user_id, token, api_key, app.api_secret)
            self._offer((app.postback_url, body))

    def _offer(self, item: tuple[str, wire.JSON]) -> None:
        """Queue from any thread: the queue belongs to the serving loop once the sender runs."""
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if self._loop is None or current is self._loop:
            self._enqueue(item)
            return
        try:
            self._loop.call_soon_threadsafe(self._enqueue, item)
        except RuntimeError:
            log.warning("postback to %s dropped: the simulator is stopping", item[0])

    def _enqueue(self, item: tuple[str, wire.JSON]) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("postback queue full: dropped order %s update for %s", item[1]["order_id"], item[0])

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(timeout=POSTBACK_TIMEOUT_SECONDS) as client:
            while True:
                url, body = await self._queue.get()
                try:
                    response = await client.post(url, json=body)
                except (httpx.HTTPError, httpx.InvalidURL) as exc:
                    log.info("postback of order %s to %s failed: %s", body["order_id"], url, exc)
                    continue
                if response.is_error:
                    log.info("postback of order %s to %s answered %s", body["order_id"], url, response.status_code)


class KiteFront:
    """The handlers of Kite's REST API over one venue, and the route table that names them."""

    def __init__(self, venue: SimVenue) -> None:
        self.venue = venue
        self.dialect = KiteDialect()
        self._tokens = {i.id: i.instrument_token for i in venue.instruments}
        self._by_token = {str(i.instrument_token): i for i in venue.instruments if i.instrument_token}
        self._csv = resources.files("engine.sim.data").joinpath("instruments.csv").read_text(encoding="utf-8")
        self.postbacks = Postbacks(venue, self._tokens)

    # ---- routing ----------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        user, public = self._user_route, self._open_route
        return [
            Route("/connect/login", open_endpoint(self.venue, self.dialect, "login", self.login_page), methods=["GET"]),
            Route("/connect/login", open_endpoint(self.venue, self.dialect, "login", self.login), methods=["POST"]),
            public("/session/token", "POST", "token", self.session_token),
            public("/session/token", "DELETE", "token", self.logout),
            user("/user/profile", "GET", "profile", "other", self.profile),
            user("/user/margins", "GET", "margins", "other", self.margins),
            user("/user/margins/{segment}", "GET", "margins", "other", self.margins_segment),
            user("/orders", "GET", "orders", "other", self.orders),
            user("/orders/{order_id}/trades", "GET", "order_trades", "other", self.order_trades),
            user("/orders/{order_id}", "GET", "order", "other", self.order_history),
            user("/orders/{variety}", "POST", "place", "order", self.place),
            user("/orders/{variety}/{order_id}", "PUT", "modify", "order", self.modify),
            user("/orders/{variety}/{order_id}", "DELETE", "cancel", "order", self.cancel),
            user("/trades", "GET", "trades", "other", self.trades),
            user("/portfolio/positions", "GET", "positions", "other", self.positions),
            user("/portfolio/positions", "PUT", "convert", "other", self.convert),
            user("/portfolio/holdings", "GET", "holdings", "other", self.holdings),
            user("/quote", "GET", "quote", "quote", self.quote),
            user("/quote/ohlc", "GET", "quote", "quote", self.ohlc),
            user("/quote/ltp", "GET", "quote", "quote", self.ltp),
            public("/instruments", "GET", "instruments", self.instruments),
            public("/instruments/{exchange}", "GET", "instruments", self.instruments),
            user("/margins/orders", "POST", "calculators", "other", self.order_margins),
            user("/margins/basket", "POST", "calculators", "other", self.basket_margins),
            user("/charges/orders", "POST", "calculators", "other", self.contract_note),
            Route("/{path:path}", self.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ]

    def _user_route(self, path: str, method: str, name: str, category: str, handler: UserHandler) -> Route:
        return Route(
            path, self._versioned(endpoint(self.venue, self.dialect, name, category, handler)), methods=[method]
        )

    def _open_route(self, path: str, method: str, name: str, handler: Handler) -> Route:
        return Route(path, self._versioned(open_endpoint(self.venue, self.dialect, name, handler)), methods=[method])

    def _versioned(self, handler: Handler) -> Handler:
        """Kite's API wants `X-Kite-Version: 3`; a missing header is let through, another version is not."""

        async def run(request: Request) -> Response:
            version = request.headers.get("x-kite-version", KITE_VERSION).strip()
            if version != KITE_VERSION:
                message = f"X-Kite-Version: unsupported API version {version!r}; the simulator speaks 3"
                return self.dialect.error(ErrorKind.INPUT, message)
            return await handler(request)

        return run

    async def not_found(self, request: Request) -> Response:
        return self.dialect.error(ErrorKind.NOT_FOUND, f"Route not found: {request.method} {request.url.path}")

    # ---- login and session ------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        api_key = request.query_params.get("api_key", "")
        try:
            self.venue.app(api_key)
        except SessionError as exc:
            return HTMLResponse(wire.login_page(api_key, str(exc)), status_code=400)
        return HTMLResponse(wire.login_page(api_key))

    async def login(self, request: Request) -> Response:
        """The login form's POST: a one-time request_token, handed to the app through its redirect URL."""
        form = await _fields(request)
        api_key = form.get("api_key", "")
        try:
            code = self.venue.issue_code(api_key, form.get("user_id", ""), form.get("password", ""))
        except SessionError as exc:
            return HTMLResponse(wire.login_page(api_key, str(exc)), status_code=400)
        redirect = self.venue.app(api_key).redirect_url
        query = urlencode({"request_token": code, "action": "login", "type": "login", "status": "success"})
        return RedirectResponse(f"{redirect}{'&' if '?' in redirect else '?'}{query}", status_code=302)

    async def session_token(self, request: Request) -> Response:
        form = await _fields(request)
        api_key, request_token = form.get("api_key", ""), form.get("request_token", "")
        try:
            secret = self.venue.app(api_key).api_secret
            expected = hashlib.sha256(f"{api_key}{request_token}{secret}".encode()).hexdigest()
            if not secrets.compare_digest(expected, form.get("checksum", "").strip().lower()):
                raise SessionError("Invalid `checksum`.")
            session = self.venue.redeem(api_key, request_token)
        except SessionError as exc:
            raise WireError(ErrorKind.TOKEN, str(exc)) from None
        return _ok(wire.session_json(self.venue.users[session.user_id].settings, session))

    async def logout(self, request: Request) -> Response:
        fields = await _fields(request)
        access_token = fields.get("access_token", "")
        try:
            self.venue.authenticate(access_token, fields.get("api_key") or None)
        except SessionError as exc:
            raise WireError(ErrorKind.TOKEN, str(exc)) from None
        return _ok(self.venue.logout(access_token))

    async def profile(self, request: Request, user: SimUser) -> Response:
        return _ok(wire.profile_json(user.settings))

    # ---- funds ------------------------------------------------------------------------------------

    async def margins(self, request: Request, user: SimUser) -> Response:
        with self.venue.trading(user) as exchange:
            funds = exchange.funds()
        return _ok({"equity": wire.equity_margins(funds), "commodity": wire.commodity_margins()})

    async def margins_segment(self, request: Request, user: SimUser) -> Response:
        segment = request.path_params["segment"]
        if segment == "commodity":
            return _ok(wire.commodity_margins())
        if segment != "equity":
            raise WireError(ErrorKind.INPUT, f"segment: must be equity or commodity, got {segment!r}")
        with self.venue.trading(user) as exchange:
            return _ok(wire.equity_margins(exchange.funds()))

    # ---- orders -----------------------------------------------------------------------------------

    async def place(self, request: Request, user: SimUser) -> Response:
        form = wire.parse_place(await _fields(request), request.path_params["variety"])
        with self.venue.trading(user) as exchange:
            if form.autoslice:
                return _ok(self._autoslice(exchange, form))
            meta = {**form.meta, "guid": secrets.token_hex(10)}
            order_id = exchange.place(form.request, validity=form.validity, meta=meta)
        return _ok({"order_id": order_id})

    def _autoslice(self, exchange: SimExchange, form: wire.PlaceForm) -> wire.JSON:
        """Kite's autoslice: one order per slice, each slice's failure reported in its place."""
        parent = _new_id()
        children: list[wire.JSON] = []
        for size in wire.autoslice_sizes(form.request.quantity, self.venue.instruments.get(form.request.instrument)):
            meta = {**form.meta, "guid": secrets.token_hex(10), "autoslice_parent": parent}
            try:
                order_id = exchange.place(replace(form.request, quantity=size), validity=form.validity, meta=meta)
            except SimRejected as exc:
                children.append(wire.child_error(REJECT_ERRORS[exc.kind], exc.message))
            else:
                children.append({"order_id": order_id})
        return {"order_id": parent, "children": children}

    async def modify(self, request: Request, user: SimUser) -> Response:
        order_id = request.path_params["order_id"]
        fields = await _fields(request)
        with self.venue.trading(user) as exchange:
            change, meta = wire.parse_modify(fields, exchange.order_record(order_id), request.path_params["variety"])
            exchange.modify(order_id, change)
            if meta:
                exchange.annotate(order_id, meta)
        return _ok({"order_id": order_id})

    async def cancel(self, request: Request, user: SimUser) -> Response:
        order_id = request.path_params["order_id"]
        with self.venue.trading(user) as exchange:
            wire.check_variety(exchange.order_record(order_id), request.path_params["variety"])
            exchange.cancel(order_id)
        return _ok({"order_id": order_id})

    async def orders(self, request: Request, user: SimUser) -> Response:
        with self.venue.trading(user) as exchange:
            return _ok([self._order(o, user) for o in exchange.order_records()])

    def _order(self, order: SimOrder, user: SimUser) -> wire.JSON:
        return wire.order_json(order, user.user_id, self._tokens.get(order.instrument, 0))

    async def order_history(self, request: Request, user: SimUser) -> Response:
        with self.venue.trading(user) as exchange:
            order = self._find(exchange, request.path_params["order_id"])
            return _ok(wire.history_json(order, user.user_id, self._tokens.get(order.instrument, 0)))

    async def order_trades(self, request: Request, user: SimUser) -> Response:
        with self.venue.trading(user) as exchange:
            order = self._find(exchange, request.path_params["order_id"])
            token = self._tokens.get(order.instrument, 0)
            trades = [t for t in exchange.trades() if t.broker_order_id == order.order_id]
            return _ok([wire.trade_json(t, order.exchange_order_id, token) for t in trades])

    async def trades(self, request: Request, user: SimUser) -> Response:
        with self.venue.trading(user) as exchange:
            exchange_ids = {o.order_id: o.exchange_order_id for o in exchange.order_records()}
            return _ok(
                [
                    wire.trade_json(t, exchange_ids.get(t.broker_order_id), self._tokens.get(t.instrument, 0))
                    for t in exchange.trades()
                ]
            )

    @staticmethod
    def _find(exchange: SimExchange, order_id: str) -> SimOrder:
        try:
            return exchange.order_record(order_id)
        except SimRejected:
            raise WireError(ErrorKind.NOT_FOUND, f"order_id: no order {order_id} today") from None

    # ---- portfolio --------------------------------------------------------------------------------

    def _close(self, instrument: InstrumentId) -> Decimal:
        known = self.venue.instruments.get(instrument)
        return known.last_price if known else Decimal(0)

    async def positions(self, request: Request, user: SimUser) -> Response:
        with self.venue.trading(user) as exchange:
            positions = exchange.position_records()
            prices = {
                p.instrument: (exchange.quote(p.instrument).last_price, self._close(p.instrument)) for p in positions
            }
            return _ok(wire.positions_json(positions, exchange.trades(), prices, self._tokens))

    async def convert(self, request: Request, user: SimUser) -> Response:
        form = wire.parse_convert(await _fields(request))
        with self.venue.trading(user) as exchange:
            exchange.convert_position(form.instrument, form.side, form.quantity, form.old_product, form.new_product)
        return _ok(True)

    async def holdings(self, request: Request, user: SimUser) -> Response:
        today = self.venue.clock().astimezone(IST).date().isoformat()
        with self.venue.trading(user) as exchange:
            return _ok(
                [
                    wire.holding_json(h, self._close(h.instrument), self._tokens.get(h.instrument, 0), today)
                    for h in exchange.holdings()
                ]
            )

    # ---- market data ------------------------------------------------------------------------------

    async def quote(self, request: Request, user: SimUser) -> Response:
        return self._market(request, user, wire.quote_json, QUOTE_LIMIT)

    async def ohlc(self, request: Request, user: SimUser) -> Response:
        return self._market(request, user, wire.ohlc_json, LTP_LIMIT)

    async def ltp(self, request: Request, user: SimUser) -> Response:
        return self._market(request, user, wire.ltp_json, LTP_LIMIT)

    def _market(
        self, request: Request, user: SimUser, render: Callable[[wire.MarketView], wire.JSON], limit: int
    ) -> Response:
        """Quotes keyed as asked (`NSE:INFY` or an instrument token); unknown instruments are left out."""
        keys = request.query_params.getlist("i")
        if len(keys) > limit:
            raise WireError(ErrorKind.INPUT, f"i: at most {limit} instruments per request, got {len(keys)}")
        data: wire.JSON = {}
        with self.venue.trading(user) as exchange:
            for key in keys:
                instrument = self._resolve(key)
                if instrument is not None:
                    data[key] = render(self._view(exchange, instrument))
        return _ok(data)

    def _resolve(self, key: str) -> Instrument | None:
        if key.strip().isdigit():
            return self._by_token.get(key.strip())
        try:
            return self.venue.instruments.get(InstrumentId.parse(key))
        except ValueError:
            return None

    def _view(self, exchange: SimExchange, instrument: Instrument) -> wire.MarketView:
        quote = exchange.quote(instrument.id)
        opens = datetime.combine(quote.at.astimezone(IST).date(), MARKET_OPEN, IST)
        opened = self.venue.prices.price_at(instrument, opens) if quote.at >= opens else instrument.last_price
        market = self.venue.settings.market
        return wire.MarketView(
            instrument=instrument,
            quote=quote,
            open=opened,
            depth=market.depth_per_second,
            band_percent=market.price_band_percent or DEFAULT_CIRCUIT_PERCENT,
        )

    async def instruments(self, request: Request) -> Response:
        exchange = request.path_params.get("exchange")
        return Response(wire.filter_instruments_csv(self._csv, exchange), media_type="text/csv")

    # ---- calculators ------------------------------------------------------------------------------

    def _priced(self, user: SimUser, orders: list[wire.CalcOrder]) -> list[tuple[wire.CalcOrder, Decimal]]:
        """Each order with its price: its own, or where a market order would fill now."""
        priced = []
        with self.venue.trading(user) as exchange:
            for order in orders:
                if order.price is not None:
                    priced.append((order, order.price))
                    continue
                quote = exchange.quote(order.instrument)
                priced.append((order, quote.ask if order.side is Side.BUY else quote.bid))
        return priced

    async def order_margins(self, request: Request, user: SimUser) -> Response:
        priced = self._priced(user, wire.parse_calc_orders(await _json_body(request)))
        return _ok([wire.order_margin_json(order, price) for order, price in priced])

    async def basket_margins(self, request: Request, user: SimUser) -> Response:
        return _ok(wire.basket_json(self._priced(user, wire.parse_calc_orders(await _json_body(request)))))

    async def contract_note(self, request: Request, user: SimUser) -> Response:
        priced = self._priced(user, wire.parse_calc_orders(await _json_body(request), "average_price"))
        return _ok([wire.contract_note_json(order, price) for order, price in priced])


def build_front(venue: SimVenue) -> Front:
    front = KiteFront(venue)
    return Front(routes=front.routes(), background=[front.postbacks.run])
