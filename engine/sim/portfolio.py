"""Cash, positions and holdings of one simulated account, and how a fill moves them.

CNC buys land in positions (delivery settles later, as at a real broker); CNC sells draw down the CNC
long position first and then holdings. Selling holdings credits their cost to cash and the
difference to realised PnL, so a sale frees the full proceeds for new orders.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.domain import InstrumentId, Product, Side
from engine.sim.margin import PositionKey
from engine.sim.records import ZERO, SimPosition


@dataclass(slots=True)
class SimHolding:
    quantity: int
    average_price: Decimal


class Portfolio:
    def __init__(self, opening_cash: Decimal, holdings: Mapping[InstrumentId, tuple[int, Decimal]]) -> None:
        self.opening_cash = Decimal(opening_cash)
        self.cash = self.opening_cash  # opening cash plus the cost of holdings sold
        self.holdings: dict[InstrumentId, SimHolding] = {}
        for instrument, (quantity, average) in holdings.items():
            if quantity < 0 or Decimal(average) < 0:
                raise ValueError(f"holding of {instrument} must have non-negative quantity and price")
            if quantity:
                self.holdings[instrument] = SimHolding(quantity, Decimal(average))
        self.positions: dict[PositionKey, SimPosition] = {}

    @property
    def realised(self) -> Decimal:
        return sum((p.realised for p in self.positions.values()), ZERO)

    def net_quantities(self) -> dict[PositionKey, int]:
        return {key: p.quantity for key, p in self.positions.items()}

    def iter_positions(self) -> Iterator[SimPosition]:
        return iter(self.positions.values())

    def deliverable(self, instrument: InstrumentId) -> int:
        """Shares a CNC sell may draw on: holdings plus today's CNC long position."""
        holding = self.holdings.get(instrument)
        position = self.positions.get((instrument, Product.CNC))
        return (holding.quantity if holding else 0) + max(0, position.quantity if position else 0)

    def book_fill(self, instrument: InstrumentId, product: Product, side: Side, quantity: int, price: Decimal) -> None:
        position = self.positions.get((instrument, product))
        if position is None:
            position = self.positions[(instrument, product)] = SimPosition(instrument, product)
        if product is not Product.CNC or side is Side.BUY:
            position.apply(side, quantity, price)
            return
        from_position = min(quantity, max(0, position.quantity))
        if from_position:
            position.apply(side, from_position, price)
        rest = quantity - from_position
        holding = self.holdings.get(instrument)
        from_holdings = min(rest, holding.quantity) if holding else 0
        if holding and from_holdings:
            position.realised += from_holdings * (price - holding.average_price)
            self.cash += from_holdings * holding.average_price
            holding.quantity -= from_holdings
            if holding.quantity == 0:
                del self.holdings[instrument]
        if rest > from_holdings:  # unreachable while sells are checked against deliverable quantity
            position.apply(side, rest - from_holdings, price)

    def to_json(self) -> dict[str, Any]:
        return {
            "opening_cash": str(self.opening_cash),
            "cash": str(self.cash),
            "holdings": [
                {"instrument": str(i), "quantity": h.quantity, "average_price": str(h.average_price)}
                for i, h in self.holdings.items()
            ],
            "positions": [p.to_json() for p in self.positions.values()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Portfolio:
        holdings = {
            InstrumentId.parse(h["instrument"]): (int(h["quantity"]), Decimal(h["average_price"]))
            for h in data["holdings"]
        }
        portfolio = cls(Decimal(data["opening_cash"]), holdings)
        portfolio.cash = Decimal(data["cash"])
        for raw in data["positions"]:
            position = SimPosition.from_json(raw)
            portfolio.positions[(position.instrument, position.product)] = position
        return portfolio

    def convert(self, instrument: InstrumentId, old: Product, new: Product, quantity: int) -> None:
        """Move signed `quantity` from the `old` product's position to the `new` one's, at the old average price."""
        source = self.positions[(instrument, old)]
        average = source.average_price
        source.quantity -= quantity
        if source.quantity == 0:
            source.average_price = ZERO
        target = self.positions.get((instrument, new))
        if target is None:
            target = self.positions[(instrument, new)] = SimPosition(instrument, new)
        target.apply(Side.BUY if quantity > 0 else Side.SELL, abs(quantity), average)
