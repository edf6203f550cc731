"""Zerodha Kite Connect v3 adapter: the BrokerAdapter interface over Kite's REST API.

Kite's symbols are ours (`NSE:INFY` is exchange NSE, tradingsymbol INFY), so normalising an
instrument is only checking that Kite lists it; the daemon's order id travels as Kite's `tag`.
"""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from engine.brokers.base import (
    AuthExpired,
    BrokerOrder,
    BrokerPosition,
    BrokerTrade,
    Funds,
    Holding,
    ModifyRequest,
    PlaceRequest,
    Quote,
    Rejected,
    oms_status,
)
from engine.brokers.dumps import daily_dump
from engine.brokers.http import BrokerHttp, json_error_text
from engine.brokers.pacing import KITE_LIMITS, KITE_QUOTE_BATCH, ORDERS, QUOTES
from engine.brokers.session import IST, BrokerSession, next_expiry, token_from_redirect
from engine.brokers.wire import decimal, ist_time, optional_decimal
from engine.domain import InstrumentId, OrderType, Product, Side

TOKEN_EXPIRY = time(6, 0)  # IST, the morning after login
MARKET_PROTECTION_AUTO = "-1"


def _is_token_error(response: httpx.Response) -> bool:
    if response.status_code != 403:
        return False
    try:
        return response.json().get("error_type") == "TokenException"
    except ValueError:
        return False


def _instrument(row: dict[str, Any]) -> InstrumentId:
    return InstrumentId.parse(f"{row['exchange']}:{row['tradingsymbol']}")


class KiteAdapter:
    def __init__(
        self,
        name: str,
        *,
        api_key: str,
        api_secret: str,
        base_url: str,
        login_url: str,
        cache_dir: Path,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.order_limits = KITE_LIMITS[ORDERS]
        self._api_key = api_key
        self._api_secret = api_secret
        self._base = base_url.rstrip("/")
        self._login_url = login_url
        self._cache_dir = cache_dir
        self._http = BrokerHttp(
            broker="kite",
            limits=KITE_LIMITS,
            error_text=json_error_text(("message",)),
            is_auth_error=_is_token_error,
            transport=transport,
        )
        self._session: BrokerSession | None = None
        self._listed: set[InstrumentId] | None = None

    # ---- login --------------------------------------------------------------------------------

    def login_url(self) -> str:
        return f"{self._login_url}?{urlencode({'api_key': self._api_key, 'v': '3'})}"

    async def complete_login(self, redirect: str) -> BrokerSession:
        request_token = token_from_redirect(redirect, "request_token")
        checksum = hashlib.sha256(f"{self._api_key}{request_token}{self._api_secret}".encode()).hexdigest()
        data = await self._call(
            "POST",
            "/session/token",
            "other",
            authed=False,
            data={"api_key": self._api_key, "request_token": request_token, "checksum": checksum},
        )
        login_time = ist_time(data.get("login_time"))
        session = BrokerSession(data["access_token"], data["user_id"], next_expiry(login_time, TOKEN_EXPIRY))
        self._session = session
        return session

    def use_session(self, session: BrokerSession | None) -> None:
        self._session = session

    # ---- orders -------------------------------------------------------------------------------

    async def place(self, request: PlaceRequest) -> str:
        await self._check_listed(request.instrument)
        form = {
            "exchange": request.instrument.exchange.value,
            "tradingsymbol": request.instrument.symbol,
            "transaction_type": request.side.value,
            "quantity": str(request.quantity),
            "product": request.product.value,
            "order_type": request.order_type.value,
            "validity": "DAY",
            "tag": request.tag,
        }
        if request.price is not None and request.order_type.needs_price:
            form["price"] = str(request.price)
        if request.trigger_price is not None and request.order_type.needs_trigger:
            form["trigger_price"] = str(request.trigger_price)
        if not request.order_type.needs_price:
            form["market_protection"] = MARKET_PROTECTION_AUTO  # required for MARKET and SL-M since 2026
        data = await self._call("POST", "/orders/regular", "order", data=form)
        return str(data["order_id"])

    async def modify(self, broker_order_id: str, change: ModifyRequest) -> None:
        form = {
            key: str(value)
            for key, value in (
                ("quantity", change.quantity),
                ("price", change.price),
                ("trigger_price", change.trigger_price),
                ("order_type", change.order_type.value if change.order_type else None),
            )
            if value is not None
        }
        if change.order_type is not None and not change.order_type.needs_price:
            form["market_protection"] = MARKET_PROTECTION_AUTO
        await self._call("PUT", f"/orders/regular/{broker_order_id}", "order", data=form)

    async def cancel(self, broker_order_id: str) -> None:
        await self._call("DELETE", f"/orders/regular/{broker_order_id}", "order")

    # ---- reads --------------------------------------------------------------------------------

    async def orders(self) -> list[BrokerOrder]:
        return [_order(row) for row in await self._call("GET", "/orders", "other") if _supported(row)]

    async def trades(self) -> list[BrokerTrade]:
        return [
            BrokerTrade(
                trade_id=str(row["trade_id"]),
                broker_order_id=str(row["order_id"]),
                instrument=_instrument(row),
                side=Side(row["transaction_type"]),
                product=Product(row["product"]),
                quantity=int(row["quantity"]),
                price=decimal(row["average_price"]),
                filled_at=ist_time(row.get("fill_timestamp") or row.get("exchange_timestamp")),
            )
            for row in await self._call("GET", "/trades", "other")
            if _supported(row)  # as its orders are: an MTF trade made in Kite's app must not stop the account's sync
        ]

    async def positions(self) -> list[BrokerPosition]:
        data = await self._call("GET", "/portfolio/positions", "other")
        return [
            BrokerPosition(
                instrument=_instrument(row),
                product=Product(row["product"]),
                quantity=int(row["quantity"]),
                average_price=decimal(row["average_price"]),
                last_price=decimal(row["last_price"]),
            )
            for row in data["net"]
            if _supported(row)
        ]

    async def holdings(self) -> list[Holding]:
        return [
            Holding(
                instrument=_instrument(row),
                quantity=int(row["quantity"]) + int(row.get("t1_quantity") or 0),
                average_price=decimal(row["average_price"]),
                last_price=decimal(row["last_price"]),
            )
            for row in await self._call("GET", "/portfolio/holdings", "other")
        ]

    async def funds(self) -> Funds:
        equity = await self._call("GET", "/user/margins/equity", "other")
        available = decimal(equity["net"])
        used = decimal(equity["utilised"]["debits"])
        return Funds(available=available, used_margin=used, total=available + used)

    async def quotes(self, instruments: list[InstrumentId]) -> dict[InstrumentId, Quote]:
        """Kite answers at most 500 instruments per /quote; more go in further requests, each paced."""
        quotes: dict[InstrumentId, Quote] = {}
        for start in range(0, len(instruments), KITE_QUOTE_BATCH):
            quotes.update(await self._quote_batch(instruments[start : start + KITE_QUOTE_BATCH]))
        return quotes

    async def _quote_batch(self, instruments: list[InstrumentId]) -> dict[InstrumentId, Quote]:
        data = await self._call("GET", "/quote", QUOTES, params=[("i", str(i)) for i in instruments])
        quotes = {}
        for instrument in instruments:
            row = data.get(str(instrument))
            if row is None:
                continue
            depth = row.get("depth") or {}
            bids, asks = depth.get("buy") or [{}], depth.get("sell") or [{}]
            last = decimal(row["last_price"])
            quotes[instrument] = Quote(
                instrument=instrument,
                last_price=last,
                bid=decimal(bids[0].get("price")) or last,
                ask=decimal(asks[0].get("price")) or last,
                at=ist_time(row.get("timestamp")),
            )
        return quotes

    async def close(self) -> None:
        await self._http.close()

    # ---- plumbing -----------------------------------------------------------------------------

    async def _check_listed(self, instrument: InstrumentId) -> None:
        if self._listed is None:
            dump = await daily_dump(
                self._http, f"{self._base}/instruments", self._cache_dir, "kite", datetime.now(IST).date()
            )
            rows = csv.DictReader(io.StringIO(dump.decode("utf-8")))
            self._listed = {InstrumentId.parse(f"{r['exchange']}:{r['tradingsymbol']}") for r in rows}
        if instrument not in self._listed:
            raise Rejected(f"{instrument} is not in Kite's instrument list")

    async def _call(self, method: str, path: str, category: str, *, authed: bool = True, **kwargs: Any) -> Any:
        headers = {"X-Kite-Version": "3"}
        if authed:
            if self._session is None:
                raise AuthExpired("kite: not logged in")
            headers["Authorization"] = f"token {self._api_key}:{self._session.access_token}"
        response = await self._http.request(method, f"{self._base}{path}", category=category, headers=headers, **kwargs)
        return response.json()["data"]


def _supported(row: dict[str, Any]) -> bool:
    """Whether the daemon models this row's product (MTF and others are left to the broker's own tools)."""
    return row.get("product") in _PRODUCTS


_PRODUCTS = frozenset(p.value for p in Product)


def _order(row: dict[str, Any]) -> BrokerOrder:
    return BrokerOrder(
        broker_order_id=str(row["order_id"]),
        tag=row.get("tag") or "",
        instrument=_instrument(row),
        side=Side(row["transaction_type"]),
        product=Product(row["product"]),
        order_type=OrderType(row["order_type"]),
        quantity=int(row["quantity"]),
        filled_quantity=int(row.get("filled_quantity") or 0),
        status=oms_status(str(row["status"])),
        updated_at=ist_time(row.get("exchange_update_timestamp") or row.get("order_timestamp")),
        price=optional_decimal(row.get("price")),
        trigger_price=optional_decimal(row.get("trigger_price")),
        average_price=optional_decimal(row.get("average_price")),
        status_message=row.get("status_message") or "",
    )
