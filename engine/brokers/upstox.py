"""Upstox API v2 adapter: the BrokerAdapter interface over Upstox's REST API.

Upstox names instruments by key (`NSE_EQ|<ISIN>`, `NSE_FO|<exchange token>`) and products by letter
(I intraday, D delivery or carry-forward), so the adapter maps through Upstox's daily instrument
master: equities by trading symbol, derivatives by exchange token, which is the exchange's own
contract id and therefore the same in the daemon's instrument master.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, time
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
from engine.brokers.pacing import ORDERS, QUOTES, UPSTOX_LIMITS, UPSTOX_QUOTE_BATCH
from engine.brokers.session import IST, BrokerSession, next_expiry, token_from_redirect
from engine.brokers.wire import decimal, ist_time, optional_decimal
from engine.domain import Exchange, InstrumentId, OrderType, Product, Side
from engine.instrument_master import InstrumentMaster

TOKEN_EXPIRY = time(3, 30)  # IST, the morning after login
SEGMENTS: dict[str, Exchange] = {
    "NSE_EQ": Exchange.NSE,
    "BSE_EQ": Exchange.BSE,
    "NSE_FO": Exchange.NFO,
    "BSE_FO": Exchange.BFO,
    "MCX_FO": Exchange.MCX,
    "NCD_FO": Exchange.CDS,
    "BCD_FO": Exchange.BCD,
}
_EQUITY_SEGMENTS = frozenset({"NSE_EQ", "BSE_EQ"})
_PRODUCT_CODES = {Product.MIS: "I", Product.CNC: "D", Product.NRML: "D"}


class UpstoxInstruments:
    """Both directions between the daemon's instrument ids and Upstox instrument keys."""

    def __init__(self, rows: list[dict[str, Any]], master: InstrumentMaster) -> None:
        by_token = {(i.id.exchange, i.exchange_token): i.id for i in master if i.exchange_token}
        self.key_of: dict[InstrumentId, str] = {}
        self.id_of: dict[str, InstrumentId] = {}
        for row in rows:
            segment = str(row.get("segment", ""))
            exchange = SEGMENTS.get(segment)
            key = row.get("instrument_key")
            if exchange is None or not key:
                continue
            if segment in _EQUITY_SEGMENTS:
                try:
                    instrument = InstrumentId.parse(f"{exchange}:{row['trading_symbol']}")
                except ValueError:
                    continue
            else:
                found = by_token.get((exchange, int(row.get("exchange_token") or 0)))
                if found is None:
                    continue
                instrument = found
            self.key_of[instrument] = key
            self.id_of[key] = instrument

    def resolve(self, row: dict[str, Any]) -> tuple[InstrumentId, Product] | None:
        """The instrument and product of an order, trade or position row; None for what the daemon does not model.

        Upstox's D is delivery on equity and carry-forward on derivatives.
        """
        key = str(row.get("instrument_token", ""))
        instrument = self.id_of.get(key)
        code = row.get("product")
        if instrument is None or code not in ("I", "D"):
            return None
        if code == "I":
            return instrument, Product.MIS
        return instrument, Product.CNC if key.split("|", 1)[0] in _EQUITY_SEGMENTS else Product.NRML


class UpstoxAdapter:
    def __init__(
        self,
        name: str,
        *,
        api_key: str,
        api_secret: str,
        redirect_url: str,
        base_url: str,
        order_url: str,
        login_url: str,
        instruments_url: str,
        cache_dir: Path,
        master: InstrumentMaster,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.order_limits = UPSTOX_LIMITS[ORDERS]
        self._api_key = api_key
        self._api_secret = api_secret
        self._redirect_url = redirect_url
        self._base = base_url.rstrip("/")
        self._order_base = order_url.rstrip("/")
        self._login_url = login_url
        self._instruments_url = instruments_url
        self._cache_dir = cache_dir
        self._master = master
        self._http = BrokerHttp(
            broker="upstox",
            limits=UPSTOX_LIMITS,
            error_text=json_error_text(("errors", "message"), ("message",)),
            is_auth_error=lambda response: response.status_code == 401,
            transport=transport,
        )
        self._session: BrokerSession | None = None
        self._instruments: UpstoxInstruments | None = None

    # ---- login --------------------------------------------------------------------------------

    def login_url(self) -> str:
        query = {"response_type": "code", "client_id": self._api_key, "redirect_uri": self._redirect_url}
        return f"{self._login_url}?{urlencode(query)}"

    async def complete_login(self, redirect: str) -> BrokerSession:
        code = token_from_redirect(redirect, "code")
        form = {
            "code": code,
            "client_id": self._api_key,
            "client_secret": self._api_secret,
            "redirect_uri": self._redirect_url,
            "grant_type": "authorization_code",
        }
        response = await self._http.request(
            "POST", f"{self._base}/v2/login/authorization/token", category="other", headers=_HEADERS, data=form
        )
        data = response.json()
        session = BrokerSession(data["access_token"], data["user_id"], next_expiry(datetime.now(UTC), TOKEN_EXPIRY))
        self._session = session
        return session

    def use_session(self, session: BrokerSession | None) -> None:
        self._session = session

    # ---- orders -------------------------------------------------------------------------------

    async def place(self, request: PlaceRequest) -> str:
        instruments = await self._mapping()
        key = instruments.key_of.get(request.instrument)
        if key is None:
            raise Rejected(f"{request.instrument} is not in Upstox's instrument master")
        body = {
            "quantity": request.quantity,
            "product": _PRODUCT_CODES[request.product],
            "validity": "DAY",
            "price": float(request.price or 0) if request.order_type.needs_price else 0,
            "tag": request.tag,
            "instrument_token": key,
            "order_type": request.order_type.value,
            "transaction_type": request.side.value,
            "disclosed_quantity": 0,
            "trigger_price": float(request.trigger_price or 0) if request.order_type.needs_trigger else 0,
            "is_amo": False,
        }
        data = await self._call("POST", "/v2/order/place", "order", base=self._order_base, json=body)
        return str(data["order_id"])

    async def modify(self, broker_order_id: str, change: ModifyRequest) -> None:
        """Upstox wants the whole order back, so unchanged fields are taken from the current record."""
        current = await self._call("GET", "/v2/order/details", "other", params={"order_id": broker_order_id})
        order_type = change.order_type.value if change.order_type else current["order_type"]
        body = {
            "order_id": broker_order_id,
            "quantity": change.quantity if change.quantity is not None else int(current["quantity"]),
            "validity": current.get("validity") or "DAY",
            "price": float(change.price if change.price is not None else decimal(current.get("price"))),
            "order_type": order_type,
            "disclosed_quantity": int(current.get("disclosed_quantity") or 0),
            "trigger_price": float(
                change.trigger_price if change.trigger_price is not None else decimal(current.get("trigger_price"))
            ),
        }
        await self._call("PUT", "/v2/order/modify", "order", base=self._order_base, json=body)

    async def cancel(self, broker_order_id: str) -> None:
        await self._call(
            "DELETE", "/v2/order/cancel", "order", base=self._order_base, params={"order_id": broker_order_id}
        )

    # ---- reads --------------------------------------------------------------------------------

    async def orders(self) -> list[BrokerOrder]:
        instruments = await self._mapping()
        result = []
        for row in await self._call("GET", "/v2/order/retrieve-all", "other") or []:
            resolved = instruments.resolve(row)
            if resolved is None:
                continue
            instrument, product = resolved
            result.append(
                BrokerOrder(
                    broker_order_id=str(row["order_id"]),
                    tag=row.get("tag") or "",
                    instrument=instrument,
                    side=Side(row["transaction_type"]),
                    product=product,
                    order_type=OrderType(row["order_type"]),
                    quantity=int(row["quantity"]),
                    filled_quantity=int(row.get("filled_quantity") or 0),
                    status=oms_status(str(row["status"])),
                    updated_at=ist_time(row.get("exchange_timestamp") or row.get("order_timestamp")),
                    price=optional_decimal(row.get("price")),
                    trigger_price=optional_decimal(row.get("trigger_price")),
                    average_price=optional_decimal(row.get("average_price")),
                    status_message=row.get("status_message") or "",
                )
            )
        return result

    async def trades(self) -> list[BrokerTrade]:
        instruments = await self._mapping()
        result = []
        for row in await self._call("GET", "/v2/order/trades/get-trades-for-day", "other") or []:
            resolved = instruments.resolve(row)
            if resolved is None:
                continue
            instrument, product = resolved
            result.append(
                BrokerTrade(
                    trade_id=str(row["trade_id"]),
                    broker_order_id=str(row["order_id"]),
                    instrument=instrument,
                    side=Side(row["transaction_type"]),
                    product=product,
                    quantity=int(row["quantity"]),
                    price=decimal(row["average_price"]),
                    filled_at=ist_time(row.get("exchange_timestamp") or row.get("order_timestamp")),
                )
            )
        return result

    async def positions(self) -> list[BrokerPosition]:
        instruments = await self._mapping()
        result = []
        for row in await self._call("GET", "/v2/portfolio/short-term-positions", "other") or []:
            resolved = instruments.resolve(row)
            if resolved is None:
                continue
            instrument, product = resolved
            result.append(
                BrokerPosition(
                    instrument=instrument,
                    product=product,
                    quantity=int(row["quantity"]),
                    average_price=decimal(row.get("average_price")),
                    last_price=decimal(row.get("last_price")),
                )
            )
        return result

    async def holdings(self) -> list[Holding]:
        instruments = await self._mapping()
        result = []
        for row in await self._call("GET", "/v2/portfolio/long-term-holdings", "other") or []:
            instrument = instruments.id_of.get(row.get("instrument_token", ""))
            if instrument is None:
                continue
            result.append(
                Holding(
                    instrument=instrument,
                    quantity=int(row["quantity"]) + int(row.get("t1_quantity") or 0),
                    average_price=decimal(row.get("average_price")),
                    last_price=decimal(row.get("last_price")),
                )
            )
        return result

    async def funds(self) -> Funds:
        data = await self._call("GET", "/v2/user/get-funds-and-margin", "other", params={"segment": "SEC"})
        equity = data["equity"]
        available = decimal(equity["available_margin"])
        used = decimal(equity["used_margin"])
        return Funds(available=available, used_margin=used, total=available + used)

    async def quotes(self, instruments: list[InstrumentId]) -> dict[InstrumentId, Quote]:
        mapping = await self._mapping()
        keys = [mapping.key_of[i] for i in instruments if i in mapping.key_of]
        quotes = {}
        for start in range(0, len(keys), UPSTOX_QUOTE_BATCH):  # at most 500 keys per LTP request
            batch = ",".join(keys[start : start + UPSTOX_QUOTE_BATCH])
            data = await self._call("GET", "/v2/market-quote/ltp", QUOTES, params={"symbol": batch})
            now = datetime.now(UTC)
            for row in data.values():
                instrument = mapping.id_of.get(row.get("instrument_token", ""))
                if instrument is not None:
                    last = decimal(row["last_price"])
                    quotes[instrument] = Quote(instrument, last, last, last, now)
        return quotes

    async def close(self) -> None:
        await self._http.close()

    # ---- plumbing -----------------------------------------------------------------------------

    async def _mapping(self) -> UpstoxInstruments:
        if self._instruments is None:
            today = datetime.now(IST).date()
            dump = await daily_dump(self._http, self._instruments_url, self._cache_dir, "upstox", today)
            rows = json.loads(gzip.decompress(dump) if dump[:2] == b"\x1f\x8b" else dump)
            self._instruments = UpstoxInstruments(rows, self._master)
        return self._instruments

    async def _call(self, method: str, path: str, category: str, *, base: str | None = None, **kwargs: Any) -> Any:
        if self._session is None:
            raise AuthExpired("upstox: not logged in")
        headers = {**_HEADERS, "Authorization": f"Bearer {self._session.access_token}"}
        url = f"{base or self._base}{path}"
        response = await self._http.request(method, url, category=category, headers=headers, **kwargs)
        return response.json()["data"]


_HEADERS = {"Accept": "application/json", "Api-Version": "2.0"}
