"""Getting out of an account's positions: which orders close what its broker says it holds.

Pure: it reads an account snapshot (the broker's positions with their product, and its holdings), so the
rules (opposite side, same product, never sell more delivery shares than there are) are tested alone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from engine.domain.accounts import AccountSnapshot
from engine.domain.ids import SHORT_CODE_LENGTH, short_code
from engine.domain.instruments import InstrumentId
from engine.domain.types import Product, Side

ID_SUFFIX_LENGTH = 2 * SHORT_CODE_LENGTH + 2  # what exit_client_id adds to the exit's own id


@dataclass(frozen=True, slots=True)
class ExitOrder:
    """A MARKET order that closes one (instrument, product) of an account."""

    instrument: InstrumentId
    product: Product
    side: Side
    quantity: int

    @property
    def key(self) -> str:
        """A short code for the (instrument, product), stable across calls: the exit's client order id ends
        with it, so retrying an exit finds the orders the first attempt placed instead of placing more."""
        return short_code(f"{self.instrument}/{self.product}")

    def describe(self) -> str:
        return f"{self.side} {self.quantity} {self.instrument} {self.product}"


def exit_client_id(exit_id: str, account: str, order: ExitOrder) -> str:
    """The client order id of one exit order: "<exit id>-<account code>-<key>", ID_SUFFIX_LENGTH characters
    longer than the exit's id whatever the account's id (engine.domain.ids.short_code) and the same on a retry."""
    return f"{exit_id}-{short_code(account)}-{order.key}"


def exit_orders(
    snapshot: AccountSnapshot,
    instrument: InstrumentId | None = None,
    product: Product | None = None,
    include_holdings: bool = False,
) -> list[ExitOrder]:
    """The orders that flatten the snapshot's positions (of `instrument` and `product` when given).

    MIS and NRML positions close on the opposite side for the open quantity, shorts included. A CNC
    position is a delivery purchase: only a long one is sold, and never more than is deliverable (a negative
    CNC position is a sale out of holdings, not a short to buy back). With `include_holdings` the delivery
    holdings are sold too, as one CNC sell of everything deliverable.
    """
    net: defaultdict[tuple[InstrumentId, Product], int] = defaultdict(int)
    for position in snapshot.positions:
        net[(position.instrument, position.product)] += position.quantity
    if include_holdings and product in (None, Product.CNC):
        for holding in snapshot.holdings:
            net.setdefault((holding.instrument, Product.CNC), 0)
    orders = []
    for (held, held_product), quantity in sorted(net.items()):
        if (instrument is not None and held != instrument) or (product is not None and held_product != product):
            continue
        if held_product is Product.CNC:
            deliverable = max(0, snapshot.deliverable(held))
            quantity = deliverable if include_holdings else min(max(0, quantity), deliverable)
        if quantity:
            side = Side.SELL if quantity > 0 else Side.BUY
            orders.append(ExitOrder(held, held_product, side, abs(quantity)))
    return orders
