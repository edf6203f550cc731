"""Order checks that need only the instrument master: the ones a broker's RMS applies before margin.

Each returns a message naming the problem, or None; the exchange turns a message into `Rejected`.
"""

from __future__ import annotations

from decimal import Decimal

from engine.domain import Exchange, Instrument, OrderType, Product, Side

CNC_EXCHANGES = frozenset({Exchange.NSE, Exchange.BSE})
_PAISA = Decimal("0.01")
NRML_EXCHANGES = frozenset({Exchange.NFO, Exchange.BFO, Exchange.MCX, Exchange.CDS, Exchange.BCD})


def check_quantity(instrument: Instrument, quantity: int) -> str | None:
    if quantity <= 0:
        return f"quantity must be positive, got {quantity}"
    if quantity % instrument.lot_size:
        return f"quantity {quantity} is not a multiple of the lot size {instrument.lot_size} of {instrument.id}"
    if instrument.freeze_quantity and quantity > instrument.freeze_quantity:
        return (
            f"quantity {quantity} exceeds the freeze quantity {instrument.freeze_quantity} of "
            f"{instrument.id}; slice the order"
        )
    return None


def check_prices(
    instrument: Instrument,
    order_type: OrderType,
    side: Side,
    price: Decimal | None,
    trigger_price: Decimal | None,
) -> str | None:
    if order_type.needs_price and price is None:
        return f"a {order_type} order needs a price"
    if order_type.needs_trigger and trigger_price is None:
        return f"a {order_type} order needs a trigger price"
    for label, value in (("price", price), ("trigger price", trigger_price)):
        if value is None:
            continue
        if not value.is_finite() or value <= 0:
            return f"{label} must be positive, got {value}"
        if not instrument.on_tick(value):
            return f"{label} {value} is off tick: not a multiple of tick size {instrument.tick_size}"
    if order_type is OrderType.SL and price is not None and trigger_price is not None:
        if side is Side.BUY and trigger_price > price:
            return f"trigger price {trigger_price} is above the limit price {price} of a buy SL order"
        if side is Side.SELL and trigger_price < price:
            return f"trigger price {trigger_price} is below the limit price {price} of a sell SL order"
    return None


def check_product(instrument: Instrument, product: Product) -> str | None:
    exchange = instrument.id.exchange
    if product is Product.CNC and exchange not in CNC_EXCHANGES:
        return f"product CNC is for NSE/BSE equity delivery, not allowed on {exchange}"
    if product is Product.NRML and exchange not in NRML_EXCHANGES:
        return f"product NRML is for derivatives carry-forward, not allowed on {exchange}"
    return None


def check_band(instrument: Instrument, band_percent: Decimal, *prices: Decimal | None) -> str | None:
    """Prices must lie within `band_percent` of the previous close (the instrument master's last price)."""
    close = instrument.last_price
    if band_percent <= 0 or close <= 0:
        return None
    width = close * band_percent / 100
    low, high = close - width, close + width
    for price in prices:
        if price is not None and not low <= price <= high:
            return (
                f"price {price} is outside the price band {low.quantize(_PAISA)}-{high.quantize(_PAISA)} "
                f"of {instrument.id} ({band_percent}% of the previous close {close})"
            )
    return None
