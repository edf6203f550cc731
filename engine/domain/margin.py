"""Margin a broker blocks for new exposure: a flat rate of the order value per product.

Deliberately simpler than SPAN. The simulated brokers block exactly this, and routing uses it to
estimate which account can take an order before asking; a real broker may want a little more,
and its margin rejection then makes the order fail over like any other refusal.
"""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType

from engine.domain.types import Product

MARGIN_RATES = MappingProxyType(
    {
        Product.CNC: Decimal("1.0"),
        Product.MIS: Decimal("0.2"),
        Product.NRML: Decimal("0.2"),
    }
)


def margin_per_unit(product: Product, price: Decimal) -> Decimal:
    return price * MARGIN_RATES[product]
