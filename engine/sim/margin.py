"""Margin the simulated broker blocks: the domain's flat rate per product on exposure-increasing quantity.

What matters to the daemon is that funds run out, that delivery costs the full value, and that
closing a position never needs margin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

from engine.domain import InstrumentId, Product, Side
from engine.domain.margin import MARGIN_RATES
from engine.sim.records import SimOrder, SimPosition

PositionKey = tuple[InstrumentId, Product]


def position_margin(positions: Iterable[SimPosition]) -> Decimal:
    return sum((abs(p.quantity) * p.average_price * MARGIN_RATES[p.product] for p in positions), Decimal(0))


def order_margin(
    orders: Iterable[SimOrder],
    net_quantity: Mapping[PositionKey, int],
    price_of: Callable[[SimOrder], Decimal],
) -> Decimal:
    """Margin on the exposure-increasing remaining quantity of live `orders`, taken in book order.

    Each order first uses up whatever of the opposite position earlier orders have not already
    claimed to close; only the rest opens exposure. CNC sells are covered by holdings, never margined.
    """
    closable: dict[tuple[InstrumentId, Product, Side], int] = {}
    total = Decimal(0)
    for order in orders:
        if order.product is Product.CNC and order.side is Side.SELL:
            continue
        key = (order.instrument, order.product, order.side)
        if key not in closable:
            net = net_quantity.get((order.instrument, order.product), 0)
            closable[key] = max(0, -net) if order.side is Side.BUY else max(0, net)
        closing = min(closable[key], order.remaining)
        closable[key] -= closing
        opening = order.remaining - closing
        if opening:
            total += opening * price_of(order) * MARGIN_RATES[order.product]
    return total
