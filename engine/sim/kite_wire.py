"""Kite Connect v3 on the wire: simulator records as Kite's JSON, and Kite's forms as simulator requests.

Pure functions without I/O, so every shape can be held against Zerodha's mock responses: each key
tuple below is the key set of one mock (tests/data/kite_mocks), in its order. Numbers go out as JSON
numbers, times as IST "YYYY-MM-DD HH:MM:SS", ids as strings, absent values as null or 0 the way
Kite sends them. Parse errors name the offending field first ("quantity: must be ...").
"""

from __future__ import annotations

import hashlib
import html
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.brokers.base import BrokerOrderStatus, BrokerTrade, Funds, Holding, ModifyRequest, PlaceRequest, Quote
from engine.domain import Exchange, Instrument, InstrumentId, OrderType, Product, Side
from engine.domain.margin import MARGIN_RATES
from engine.domain.sessions import IST
from engine.ledger.charges import Charges, instrument_kind, order_charges
from engine.sim.config import SimUserSettings
from engine.sim.http import ErrorKind, WireError
from engine.sim.records import SETTLED_STAGE, OrderSnapshot, SimOrder, SimPosition, Stage
from engine.sim.venue import SimSession

JSON = dict[str, Any]

# error_type and HTTP status per error kind, as Kite answers them
KITE_ERRORS: dict[ErrorKind, tuple[str, int]] = {
    ErrorKind.TOKEN: ("TokenException", 403),
    ErrorKind.INPUT: ("InputException", 400),
    ErrorKind.ORDER: ("OrderException", 400),
    ErrorKind.MARGIN: ("MarginException", 400),
    ErrorKind.HOLDING: ("HoldingException", 400),
    ErrorKind.RATE_LIMIT: ("NetworkException", 429),
    ErrorKind.NETWORK: ("NetworkException", 503),
    ErrorKind.NOT_FOUND: ("GeneralException", 404),
}

ORDER_KEYS = (
    "account_id", "placed_by", "order_id", "exchange_order_id", "parent_order_id", "status", "status_message",
    "status_message_raw", "order_timestamp", "exchange_update_timestamp", "exchange_timestamp", "variety",
    "modified", "exchange", "tradingsymbol", "instrument_token", "order_type", "transaction_type", "validity",
    "validity_ttl", "product", "quantity", "disclosed_quantity", "price", "trigger_price", "average_price",
    "filled_quantity", "pending_quantity", "cancelled_quantity", "market_protection", "meta", "tag", "tags", "guid",
)  # fmt: skip
HISTORY_KEYS = (
    "average_price", "cancelled_quantity", "disclosed_quantity", "exchange", "exchange_order_id",
    "exchange_timestamp", "filled_quantity", "instrument_token", "order_id", "order_timestamp", "order_type",
    "parent_order_id", "pending_quantity", "placed_by", "price", "product", "quantity", "status", "status_message",
    "tag", "tradingsymbol", "transaction_type", "trigger_price", "validity", "variety", "modified",
)  # fmt: skip
POSTBACK_ORDER_KEYS = (
    "placed_by", "order_id", "exchange_order_id", "parent_order_id", "status", "status_message",
    "status_message_raw", "order_timestamp", "exchange_update_timestamp", "exchange_timestamp", "variety",
    "exchange", "tradingsymbol", "instrument_token", "order_type", "transaction_type", "validity", "product",
    "quantity", "disclosed_quantity", "price", "trigger_price", "average_price", "filled_quantity",
    "pending_quantity", "cancelled_quantity", "market_protection", "meta", "tag", "guid",
)  # fmt: skip

VARIETIES = frozenset({"regular", "iceberg"})
UNSUPPORTED_VARIETIES = frozenset({"amo", "co", "auction"})
VALIDITIES = frozenset({"DAY", "IOC"})
MAX_AUTOSLICES = 10
ICEBERG_LEGS = range(2, 11)
EXCHANGES = [e.value for e in Exchange]
PRODUCTS = [p.value for p in Product]
ORDER_TYPES = [t.value for t in OrderType]
_TAG = re.compile(r"^[A-Za-z0-9]{1,20}$")
_REQUEST_STAGES = frozenset({Stage.PUT_ORDER_REQ_RECEIVED, Stage.MODIFY_VALIDATION_PENDING})
_EXCHANGE_STAGES = frozenset({Stage.OPEN, Stage.TRIGGER_PENDING, Stage.COMPLETE, Stage.CANCELLED})
_NO_PROTECTION_TYPES = frozenset({OrderType.LIMIT, OrderType.SL})


def kite_time(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")


def _num(value: Decimal | None) -> float:
    return 0.0 if value is None else float(value)


def ok(data: Any) -> JSON:
    return {"status": "success", "data": data}


def error_body(kind: ErrorKind, message: str) -> tuple[JSON, int]:
    error_type, status = KITE_ERRORS[kind]
    return {"status": "error", "message": message, "error_type": error_type, "data": None}, status


def _input(field: str, problem: str) -> WireError:
    return WireError(ErrorKind.INPUT, f"{field}: {problem}")


# ---- orders ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Moment:
    """What Kite shows of an order at one point of its history besides the snapshot itself."""

    requested_at: datetime  # the latest place or modify request: Kite's order_timestamp
    exchange_at: datetime | None  # when the exchange last acknowledged it; None before it got there
    modified: bool


def _moments(history: Sequence[OrderSnapshot]) -> list[_Moment]:
    moments: list[_Moment] = []
    requested, exchange_at, modified, awaiting = history[0].at, None, False, True
    for snap in history:
        if snap.stage in _REQUEST_STAGES:
            requested, awaiting = snap.at, True
            modified = modified or snap.stage is Stage.MODIFY_VALIDATION_PENDING
        elif snap.stage in _EXCHANGE_STAGES and awaiting:
            exchange_at, awaiting = snap.at, False
        moments.append(_Moment(requested, exchange_at, modified))
    return moments


def _current(order: SimOrder) -> OrderSnapshot:
    return OrderSnapshot(
        stage=SETTLED_STAGE[order.status],
        at=order.updated_at,
        quantity=order.quantity,
        filled_quantity=order.filled_quantity,
        average_price=order.average_price,
        price=order.price,
        trigger_price=order.trigger_price,
        order_type=order.order_type,
        message=order.status_message,
    )


def _order_fields(order: SimOrder, snap: OrderSnapshot, moment: _Moment, user_id: str, token: int) -> JSON:
    """Every field Kite has for an order, as it stood at `snap`; callers pick their mock's keys."""
    meta = order.meta
    at_exchange = moment.exchange_at is not None
    rejected = snap.stage is Stage.REJECTED
    unfilled = snap.quantity - snap.filled_quantity
    message = snap.message or None
    tags = [order.tag] if order.tag else []
    if "autoslice_parent" in meta:
        tags += ["autoslice", f"autoslice:{meta['autoslice_parent']}"]
    return {
        "account_id": user_id,
        "placed_by": user_id,
        "order_id": order.order_id,
        "exchange_order_id": order.exchange_order_id if at_exchange else None,
        "parent_order_id": None,
        "status": snap.stage.value,
        "status_message": message,
        "status_message_raw": message,
        "order_timestamp": kite_time(moment.requested_at),
        "exchange_update_timestamp": kite_time(snap.at) if at_exchange else None,
        "exchange_timestamp": kite_time(moment.exchange_at),
        "variety": meta.get("variety", "regular"),
        "modified": moment.modified,
        "exchange": order.instrument.exchange.value,
        "tradingsymbol": order.instrument.symbol,
        "instrument_token": token,
        "order_type": snap.order_type.value,
        "transaction_type": order.side.value,
        "validity": order.validity,
        "validity_ttl": 0,
        "product": order.product.value,
        "quantity": snap.quantity,
        "disclosed_quantity": meta.get("disclosed_quantity", 0),
        "price": _num(snap.price),
        "trigger_price": _num(snap.trigger_price),
        "average_price": _num(snap.average_price),
        "filled_quantity": snap.filled_quantity,
        "pending_quantity": 0 if rejected else unfilled,
        "cancelled_quantity": unfilled if snap.stage is Stage.CANCELLED else 0,
        "market_protection": meta.get("market_protection", 0),
        "meta": {"iceberg": dict(meta["iceberg"])} if "iceberg" in meta else {},
        "tag": order.tag or None,
        "tags": tags,
        "guid": meta.get("guid"),
    }


def _pick(fields: JSON, keys: Iterable[str]) -> JSON:
    return {key: fields[key] for key in keys}


def order_json(order: SimOrder, user_id: str, token: int) -> JSON:
    """An entry of GET /orders: the order as it stands now."""
    moment = _moments(order.history)[-1]
    return _pick(_order_fields(order, _current(order), moment, user_id, token), ORDER_KEYS)


def history_json(order: SimOrder, user_id: str, token: int) -> list[JSON]:
    """GET /orders/{id}: one entry per status the order passed through, transient ones included."""
    return [
        _pick(_order_fields(order, snap, moment, user_id, token), HISTORY_KEYS)
        for snap, moment in zip(order.history, _moments(order.history), strict=True)
    ]


def app_id(api_key: str) -> int:
    """A stable numeric app id: Kite's postbacks identify the app by number, the simulator's apps by key."""
    return zlib.crc32(api_key.encode()) % 100_000


def postback_checksum(order_id: str, order_timestamp: str, api_secret: str) -> str:
    """How a postback receiver knows Kite sent it: hex sha256 of order id, order timestamp and app secret."""
    return hashlib.sha256(f"{order_id}{order_timestamp}{api_secret}".encode()).hexdigest()


def postback_json(order: SimOrder, user_id: str, token: int, api_key: str, api_secret: str) -> JSON:
    """The body POSTed to an app's postback URL when one of its user's orders changes."""
    moment = _moments(order.history)[-1]
    fields = _pick(_order_fields(order, _current(order), moment, user_id, token), POSTBACK_ORDER_KEYS)
    return {
        "user_id": user_id,
        "unfilled_quantity": 0 if order.status is BrokerOrderStatus.REJECTED else order.remaining,
        "app_id": app_id(api_key),
        "checksum": postback_checksum(fields["order_id"], fields["order_timestamp"], api_secret),
        **fields,
    }


def trade_json(trade: BrokerTrade, exchange_order_id: str | None, token: int) -> JSON:
    return {
        "trade_id": trade.trade_id,
        "order_id": trade.broker_order_id,
        "exchange": trade.instrument.exchange.value,
        "tradingsymbol": trade.instrument.symbol,
        "instrument_token": token,
        "product": trade.product.value,
        "average_price": float(trade.price),
        "quantity": trade.quantity,
        "exchange_order_id": exchange_order_id,
        "transaction_type": trade.side.value,
        "fill_timestamp": kite_time(trade.filled_at),
        "order_timestamp": trade.filled_at.astimezone(IST).strftime("%H:%M:%S"),
        "exchange_timestamp": kite_time(trade.filled_at),
    }


# ---- order forms ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceForm:
    request: PlaceRequest
    validity: str
    meta: dict[str, Any]  # variety, disclosed quantity, market protection, ... kept on the SimOrder
    autoslice: bool


def _required(form: Mapping[str, str], field: str) -> str:
    value = form.get(field, "").strip()
    if not value:
        raise _input(field, "is required")
    return value


def _choice(form: Mapping[str, str], field: str, allowed: Sequence[str], default: str | None = None) -> str:
    value = form.get(field, "").strip() or default
    if value is None:
        raise _input(field, f"is required (one of {', '.join(allowed)})")
    if value not in allowed:
        raise _input(field, f"must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _int(form: Mapping[str, str], field: str, *, minimum: int = 1) -> int | None:
    raw = form.get(field, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise _input(field, f"must be an integer, got {raw!r}") from None
    if value < minimum:
        raise _input(field, "must be a positive integer" if minimum == 1 else f"must be at least {minimum}")
    return value


def _decimal(form: Mapping[str, str], field: str) -> Decimal | None:
    raw = form.get(field, "").strip()
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise _input(field, f"must be a number, got {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise _input(field, f"must be a non-negative number, got {raw!r}")
    return value


def _market_protection(form: Mapping[str, str], order_type: OrderType, stored: int = 0) -> int:
    """SEBI's 2026 rule as Kite applies it: MARKET and SL-M orders carry -1 (auto) or 1..100 percent."""
    raw = form.get("market_protection", "").strip()
    try:
        value = int(raw) if raw else stored
    except ValueError:
        raise _input("market_protection", f"must be -1 or 1..100, got {raw!r}") from None
    if value != -1 and not 0 <= value <= 100:
        raise _input("market_protection", f"must be -1 (auto) or 1..100 percent, got {value}")
    if value == 0 and order_type not in _NO_PROTECTION_TYPES:
        raise _input("market_protection", f"a {order_type} order needs market_protection -1 (auto) or 1..100")
    return value


def parse_variety(variety: str) -> str:
    if variety in UNSUPPORTED_VARIETIES:
        raise _input("variety", f"{variety} orders are not supported by the simulator; use regular or iceberg")
    if variety not in VARIETIES:
        raise _input("variety", f"must be one of regular, amo, co, iceberg, auction, got {variety!r}")
    return variety


def _validity(form: Mapping[str, str]) -> str:
    validity = _choice(form, "validity", ["DAY", "IOC", "TTL"], "DAY")
    if validity not in VALIDITIES:
        raise _input("validity", f"{validity} is not supported by the simulator; use DAY or IOC")
    return validity


def parse_place(form: Mapping[str, str], variety: str) -> PlaceForm:
    """POST /orders/{variety}: the order, its validity and the Kite-only fields for SimOrder.meta."""
    variety = parse_variety(variety)
    exchange = _choice(form, "exchange", EXCHANGES)
    symbol = _required(form, "tradingsymbol")
    try:
        instrument = InstrumentId.parse(f"{exchange}:{symbol}")
    except ValueError as exc:
        raise _input("tradingsymbol", str(exc)) from None
    side = Side(_choice(form, "transaction_type", ["BUY", "SELL"]))
    quantity = _int(form, "quantity")
    if quantity is None:
        raise _input("quantity", "must be a positive integer")
    product = form.get("product", "").strip()
    if product == "MTF":
        raise _input("product", "MTF is not supported by the simulator")
    order_type = OrderType(_choice(form, "order_type", ORDER_TYPES))
    tag = form.get("tag", "").strip()
    if tag and not _TAG.match(tag):
        raise _input("tag", "must be at most 20 alphanumeric characters")
    disclosed = _int(form, "disclosed_quantity", minimum=0) or 0
    if disclosed > quantity:
        raise _input("disclosed_quantity", f"must not exceed the quantity {quantity}")
    meta: dict[str, Any] = {
        "variety": variety,
        "disclosed_quantity": disclosed,
        "market_protection": _market_protection(form, order_type),
    }
    if algo_id := form.get("algo_id", "").strip():
        meta["algo_id"] = algo_id
    if variety == "iceberg":
        meta["iceberg"] = _iceberg(form, quantity)
    request = PlaceRequest(
        tag=tag,
        instrument=instrument,
        side=side,
        quantity=quantity,
        product=Product(_choice(form, "product", PRODUCTS)),
        order_type=order_type,
        price=_decimal(form, "price") if order_type.needs_price else None,
        trigger_price=_decimal(form, "trigger_price") if order_type.needs_trigger else None,
    )
    autoslice = form.get("autoslice", "").strip().lower() in ("true", "1")
    return PlaceForm(request, _validity(form), meta, autoslice)


def _iceberg(form: Mapping[str, str], quantity: int) -> JSON:
    """Iceberg fields; the simulator shows the legs in meta but matches the order as one."""
    legs = _int(form, "iceberg_legs")
    if legs is None or legs not in ICEBERG_LEGS:
        raise _input("iceberg_legs", "must be between 2 and 10")
    leg_quantity = _int(form, "iceberg_quantity")
    if leg_quantity is None or leg_quantity * legs < quantity or leg_quantity >= quantity:
        raise _input("iceberg_quantity", f"must be below the quantity {quantity} and cover it in {legs} legs")
    return {
        "leg": 1,
        "legs": legs,
        "leg_quantity": leg_quantity,
        "total_quantity": quantity,
        "remaining_quantity": quantity - leg_quantity,
    }


def autoslice_sizes(quantity: int, instrument: Instrument | None) -> list[int]:
    """Kite's autoslice: slices of at most the freeze quantity (whole lots), never more than 10."""
    freeze = instrument.freeze_quantity if instrument else 0
    if not freeze or quantity <= freeze:
        return [quantity]
    assert instrument is not None
    size = freeze - freeze % instrument.lot_size
    full, rest = divmod(quantity, size)
    sizes = [size] * full + ([rest] if rest else [])
    if len(sizes) > MAX_AUTOSLICES:
        raise _input("quantity", f"autoslice makes at most {MAX_AUTOSLICES} slices of {size}; {quantity} needs more")
    return sizes


def child_error(kind: ErrorKind, message: str) -> JSON:
    """A failed slice in an autoslice response."""
    body, status = error_body(kind, message)
    return {"error": {"code": status, "error_type": body["error_type"], "message": message, "data": None}}


def parse_modify(form: Mapping[str, str], order: SimOrder, variety: str) -> tuple[ModifyRequest, JSON]:
    """PUT /orders/{variety}/{id}: the change, and the meta fields (disclosed quantity, protection) it sets."""
    check_variety(order, variety)
    raw_type = form.get("order_type", "").strip()
    order_type = OrderType(_choice(form, "order_type", ORDER_TYPES)) if raw_type else None
    validity = form.get("validity", "").strip()
    if validity and validity != order.validity:
        raise _input("validity", f"cannot change from {order.validity} to {validity} in the simulator")
    meta: JSON = {}
    disclosed = _int(form, "disclosed_quantity", minimum=0)
    if disclosed is not None:
        meta["disclosed_quantity"] = disclosed
    protection = _market_protection(form, order_type or order.order_type, order.meta.get("market_protection", 0))
    if protection != order.meta.get("market_protection", 0):
        meta["market_protection"] = protection
    change = ModifyRequest(
        quantity=_int(form, "quantity"),
        price=_decimal(form, "price"),
        trigger_price=_decimal(form, "trigger_price"),
        order_type=order_type,
    )
    return change, meta


def check_variety(order: SimOrder, variety: str) -> None:
    """Modify and cancel name the order's variety in the path; a wrong one is refused as at Kite."""
    if parse_variety(variety) != order.meta.get("variety", "regular"):
        raise _input("variety", f"order {order.order_id} is a {order.meta.get('variety', 'regular')} order")


@dataclass(frozen=True, slots=True)
class ConvertForm:
    instrument: InstrumentId
    side: Side
    quantity: int
    old_product: Product
    new_product: Product


def parse_convert(form: Mapping[str, str]) -> ConvertForm:
    """PUT /portfolio/positions; position_type (day/overnight) is checked, every sim position is a day one."""
    exchange = _choice(form, "exchange", EXCHANGES)
    try:
        instrument = InstrumentId.parse(f"{exchange}:{_required(form, 'tradingsymbol')}")
    except ValueError as exc:
        raise _input("tradingsymbol", str(exc)) from None
    _choice(form, "position_type", ["day", "overnight"], "day")
    quantity = _int(form, "quantity")
    if quantity is None:
        raise _input("quantity", "must be a positive integer")
    return ConvertForm(
        instrument=instrument,
        side=Side(_choice(form, "transaction_type", ["BUY", "SELL"])),
        quantity=quantity,
        old_product=Product(_choice(form, "old_product", PRODUCTS)),
        new_product=Product(_choice(form, "new_product", PRODUCTS)),
    )


# ---- portfolio and funds --------------------------------------------------------------------------


def _position_row(position: SimPosition, trades: list[BrokerTrade], last: Decimal, close: Decimal, token: int) -> JSON:
    bought = [t for t in trades if t.side is Side.BUY]
    sold = [t for t in trades if t.side is Side.SELL]
    buy_quantity, sell_quantity = sum(t.quantity for t in bought), sum(t.quantity for t in sold)
    buy_value = sum((t.quantity * t.price for t in bought), Decimal(0))
    sell_value = sum((t.quantity * t.price for t in sold), Decimal(0))
    buy_price = buy_value / buy_quantity if buy_quantity else Decimal(0)
    sell_price = sell_value / sell_quantity if sell_quantity else Decimal(0)
    unrealised = position.quantity * (last - position.average_price)
    pnl = position.realised + unrealised
    return {
        "tradingsymbol": position.instrument.symbol,
        "exchange": position.instrument.exchange.value,
        "instrument_token": token,
        "product": position.product.value,
        "quantity": position.quantity,
        "overnight_quantity": 0,
        "multiplier": 1,
        "average_price": float(position.average_price),
        "close_price": float(close),
        "last_price": float(last),
        "value": float(sell_value - buy_value),
        "pnl": float(pnl),
        "m2m": float(pnl),
        "unrealised": float(unrealised),
        "realised": float(position.realised),
        "buy_quantity": buy_quantity,
        "buy_price": float(buy_price),
        "buy_value": float(buy_value),
        "buy_m2m": float(buy_value),
        "sell_quantity": sell_quantity,
        "sell_price": float(sell_price),
        "sell_value": float(sell_value),
        "sell_m2m": float(sell_value),
        "day_buy_quantity": buy_quantity,
        "day_buy_price": float(buy_price),
        "day_buy_value": float(buy_value),
        "day_sell_quantity": sell_quantity,
        "day_sell_price": float(sell_price),
        "day_sell_value": float(sell_value),
    }


def positions_json(
    positions: Iterable[SimPosition],
    trades: Iterable[BrokerTrade],
    prices: Mapping[InstrumentId, tuple[Decimal, Decimal]],
    tokens: Mapping[InstrumentId, int],
) -> JSON:
    """{net, day}: the same rows, since nothing in the simulator is carried overnight.

    Quantity, average and realised PnL come from the book (so a conversion moves them); the buy and
    sell figures from the trades, which stay under the product they were traded in.
    `prices` maps an instrument to (last price, previous close).
    """
    by_key: dict[tuple[InstrumentId, Product], list[BrokerTrade]] = {}
    for trade in trades:
        by_key.setdefault((trade.instrument, trade.product), []).append(trade)
    rows = [
        _position_row(p, by_key.get((p.instrument, p.product), []), *prices[p.instrument], tokens.get(p.instrument, 0))
        for p in positions
    ]
    return {"net": rows, "day": [dict(row) for row in rows]}


def holding_json(holding: Holding, close: Decimal, token: int, today: str) -> JSON:
    last, average = holding.last_price, holding.average_price
    change = last - close
    return {
        "tradingsymbol": holding.instrument.symbol,
        "exchange": holding.instrument.exchange.value,
        "instrument_token": token,
        "isin": "",
        "product": "CNC",
        "price": 0,
        "quantity": holding.quantity,
        "used_quantity": 0,
        "t1_quantity": 0,
        "realised_quantity": holding.quantity,
        "authorised_quantity": 0,
        "authorised_date": f"{today} 00:00:00",
        "authorisation": {},
        "opening_quantity": holding.quantity,
        "short_quantity": 0,
        "collateral_quantity": 0,
        "collateral_type": "",
        "discrepancy": False,
        "average_price": float(average),
        "last_price": float(last),
        "close_price": float(close),
        "pnl": float(holding.quantity * (last - average)),
        "day_change": float(change),
        "day_change_percentage": float(change / close * 100) if close else 0.0,
        "mtf": {"quantity": 0, "used_quantity": 0, "average_price": 0, "value": 0, "initial_margin": 0},
    }


def _segment(enabled: bool, total: Decimal, used: Decimal) -> JSON:
    net = float(total - used)
    return {
        "enabled": enabled,
        "net": net,
        "available": {
            "adhoc_margin": 0,
            "cash": float(total),
            "opening_balance": float(total),
            "live_balance": net,
            "collateral": 0,
            "intraday_payin": 0,
        },
        "utilised": {
            "debits": float(used),
            "exposure": 0,
            "m2m_realised": 0,
            "m2m_unrealised": 0,
            "option_premium": 0,
            "payout": 0,
            "span": 0,
            "holding_sales": 0,
            "turnover": 0,
            "liquid_collateral": 0,
            "stock_collateral": 0,
            "delivery": 0,
        },
    }


def equity_margins(funds: Funds) -> JSON:
    """The equity segment: the simulator keeps one pool of funds, so all of it is here."""
    return _segment(True, funds.total, funds.used_margin)


def commodity_margins() -> JSON:
    """The simulator lists no commodity instruments: the segment is shown, disabled and empty."""
    return _segment(False, Decimal(0), Decimal(0))


# ---- market data ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketView:
    """What the quote endpoints show of one instrument at one instant."""

    instrument: Instrument
    quote: Quote
    open: Decimal
    depth: int  # quantity on offer at the best bid and ask
    band_percent: Decimal  # circuit limits around the previous close


def ltp_json(view: MarketView) -> JSON:
    return {"instrument_token": view.instrument.instrument_token, "last_price": float(view.quote.last_price)}


def _ohlc(view: MarketView) -> JSON:
    last = view.quote.last_price
    return {
        "open": float(view.open),
        "high": float(max(view.open, last)),
        "low": float(min(view.open, last)),
        "close": float(view.instrument.last_price),
    }


def ohlc_json(view: MarketView) -> JSON:
    """The simulator keeps no intraday extremes: high and low bound the open and the last price."""
    return {**ltp_json(view), "ohlc": _ohlc(view)}


def _level(price: Decimal, quantity: int) -> JSON:
    return {"price": float(price), "quantity": quantity, "orders": 1 if quantity else 0}


def quote_json(view: MarketView) -> JSON:
    instrument, quote = view.instrument, view.quote
    close, tick = instrument.last_price, instrument.tick_size
    width = close * view.band_percent / 100
    empty = [_level(Decimal(0), 0)] * 4
    return {
        "instrument_token": instrument.instrument_token,
        "timestamp": kite_time(quote.at),
        "last_trade_time": kite_time(quote.at),
        "last_price": float(quote.last_price),
        "last_quantity": 0,
        "buy_quantity": view.depth,
        "sell_quantity": view.depth,
        "volume": 0,
        "average_price": float(quote.last_price),
        "oi": 0,
        "oi_day_high": 0,
        "oi_day_low": 0,
        "net_change": float(quote.last_price - close) if close else 0.0,
        "lower_circuit_limit": float(max(tick, ((close - width) / tick).to_integral_value() * tick)),
        "upper_circuit_limit": float(((close + width) / tick).to_integral_value() * tick),
        "ohlc": _ohlc(view),
        "depth": {
            "buy": [_level(quote.bid, view.depth), *empty],
            "sell": [_level(quote.ask, view.depth), *empty],
        },
    }


def filter_instruments_csv(text: str, exchange: str | None) -> str:
    """The instrument dump, or only the rows of `exchange` (its last column), header kept."""
    lines = text.splitlines()
    if exchange is None:
        return "\n".join(lines) + "\n"
    wanted = exchange.upper()
    return "\n".join([lines[0], *(line for line in lines[1:] if line.rsplit(",", 1)[-1] == wanted)]) + "\n"


# ---- user and session -----------------------------------------------------------------------------


def profile_json(user: SimUserSettings) -> JSON:
    return {
        "user_id": user.user_id,
        "user_type": "individual",
        "email": user.email,
        "user_name": user.name,
        "user_shortname": user.name.split()[0] if user.name.split() else user.name,
        "broker": "ZERODHA",
        "exchanges": EXCHANGES,
        "products": PRODUCTS,
        "order_types": ORDER_TYPES,
        "avatar_url": None,
        "meta": {"demat_consent": "physical"},
    }


def session_json(user: SimUserSettings, session: SimSession) -> JSON:
    profile = profile_json(user)
    return {
        **{k: v for k, v in profile.items() if k != "meta"},
        "api_key": session.api_key,
        "access_token": session.access_token,
        "public_token": session.public_token,
        "enctoken": "",
        "refresh_token": session.refresh_token,
        "silo": "",
        "login_time": kite_time(session.login_time),
        "meta": profile["meta"],
    }


def login_page(api_key: str, error: str = "") -> str:
    """The browser step of Kite's login: the simulator's stand-in for kite.zerodha.com/connect/login."""
    notice = f"<p role='alert'>{html.escape(error)}</p>" if error else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Kite Connect (simulated) login</title></head>"
        f"<body><h1>Kite Connect (simulated)</h1>{notice}"
        "<form method='post' action='/connect/login'>"
        f"<input type='hidden' name='api_key' value='{html.escape(api_key, quote=True)}'>"
        "<label>User ID <input name='user_id' autocomplete='username'></label>"
        "<label>Password <input name='password' type='password' autocomplete='current-password'></label>"
        "<button type='submit'>Login</button></form></body></html>"
    )


# ---- calculators ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CalcOrder:
    """One order of a calculator request (margins or charges)."""

    instrument: InstrumentId
    side: Side
    product: Product
    order_type: OrderType
    variety: str
    quantity: int
    price: Decimal | None  # None: price it at the market


def parse_calc_orders(body: Any, price_field: str = "price") -> list[CalcOrder]:
    """The JSON array of a calculator; `price_field` is "average_price" for /charges/orders."""
    if not isinstance(body, list) or not body:
        raise _input("body", "expected a non-empty JSON array of orders")
    orders = []
    for index, raw in enumerate(body):
        if not isinstance(raw, dict):
            raise _input(f"[{index}]", "expected an order object")
        form = {k: "" if v is None else str(v) for k, v in raw.items()}
        try:
            orders.append(_calc_order(form, price_field))
        except WireError as exc:
            raise WireError(exc.kind, f"{exc.message} (order {index})") from None
    return orders


def _calc_order(form: Mapping[str, str], price_field: str) -> CalcOrder:
    exchange = _choice(form, "exchange", EXCHANGES)
    try:
        instrument = InstrumentId.parse(f"{exchange}:{_required(form, 'tradingsymbol')}")
    except ValueError as exc:
        raise _input("tradingsymbol", str(exc)) from None
    quantity = _int(form, "quantity")
    if quantity is None:
        raise _input("quantity", "must be a positive integer")
    price = _decimal(form, price_field) if price_field in form else _decimal(form, "price")
    return CalcOrder(
        instrument=instrument,
        side=Side(_choice(form, "transaction_type", ["BUY", "SELL"])),
        product=Product(_choice(form, "product", PRODUCTS)),
        order_type=OrderType(_choice(form, "order_type", ORDER_TYPES, "MARKET")),
        variety=form.get("variety", "").strip() or "regular",
        quantity=quantity,
        price=price or None,
    )


def charges_of(order: CalcOrder, price: Decimal) -> Charges:
    try:
        return order_charges(
            "zerodha", instrument_kind(order.instrument), order.product, order.side, order.quantity, price
        )
    except ValueError as exc:
        raise _input("product", str(exc)) from None


def _margin_field(instrument: InstrumentId) -> str:
    """Cash equity is margined as VaR, derivatives as SPAN: where Kite puts each."""
    return "var" if instrument.exchange in (Exchange.NSE, Exchange.BSE) else "span"


def _margin(order: CalcOrder, price: Decimal) -> Decimal:
    if order.product is Product.CNC and order.side is Side.SELL:
        return Decimal(0)  # covered by holdings, as the simulated RMS treats it
    return order.quantity * price * MARGIN_RATES[order.product]


def _margin_row(kind: str, symbol: str, exchange: str, split: Mapping[str, Decimal], leverage: float) -> JSON:
    return {
        "type": kind,
        "tradingsymbol": symbol,
        "exchange": exchange,
        "span": float(split.get("span", 0)),
        "exposure": 0,
        "option_premium": 0,
        "additional": 0,
        "bo": 0,
        "cash": 0,
        "var": float(split.get("var", 0)),
        "pnl": {"realised": 0, "unrealised": 0},
        "leverage": leverage,
        "charges": {},
        "total": float(sum(split.values(), Decimal(0))),
    }


def order_margin_json(order: CalcOrder, price: Decimal) -> JSON:
    """POST /margins/orders entry: the simulator's flat product rate (engine/sim/margin.py) on the value."""
    row = _margin_row(
        "equity",
        order.instrument.symbol,
        order.instrument.exchange.value,
        {_margin_field(order.instrument): _margin(order, price)},
        float(1 / MARGIN_RATES[order.product]),
    )
    row["charges"] = charges_of(order, price).to_kite_json()
    return row


_NO_CHARGES = Charges(*(Decimal(0),) * 6)


def _summary(split: Mapping[str, Decimal]) -> JSON:
    row = _margin_row("", "", "", split, 0)
    row["charges"] = {**_NO_CHARGES.to_kite_json(), "transaction_tax_type": ""}
    return row


def basket_json(orders: Sequence[tuple[CalcOrder, Decimal]]) -> JSON:
    """POST /margins/basket: `final` nets opposite orders in the same instrument and product."""
    initial: dict[str, Decimal] = {"span": Decimal(0), "var": Decimal(0)}
    netted: dict[tuple[InstrumentId, Product], Decimal] = {}
    for order, price in orders:
        initial[_margin_field(order.instrument)] += _margin(order, price)
        if not (order.product is Product.CNC and order.side is Side.SELL):
            key = (order.instrument, order.product)
            netted[key] = netted.get(key, Decimal(0)) + order.side.sign * order.quantity * price
    final: dict[str, Decimal] = {"span": Decimal(0), "var": Decimal(0)}
    for (instrument, product), value in netted.items():
        final[_margin_field(instrument)] += abs(value) * MARGIN_RATES[product]
    charges = [charges_of(order, price) for order, price in orders]
    total_charges = Charges(*(sum((getattr(c, f.name) for c in charges), Decimal(0)) for f in fields(Charges)))
    return {
        "initial": _summary(initial),
        "final": _summary(final),
        "orders": [order_margin_json(order, price) for order, price in orders],
        "charges": total_charges.to_kite_json(),
    }


def contract_note_json(order: CalcOrder, price: Decimal) -> JSON:
    """POST /charges/orders entry: Kite's virtual contract note, from engine/ledger/charges.py."""
    return {
        "transaction_type": order.side.value,
        "tradingsymbol": order.instrument.symbol,
        "exchange": order.instrument.exchange.value,
        "variety": order.variety,
        "product": order.product.value,
        "order_type": order.order_type.value,
        "quantity": order.quantity,
        "price": float(price),
        "charges": charges_of(order, price).to_kite_json(),
    }
