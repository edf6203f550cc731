"""Upstox's wire vocabulary without I/O: book records to Upstox JSON rows, Upstox request bodies to core requests.

Kept apart from the HTTP front so every field the simulator emits is visible in one place and can be
checked against the official SDK's models.

Mappings between Upstox and the core:
- product: I is MIS. D is CNC on the equity segments and NRML on derivatives, because Upstox has no NRML
  letter: its D means delivery on equity and carry-forward on F&O. MTF, CO and OCO are refused.
- instrument key: `NSE_EQ|<ISIN>` and `BSE_EQ|<ISIN>` for equities (ISINs from data/isin.csv; NSE and BSE
  share a company's ISIN), `NSE_FO|<exchange_token>` (`BSE_FO|...` on BFO) for derivatives, with the
  exchange token from data/instruments.csv. Quote responses are keyed `<segment>:<trading symbol>`.
- status: the core's OMS stage words in lower case ("open", "trigger pending", "put order req received"...).
- times: IST wall time as "YYYY-MM-DD HH:MM:SS". An absent price or trigger price is sent as 0, as Upstox does.
- instrument master (complete.json.gz): tick_size in paise (5.0 means ₹0.05), as Upstox publishes it;
  F&O expiry in epoch milliseconds at 23:59:59 IST of the expiry day; freeze_quantity is the exchange's
  for index derivatives and the broker's per-order cap of 100000 elsewhere. F&O trading_symbol has
  Upstox's JSON spelling ("NIFTY FUT 24 NOV 26"): map derivatives by exchange_token, the exchange's own
  contract id. F&O rows carry no isin or short_name, as at Upstox.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from importlib import resources
from typing import Any

from engine.brokers.base import BrokerTrade, Funds, Holding, ModifyRequest, PlaceRequest
from engine.domain import Exchange, Instrument, InstrumentId, OrderType, Product, Side
from engine.domain.sessions import IST
from engine.instrument_master import InstrumentMaster
from engine.sim.config import SimUserSettings
from engine.sim.records import SETTLED_STAGE, SimOrder, SimPosition, Stage

BROKER_QUANTITY_CAP = 100_000  # per order, where the exchange sets no freeze quantity
MAX_SLICES = 25  # Upstox refuses a v3 order that would need more slices
MAX_TAG_LENGTH = 40
ORDER_TYPES = tuple(t.value for t in OrderType)
VALIDITIES = ("DAY", "IOC")
PRODUCT_CODES = ("I", "D")
SEGMENTS: dict[Exchange, str] = {
    Exchange.NSE: "NSE_EQ",
    Exchange.BSE: "BSE_EQ",
    Exchange.NFO: "NSE_FO",
    Exchange.BFO: "BSE_FO",
    Exchange.MCX: "MCX_FO",
    Exchange.CDS: "NCD_FO",
    Exchange.BCD: "BCD_FO",
}
EQUITY_SEGMENTS = frozenset({"NSE_EQ", "BSE_EQ"})
_SEGMENT_VENUES = {
    "NSE_EQ": "NSE",
    "BSE_EQ": "BSE",
    "NSE_FO": "NSE",
    "BSE_FO": "BSE",
    "MCX_FO": "MCX",
    "NCD_FO": "NSE",
    "BCD_FO": "BSE",
}
_INDEX_KEYS = {
    "NIFTY": "NSE_INDEX|Nifty 50",
    "BANKNIFTY": "NSE_INDEX|Nifty Bank",
    "FINNIFTY": "NSE_INDEX|Nifty Fin Service",
    "MIDCPNIFTY": "NSE_INDEX|NIFTY MID SELECT",
}
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_PAISA = Decimal("0.01")
_PRICE_QUANTUM = Decimal("0.0001")
ZERO = Decimal(0)
_REQUEST_STAGES = frozenset({Stage.PUT_ORDER_REQ_RECEIVED, Stage.MODIFY_VALIDATION_PENDING, Stage.CANCEL_PENDING})
_BEFORE_EXCHANGE = frozenset({Stage.PUT_ORDER_REQ_RECEIVED, Stage.VALIDATION_PENDING, Stage.OPEN_PENDING})


class ErrorCode(StrEnum):
    """Error codes of the simulated Upstox.

    Upstox documents the first group; the UDAPI102xx group is the simulator's own, one per field or
    refusal, because Upstox's codes for those are not public.
    """

    INVALID_TOKEN = "UDAPI100050"
    RATE_LIMIT = "UDAPI10005"
    INVALID_CREDENTIALS = "UDAPI100016"
    INVALID_INPUT = "UDAPI100036"
    SERVER_ERROR = "UDAPI100500"
    NOT_SUPPORTED = "UDAPI10000"
    ORDER_TYPE_REQUIRED = "UDAPI1004"
    VALIDITY_REQUIRED = "UDAPI1007"
    VALIDITY_INVALID = "UDAPI1055"
    ORDER_TYPE_INVALID = "UDAPI1056"
    QUANTITY = "UDAPI10210"  # not a positive whole number, not whole lots, above the freeze quantity
    PRICE = "UDAPI10211"  # missing where needed, negative, off tick
    PRICE_BAND = "UDAPI10212"  # outside the band around the previous close
    TRIGGER_PRICE = "UDAPI10213"
    PRODUCT = "UDAPI10214"
    INSTRUMENT = "UDAPI10215"  # unknown instrument_token / instrument key
    TRANSACTION_TYPE = "UDAPI10216"
    MARKET_CLOSED = "UDAPI10217"
    INSUFFICIENT_FUNDS = "UDAPI10218"
    INSUFFICIENT_HOLDINGS = "UDAPI10219"
    ORDER = "UDAPI10220"  # order_id missing or unknown, or the order can no longer change
    TAG = "UDAPI10222"
    DISCLOSED_QUANTITY = "UDAPI10223"
    AMO = "UDAPI10224"  # after-market orders are not simulated
    SLICE = "UDAPI10225"  # more than MAX_SLICES slices
    MARKET_PROTECTION = "UDAPI10226"
    LOGIN = "UDAPI10227"  # login dialog or token request that does not match the app
    SEGMENT = "UDAPI10228"  # funds segment other than SEC or COM


class FieldError(ValueError):
    """A request Upstox refuses before it reaches the order book, naming the offending field."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        property_path: str | None = None,
        invalid_value: object = None,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.property_path = property_path
        self.invalid_value = invalid_value
        self.status = status


def error_body(
    code: str, message: str, property_path: str | None = None, invalid_value: object = None
) -> dict[str, Any]:
    """Upstox's error envelope; each key twice, because the SDK's model reads the camelCase spelling."""
    value = float(invalid_value) if isinstance(invalid_value, Decimal) else invalid_value
    problem = {
        "error_code": code,
        "message": message,
        "property_path": property_path,
        "invalid_value": value,
        "errorCode": code,
        "propertyPath": property_path,
        "invalidValue": value,
    }
    return {"status": "error", "errors": [problem]}


# ---- instruments ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """One instrument as Upstox names it."""

    instrument: Instrument
    segment: str
    exchange_token: str
    isin: str = ""  # equities only
    instrument_type: str = "EQ"
    expiry: date | None = None
    strike: Decimal = ZERO

    @property
    def is_equity(self) -> bool:
        return self.segment in EQUITY_SEGMENTS

    @property
    def key(self) -> str:
        return f"{self.segment}|{self.isin if self.is_equity else self.exchange_token}"

    @property
    def symbol(self) -> str:
        return self.instrument.id.symbol

    @property
    def exchange(self) -> str:
        return str(self.instrument.id.exchange)

    @property
    def quote_key(self) -> str:
        return f"{self.segment}:{self.symbol}"

    @property
    def freeze_quantity(self) -> int:
        return self.instrument.freeze_quantity or BROKER_QUANTITY_CAP

    def core_product(self, code: object) -> Product:
        if code == "I":
            return Product.MIS
        if code == "D":
            return Product.CNC if self.is_equity else Product.NRML
        raise FieldError(ErrorCode.PRODUCT, f"product must be one of {', '.join(PRODUCT_CODES)}", "product", code)


def product_code(product: Product) -> str:
    return "I" if product is Product.MIS else "D"


class UpstoxDirectory:
    """Listings by Upstox instrument key and by the core's instrument id."""

    def __init__(self, listings: Iterable[Listing]) -> None:
        self._by_key = {listing.key: listing for listing in listings}
        self._by_id = {listing.instrument.id: listing for listing in self._by_key.values()}

    @classmethod
    def load(cls, master: InstrumentMaster, instruments_csv: str, isin_csv: str) -> UpstoxDirectory:
        """Instruments of `master` found in a Kite-format dump; equities need an ISIN to be listed."""
        isins = {(r["exchange"], r["tradingsymbol"]): r["isin"] for r in csv.DictReader(io.StringIO(isin_csv))}
        rows = csv.DictReader(io.StringIO(instruments_csv))
        return cls(listing for row in rows if (listing := _listing(master, row, isins)) is not None)

    @classmethod
    def default(cls, master: InstrumentMaster) -> UpstoxDirectory:
        data = resources.files("engine.sim.data")
        return cls.load(
            master,
            data.joinpath("instruments.csv").read_text(encoding="utf-8"),
            data.joinpath("isin.csv").read_text(encoding="utf-8"),
        )

    def by_key(self, key: str) -> Listing | None:
        return self._by_key.get(key)

    def of(self, instrument: InstrumentId) -> Listing | None:
        return self._by_id.get(instrument)

    def exchanges(self) -> list[str]:
        return sorted({listing.exchange for listing in self})

    def __iter__(self) -> Iterator[Listing]:
        return iter(self._by_key.values())


def _listing(master: InstrumentMaster, row: Mapping[str, str], isins: Mapping[tuple[str, str], str]) -> Listing | None:
    try:
        instrument_id = InstrumentId.parse(f"{row['exchange']}:{row['tradingsymbol']}")
    except (KeyError, ValueError):
        return None
    instrument = master.get(instrument_id)
    segment = SEGMENTS.get(instrument_id.exchange)
    token = (row.get("exchange_token") or "").strip()
    if instrument is None or segment is None or not token:
        return None
    if segment in EQUITY_SEGMENTS:
        isin = isins.get((str(instrument_id.exchange), instrument_id.symbol))
        return Listing(instrument, segment, token, isin=isin) if isin else None
    expiry = (row.get("expiry") or "").strip()
    return Listing(
        instrument,
        segment,
        token,
        instrument_type=(row.get("instrument_type") or "").strip(),
        expiry=date.fromisoformat(expiry) if expiry else None,
        strike=Decimal((row.get("strike") or "0").strip() or "0"),
    )


def instrument_master_gz(directory: UpstoxDirectory) -> bytes:
    """The whole directory as Upstox's gzipped JSON instrument master (fixed mtime: same bytes every build)."""
    rows = [_master_row(listing, directory) for listing in directory]
    return gzip.compress(json.dumps(rows).encode("utf-8"), mtime=0)


def _master_row(listing: Listing, directory: UpstoxDirectory) -> dict[str, Any]:
    instrument = listing.instrument
    row: dict[str, Any] = {
        "segment": listing.segment,
        "name": instrument.name,
        "exchange": _SEGMENT_VENUES[listing.segment],
        "instrument_type": listing.instrument_type,
        "instrument_key": listing.key,
        "lot_size": instrument.lot_size,
        "freeze_quantity": float(listing.freeze_quantity),
        "exchange_token": listing.exchange_token,
        "tick_size": float(instrument.tick_size * 100),
    }
    if listing.is_equity:
        return row | {"isin": listing.isin, "trading_symbol": listing.symbol, "short_name": instrument.name.title()}
    underlying = instrument.name
    equity = directory.of(InstrumentId(Exchange.NSE, underlying)) if underlying else None
    expiry = listing.expiry
    return row | {
        "trading_symbol": _contract_symbol(listing),
        "expiry": int(datetime.combine(expiry, time(23, 59, 59), IST).timestamp() * 1000) if expiry else None,
        "underlying_key": _INDEX_KEYS.get(underlying) or (equity.key if equity else ""),
        "underlying_symbol": underlying,
        "underlying_type": "INDEX" if underlying in _INDEX_KEYS else "EQUITY",
        "weekly": _is_weekly(listing),
        "minimum_lot": instrument.lot_size,
        "strike_price": float(listing.strike),
    }


def _contract_symbol(listing: Listing) -> str:
    expiry = listing.expiry.strftime("%d %b %y").upper() if listing.expiry else ""
    if listing.instrument_type == "FUT":
        return f"{listing.instrument.name} FUT {expiry}"
    strike = format(listing.strike.normalize(), "f")
    return f"{listing.instrument.name} {strike} {listing.instrument_type} {expiry}"


def _is_weekly(listing: Listing) -> bool:
    """Options expiring before their month's last expiry are weeklies; futures are monthly."""
    expiry = listing.expiry
    return (
        listing.instrument_type in ("CE", "PE") and expiry is not None and (expiry + timedelta(7)).month == expiry.month
    )


# ---- rendering ------------------------------------------------------------------------------------


def ist(at: datetime) -> str:
    return at.astimezone(IST).strftime(_TIME_FORMAT)


def _money(value: Decimal | None) -> float:
    return float((value or ZERO).quantize(_PAISA))


def _price(value: Decimal | None) -> float:
    return float((value or ZERO).quantize(_PRICE_QUANTUM))


def order_status(order: SimOrder) -> str:
    return SETTLED_STAGE[order.status].value.lower()


def order_ref_id(order: SimOrder) -> str:
    return f"udapi-{order.order_id}"


def order_row(order: SimOrder, listing: Listing, user_id: str) -> dict[str, Any]:
    """The order's latest state: an OrderBookData of the order book and order details."""
    message = order.status_message or None
    reached = order.exchange_order_id is not None
    return {
        "exchange": listing.exchange,
        "product": product_code(order.product),
        "price": _price(order.price),
        "quantity": order.quantity,
        "status": order_status(order),
        "guid": None,
        "tag": order.tag or None,
        "instrument_token": listing.key,
        "placed_by": user_id,
        "tradingsymbol": listing.symbol,
        "trading_symbol": listing.symbol,
        "order_type": order.order_type.value,
        "validity": order.validity,
        "trigger_price": _price(order.trigger_price),
        "disclosed_quantity": int(order.meta.get("disclosed_quantity", 0)),
        "transaction_type": order.side.value,
        "average_price": _price(order.average_price),
        "filled_quantity": order.filled_quantity,
        "pending_quantity": order.remaining if order.is_live else 0,
        "status_message": message,
        "status_message_raw": message,
        "exchange_order_id": order.exchange_order_id,
        "parent_order_id": None,
        "order_id": order.order_id,
        "variety": "SIMPLE",
        "order_timestamp": ist(order.placed_at),
        "exchange_timestamp": ist(order.updated_at) if reached else None,
        "is_amo": False,
        "order_request_id": str(sum(1 for s in order.history if s.stage in _REQUEST_STAGES)),
        "order_ref_id": order_ref_id(order),
    }


def history_rows(order: SimOrder, listing: Listing, user_id: str) -> list[dict[str, Any]]:
    """One OrderData per stage the order went through, oldest first."""
    rows = []
    requests = 0
    for snapshot in order.history:
        if snapshot.stage in _REQUEST_STAGES:
            requests += 1
        reached = order.exchange_order_id is not None and snapshot.stage not in _BEFORE_EXCHANGE
        rows.append(
            {
                "exchange": listing.exchange,
                "price": _price(snapshot.price),
                "product": product_code(order.product),
                "quantity": snapshot.quantity,
                "status": snapshot.stage.value.lower(),
                "tag": order.tag or None,
                "validity": order.validity,
                "average_price": _price(snapshot.average_price),
                "disclosed_quantity": int(order.meta.get("disclosed_quantity", 0)),
                "exchange_order_id": order.exchange_order_id if reached else None,
                "exchange_timestamp": ist(snapshot.at) if reached else None,
                "instrument_token": listing.key,
                "is_amo": False,
                "status_message": snapshot.message or None,
                "order_id": order.order_id,
                "order_request_id": str(requests),
                "order_type": snapshot.order_type.value,
                "parent_order_id": None,
                "tradingsymbol": listing.symbol,
                "trading_symbol": listing.symbol,
                "order_timestamp": ist(snapshot.at),
                "filled_quantity": snapshot.filled_quantity,
                "transaction_type": order.side.value,
                "trigger_price": _price(snapshot.trigger_price),
                "placed_by": user_id,
                "variety": "SIMPLE",
            }
        )
    return rows


def trade_row(trade: BrokerTrade, order: SimOrder, listing: Listing) -> dict[str, Any]:
    return {
        "exchange": listing.exchange,
        "product": product_code(trade.product),
        "tradingsymbol": listing.symbol,
        "trading_symbol": listing.symbol,
        "instrument_token": listing.key,
        "order_type": order.order_type.value,
        "transaction_type": trade.side.value,
        "quantity": trade.quantity,
        "exchange_order_id": order.exchange_order_id,
        "order_id": trade.broker_order_id,
        "exchange_timestamp": ist(trade.filled_at),
        "average_price": _price(trade.price),
        "trade_id": trade.trade_id,
        "order_ref_id": order_ref_id(order),
        "order_timestamp": ist(order.placed_at),
    }


@dataclass(slots=True)
class DayFlow:
    """What one (instrument, product) bought and sold today."""

    buy_quantity: int = 0
    buy_value: Decimal = ZERO
    sell_quantity: int = 0
    sell_value: Decimal = ZERO


def day_flows(trades: Iterable[BrokerTrade]) -> dict[tuple[InstrumentId, Product], DayFlow]:
    flows: dict[tuple[InstrumentId, Product], DayFlow] = {}
    for trade in trades:
        flow = flows.setdefault((trade.instrument, trade.product), DayFlow())
        if trade.side is Side.BUY:
            flow.buy_quantity += trade.quantity
            flow.buy_value += trade.quantity * trade.price
        else:
            flow.sell_quantity += trade.quantity
            flow.sell_value += trade.quantity * trade.price
    return flows


def position_row(position: SimPosition, last_price: Decimal, listing: Listing, flow: DayFlow) -> dict[str, Any]:
    """A PositionData; the simulator's book lives within one day, so nothing is carried overnight."""
    quantity = position.quantity
    average = position.average_price if quantity else ZERO
    unrealised = (last_price - average) * quantity
    buy_price = flow.buy_value / flow.buy_quantity if flow.buy_quantity else ZERO
    sell_price = flow.sell_value / flow.sell_quantity if flow.sell_quantity else ZERO
    return {
        "exchange": listing.exchange,
        "multiplier": 1.0,
        "value": _money(flow.buy_value - flow.sell_value),
        "pnl": _money(position.realised + unrealised),
        "product": product_code(position.product),
        "instrument_token": listing.key,
        "average_price": _price(average),
        "buy_value": _money(flow.buy_value),
        "overnight_quantity": 0,
        "day_buy_value": _money(flow.buy_value),
        "day_buy_price": _price(buy_price),
        "overnight_buy_amount": 0.0,
        "overnight_buy_quantity": 0,
        "day_buy_quantity": flow.buy_quantity,
        "day_sell_value": _money(flow.sell_value),
        "day_sell_price": _price(sell_price),
        "overnight_sell_amount": 0.0,
        "overnight_sell_quantity": 0,
        "day_sell_quantity": flow.sell_quantity,
        "quantity": quantity,
        "last_price": _price(last_price),
        "unrealised": _money(unrealised),
        "realised": _money(position.realised),
        "sell_value": _money(flow.sell_value),
        "tradingsymbol": listing.symbol,
        "trading_symbol": listing.symbol,
        "close_price": _price(listing.instrument.last_price),
        "buy_price": _price(buy_price),
        "sell_price": _price(sell_price),
    }


def holding_row(holding: Holding, listing: Listing, used: int) -> dict[str, Any]:
    """A HoldingsData; `used` is the quantity live delivery sell orders have claimed."""
    close = listing.instrument.last_price
    change = holding.last_price - close
    return {
        "isin": listing.isin,
        "cnc_used_quantity": used,
        "collateral_type": "WC",
        "company_name": listing.instrument.name,
        "haircut": 0.0,
        "product": "D",
        "quantity": holding.quantity,
        "tradingsymbol": listing.symbol,
        "trading_symbol": listing.symbol,
        "last_price": _price(holding.last_price),
        "close_price": _price(close),
        "pnl": _money((holding.last_price - holding.average_price) * holding.quantity),
        "day_change": _price(change),
        "day_change_percentage": _money(change * 100 / close) if close else 0.0,
        "instrument_token": listing.key,
        "average_price": _price(holding.average_price),
        "collateral_quantity": 0,
        "collateral_update_quantity": 0,
        "t1_quantity": 0,
        "exchange": listing.exchange,
    }


def margin_rows(funds: Funds, segment: str | None) -> dict[str, dict[str, float]]:
    """Funds per Upstox segment: SEC is the book's equity and F&O money; the simulator has no commodity money."""
    equity = _margin_row(funds.used_margin, funds.available)
    commodity = _margin_row(ZERO, ZERO)
    if segment is None:
        return {"equity": equity, "commodity": commodity}
    if segment == "SEC":
        return {"equity": equity}
    if segment == "COM":
        return {"commodity": commodity}
    raise FieldError(ErrorCode.SEGMENT, "segment must be SEC (equity) or COM (commodity)", "segment", segment)


def _margin_row(used: Decimal, available: Decimal) -> dict[str, float]:
    return {
        "used_margin": _money(used),
        "payin_amount": 0.0,
        "span_margin": 0.0,
        "adhoc_margin": 0.0,
        "notional_cash": 0.0,
        "available_margin": _money(available),
        "exposure_margin": 0.0,
    }


def ltp_row(listing: Listing, last_price: Decimal) -> dict[str, Any]:
    return {"last_price": _price(last_price), "instrument_token": listing.key}


def ltp_v3_row(listing: Listing, last_price: Decimal) -> dict[str, Any]:
    """v3 adds the last traded quantity and volume, which the simulator has no tape for (0), and the close."""
    return ltp_row(listing, last_price) | {"ltq": 0, "volume": 0, "cp": _price(listing.instrument.last_price)}


def profile_data(user: SimUserSettings, exchanges: list[str]) -> dict[str, Any]:
    return {
        "email": user.email,
        "exchanges": exchanges,
        "products": list(PRODUCT_CODES),
        "broker": "UPSTOX",
        "user_id": user.user_id,
        "user_name": user.name,
        "order_types": list(ORDER_TYPES),
        "user_type": "individual",
        "poa": False,
        "is_active": True,
    }


def token_response(profile: Mapping[str, Any], access_token: str) -> dict[str, Any]:
    """Upstox answers the token exchange with the profile and the token, flat, outside the usual envelope."""
    return {**profile, "access_token": access_token, "extended_token": None}


# ---- parsing --------------------------------------------------------------------------------------


def parse_body(raw: bytes) -> dict[str, Any]:
    """A JSON object body; numbers with a fraction become Decimals so prices stay exact."""
    try:
        body = json.loads(raw or b"{}", parse_float=Decimal)
    except ValueError:
        raise FieldError(ErrorCode.INVALID_INPUT, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise FieldError(ErrorCode.INVALID_INPUT, "the request body must be a JSON object")
    return body


def _choice(body: Mapping[str, Any], name: str, allowed: Collection[str], missing: ErrorCode, bad: ErrorCode) -> str:
    value = body.get(name)
    if value is None or value == "":
        raise FieldError(missing, f"{name} is required", name, value)
    if value not in allowed:
        raise FieldError(bad, f"{name} must be one of {', '.join(allowed)}", name, value)
    return str(value)


def _whole(body: Mapping[str, Any], name: str, code: ErrorCode, *, minimum: int, required: bool = False) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise FieldError(code, f"{name} is required", name, value)
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or value != int(value):
        raise FieldError(code, f"{name} must be a whole number", name, value)
    if value < minimum:
        raise FieldError(code, f"{name} must be at least {minimum}", name, value)
    return int(value)


def _amount(body: Mapping[str, Any], name: str, code: ErrorCode) -> Decimal | None:
    """A price-like field; Upstox sends 0 for "none", so 0 and absence both mean None."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise FieldError(code, f"{name} must be a number", name, value)
    amount = Decimal(value)
    if amount < 0:
        raise FieldError(code, f"{name} must not be negative", name, value)
    return amount or None


def _flag(body: Mapping[str, Any], name: str, code: ErrorCode) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise FieldError(code, f"{name} must be true or false", name, value)
    return value


def _tag(body: Mapping[str, Any]) -> str:
    value = body.get("tag") or ""
    if not isinstance(value, str) or len(value) > MAX_TAG_LENGTH:
        raise FieldError(ErrorCode.TAG, f"tag must be text of at most {MAX_TAG_LENGTH} characters", "tag", value)
    return value


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """A parsed place-order body."""

    request: PlaceRequest
    listing: Listing
    validity: str
    disclosed_quantity: int
    slice: bool = False
    market_protection: Decimal | None = None

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"disclosed_quantity": self.disclosed_quantity}
        if self.market_protection is not None:
            meta["market_protection"] = str(self.market_protection)
        return meta

    def slices(self) -> list[PlaceRequest]:
        """The orders to place: with `slice`, whole-lot pieces no larger than the freeze quantity.

        An order that is not in whole lots is left whole, so the book refuses it for that reason.
        """
        quantity = self.request.quantity
        cap = self.listing.freeze_quantity
        lot = self.listing.instrument.lot_size
        if not self.slice or quantity <= cap or quantity % lot:
            return [self.request]
        size = max(lot, cap - cap % lot)
        sizes = [size] * (quantity // size) + ([quantity % size] if quantity % size else [])
        if len(sizes) > MAX_SLICES:
            raise FieldError(
                ErrorCode.SLICE, f"the order needs {len(sizes)} slices; at most {MAX_SLICES}", "quantity", quantity
            )
        return [replace(self.request, quantity=q) for q in sizes]


def parse_place(body: Mapping[str, Any], directory: UpstoxDirectory, *, v3: bool) -> PlaceOrder:
    """Check the fields Upstox checks at its gateway; prices against ticks, bands and funds are the book's job."""
    key = body.get("instrument_token")
    if not isinstance(key, str) or not key:
        raise FieldError(ErrorCode.INSTRUMENT, "instrument_token is required", "instrument_token", key)
    listing = directory.by_key(key)
    if listing is None:
        raise FieldError(ErrorCode.INSTRUMENT, f"unknown instrument_token {key}", "instrument_token", key)
    side = _choice(body, "transaction_type", ("BUY", "SELL"), ErrorCode.TRANSACTION_TYPE, ErrorCode.TRANSACTION_TYPE)
    order_type = _choice(body, "order_type", ORDER_TYPES, ErrorCode.ORDER_TYPE_REQUIRED, ErrorCode.ORDER_TYPE_INVALID)
    validity = _choice(body, "validity", VALIDITIES, ErrorCode.VALIDITY_REQUIRED, ErrorCode.VALIDITY_INVALID)
    product = listing.core_product(body.get("product"))
    quantity = _whole(body, "quantity", ErrorCode.QUANTITY, minimum=1, required=True)
    assert quantity is not None  # required
    disclosed = _whole(body, "disclosed_quantity", ErrorCode.DISCLOSED_QUANTITY, minimum=0) or 0
    if disclosed > quantity:
        raise FieldError(
            ErrorCode.DISCLOSED_QUANTITY, "disclosed_quantity must not exceed quantity", "disclosed_quantity", disclosed
        )
    if _flag(body, "is_amo", ErrorCode.AMO):
        raise FieldError(
            ErrorCode.AMO, "after-market orders are not simulated; place it in market hours", "is_amo", True
        )
    protection = _amount(body, "market_protection", ErrorCode.MARKET_PROTECTION) if v3 else None
    if protection is not None and protection > 100:
        raise FieldError(
            ErrorCode.MARKET_PROTECTION, "market_protection is a percentage up to 100", "market_protection", protection
        )
    request = PlaceRequest(
        tag=_tag(body),
        instrument=listing.instrument.id,
        side=Side(side),
        quantity=quantity,
        product=product,
        order_type=OrderType(order_type),
        price=_amount(body, "price", ErrorCode.PRICE),
        trigger_price=_amount(body, "trigger_price", ErrorCode.TRIGGER_PRICE),
    )
    return PlaceOrder(
        request=request,
        listing=listing,
        validity=validity,
        disclosed_quantity=disclosed,
        slice=v3 and _flag(body, "slice", ErrorCode.SLICE),
        market_protection=protection,
    )


@dataclass(frozen=True, slots=True)
class ModifyOrder:
    """A parsed modify-order body. Upstox resends the whole order; unchanged fields come back as they were."""

    order_id: str
    change: ModifyRequest
    validity: str
    disclosed_quantity: int | None

    def check(self, current: SimOrder) -> None:
        """Refuse what the book cannot change in place: validity and disclosed quantity."""
        if self.validity != current.validity:
            raise FieldError(
                ErrorCode.VALIDITY_INVALID, "an order's validity cannot be changed", "validity", self.validity
            )
        disclosed = self.disclosed_quantity
        if disclosed is not None and disclosed != int(current.meta.get("disclosed_quantity", 0)):
            raise FieldError(
                ErrorCode.DISCLOSED_QUANTITY,
                "an order's disclosed quantity cannot be changed",
                "disclosed_quantity",
                disclosed,
            )


def parse_modify(body: Mapping[str, Any]) -> ModifyOrder:
    order_id = body.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        raise FieldError(ErrorCode.ORDER, "order_id is required", "order_id", order_id)
    order_type = _choice(body, "order_type", ORDER_TYPES, ErrorCode.ORDER_TYPE_REQUIRED, ErrorCode.ORDER_TYPE_INVALID)
    validity = _choice(body, "validity", VALIDITIES, ErrorCode.VALIDITY_REQUIRED, ErrorCode.VALIDITY_INVALID)
    change = ModifyRequest(
        quantity=_whole(body, "quantity", ErrorCode.QUANTITY, minimum=1),
        price=_amount(body, "price", ErrorCode.PRICE),
        trigger_price=_amount(body, "trigger_price", ErrorCode.TRIGGER_PRICE),
        order_type=OrderType(order_type),
    )
    disclosed = _whole(body, "disclosed_quantity", ErrorCode.DISCLOSED_QUANTITY, minimum=0)
    return ModifyOrder(order_id, change, validity, disclosed)
