"""Turn API requests into domain requests, or refuse them with the offending field named.

Validation happens before anything is persisted or sent, so a refused request changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from engine.api.convert import order_type_from_proto, product_from_proto, side_from_proto
from engine.brokers.base import ModifyRequest
from engine.domain import Instrument, InstrumentId, OrderRequest, OrderType
from engine.domain.ids import strategy_of
from engine.errors import InvalidArgument
from trademaster.v1 import orders_pb2

_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_QUANTITY = 10_000_000
MAX_PRICE = Decimal("100000000")
_MAX_TEXT = 64


def text(field: str, value: str, *, required: bool = False, limit: int = _MAX_TEXT) -> str:
    if len(value) > limit:
        raise InvalidArgument(field, f"longer than {limit} characters")
    if required and not value:
        raise InvalidArgument(field, "required")
    return value


def client_id(field: str, value: str, *, strategy: str = "") -> str:
    """An idempotency key: 1-64 of letters, digits, '_' and '-' (brokers and logs carry it as is).

    Ids starting "<strategy id>-" are reserved: the runner feeds a strategy every order under its prefix, and
    trading states count them as one family, so only that strategy (`strategy`, set when it is the one placing)
    may use its own prefix; nobody may use another's.
    """
    text(field, value, required=True)
    if not _CLIENT_ID.match(value):
        raise InvalidArgument(field, "use 1-64 of letters, digits, '_' and '-'")
    owner = strategy_of(value)
    if owner is not None and owner != strategy:
        raise InvalidArgument(field, f"ids starting '{owner}-' are reserved for strategies' orders")
    return value


def _decimal(field: str, raw: str) -> Decimal:
    try:
        value = Decimal(text(field, raw))
    except InvalidOperation:
        raise InvalidArgument(field, f"not a decimal number: {raw!r}") from None
    if not value.is_finite() or value <= 0:
        raise InvalidArgument(field, f"must be greater than 0, got {raw}")
    if value > MAX_PRICE:
        raise InvalidArgument(field, f"must be at most {MAX_PRICE}, got {raw}")
    return value


def _price(field: str, raw: str, instrument: Instrument, needed: bool, order_type: OrderType) -> Decimal | None:
    if not raw:
        if needed:
            raise InvalidArgument(field, f"required for {order_type} orders")
        return None
    if not needed:
        raise InvalidArgument(field, f"must be empty for {order_type} orders")
    value = _decimal(field, raw)
    if not instrument.on_tick(value):
        raise InvalidArgument(field, f"{raw} is not a multiple of the tick size {instrument.tick_size}")
    return value


def _quantity(field: str, value: int, instrument: Instrument) -> int:
    if value <= 0:
        raise InvalidArgument(field, f"must be greater than 0, got {value}")
    if value > MAX_QUANTITY:
        raise InvalidArgument(field, f"must be at most {MAX_QUANTITY}, got {value}")
    if value % instrument.lot_size:
        raise InvalidArgument(field, f"{value} is not a multiple of the lot size {instrument.lot_size}")
    return value


def instrument(field: str, raw: str, lookup: Callable[[InstrumentId], Instrument | None]) -> Instrument:
    try:
        key = InstrumentId.parse(text(field, raw, required=True))
    except ValueError as exc:
        raise InvalidArgument(field, str(exc)) from None
    found = lookup(key)
    if found is None:
        raise InvalidArgument(field, f"unknown instrument {key}")
    return found


def place_request(
    req: orders_pb2.PlaceOrderRequest,
    account: str,
    lookup: Callable[[InstrumentId], Instrument | None],
    *,
    strategy: str = "",
) -> OrderRequest:
    """`strategy`: the strategy placing the order, if one is (see client_id)."""
    client_order_id = client_id("client_order_id", req.client_order_id, strategy=strategy)
    found = instrument("instrument", req.instrument, lookup)
    side = side_from_proto(req.side)
    if side is None:
        raise InvalidArgument("side", "required: SIDE_BUY or SIDE_SELL")
    product = product_from_proto(req.product)
    if product is None:
        raise InvalidArgument("product", "required: PRODUCT_CNC, PRODUCT_MIS or PRODUCT_NRML")
    order_type = order_type_from_proto(req.order_type)
    if order_type is None:
        raise InvalidArgument("order_type", "required: ORDER_TYPE_MARKET, _LIMIT, _SL or _SL_M")
    return OrderRequest(
        client_order_id=client_order_id,
        account=account,
        instrument=found.id,
        side=side,
        quantity=_quantity("quantity", req.quantity, found),
        product=product,
        order_type=order_type,
        price=_price("price", req.price, found, order_type.needs_price, order_type),
        trigger_price=_price("trigger_price", req.trigger_price, found, order_type.needs_trigger, order_type),
    )


def modify_request(req: orders_pb2.ModifyOrderRequest, current_type: OrderType, found: Instrument) -> ModifyRequest:
    """Check a modification against the order it changes (its instrument and resulting type)."""
    order_type = order_type_from_proto(req.order_type) if req.order_type else current_type
    if order_type is None:
        raise InvalidArgument("order_type", f"unknown value {req.order_type}")
    quantity = _quantity("quantity", req.quantity, found) if req.HasField("quantity") else None
    price = _price("price", req.price, found, order_type.needs_price, order_type) if req.HasField("price") else None
    trigger = (
        _price("trigger_price", req.trigger_price, found, order_type.needs_trigger, order_type)
        if req.HasField("trigger_price")
        else None
    )
    change = ModifyRequest(
        quantity=quantity,
        price=price,
        trigger_price=trigger,
        order_type=order_type if req.order_type else None,
    )
    if change == ModifyRequest():
        raise InvalidArgument("quantity", "nothing to change: give quantity, price, trigger_price or order_type")
    return change
