"""FIFO lots for one (account, instrument, product) and the immutable snapshot other processes read.

Matching oldest lot first makes realised PnL a pure function of the fill sequence, so a ledger rebuilt
from stored fills after a restart agrees to the paisa with the one that ran live. Arithmetic is exact
Decimal (+, -, * only); nothing is quantized here, rounding belongs to whoever displays the number.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from engine.domain.instruments import InstrumentId
from engine.domain.orders import Fill
from engine.domain.types import Product

_ZERO = Decimal(0)

ExecutionOrder = tuple[datetime, int, str]


def execution_order(fill: Fill) -> ExecutionOrder:
    """Where a fill falls in time: FIFO matches lots by when they traded, not by when the daemon learned of
    them (a restart or an adopted order can bring old trades late). Ties within a timestamp go by trade id,
    numerically for the exchanges' numeric ids."""
    return (fill.filled_at, len(fill.trade_id), fill.trade_id)


@dataclass(slots=True)
class Lot:
    """An open lot; quantity is signed (+ long, - short) and never 0 while the lot is held."""

    quantity: int
    price: Decimal


@dataclass(frozen=True, slots=True)
class PositionState:
    """A snapshot of one book: plain values only, so it pickles cheaply across process boundaries."""

    account: str
    instrument: InstrumentId
    product: Product
    quantity: int
    average_price: Decimal | None
    open_cost: Decimal
    realised_pnl: Decimal
    buy_quantity: int
    sell_quantity: int
    buy_value: Decimal
    sell_value: Decimal

    def unrealised(self, mark: Decimal | None) -> Decimal:
        """PnL of the open lots at `mark`; 0 without a mark rather than guessing one."""
        if mark is None or self.quantity == 0:
            return _ZERO
        return self.quantity * mark - self.open_cost


class PositionBook:
    """FIFO lots for one (account, instrument, product); all open lots share one sign."""

    __slots__ = (
        "_lots",
        "account",
        "buy_quantity",
        "buy_value",
        "instrument",
        "latest",
        "product",
        "realised",
        "sell_quantity",
        "sell_value",
    )

    def __init__(self, account: str, instrument: InstrumentId, product: Product) -> None:
        self.account = account
        self.instrument = instrument
        self.product = product
        self._lots: deque[Lot] = deque()
        self.realised: Decimal = _ZERO
        self.buy_quantity = 0
        self.sell_quantity = 0
        self.buy_value: Decimal = _ZERO
        self.sell_value: Decimal = _ZERO
        self.latest: ExecutionOrder | None = None  # the latest fill applied, in execution order

    def apply(self, fill: Fill) -> Decimal:
        """Fold one fill in and return the realised PnL it produced (0 if it only opened)."""
        self._check(fill)
        at = execution_order(fill)
        if self.latest is None or at > self.latest:
            self.latest = at
        value = fill.quantity * fill.price
        if fill.side.sign > 0:
            self.buy_quantity += fill.quantity
            self.buy_value += value
        else:
            self.sell_quantity += fill.quantity
            self.sell_value += value

        remaining = fill.side.sign * fill.quantity
        pnl = _ZERO
        lots = self._lots
        # Close against the oldest opposite lots; a remainder opens (or flips into) a new lot.
        while remaining and lots and (lots[0].quantity > 0) != (remaining > 0):
            lot = lots[0]
            closed = lot.quantity if abs(lot.quantity) <= abs(remaining) else -remaining
            pnl += (fill.price - lot.price) * closed
            lot.quantity -= closed
            remaining += closed
            if lot.quantity == 0:
                lots.popleft()
        if remaining:
            lots.append(Lot(remaining, fill.price))
        self.realised += pnl
        return pnl

    def _check(self, fill: Fill) -> None:
        # A misrouted or malformed fill would silently corrupt every later number, so refuse it.
        if (fill.account, fill.instrument, fill.product) != (self.account, self.instrument, self.product):
            raise ValueError(
                f"fill {fill.trade_id} for {fill.account}/{fill.instrument}/{fill.product} "
                f"applied to book {self.account}/{self.instrument}/{self.product}"
            )
        if fill.quantity <= 0:
            raise ValueError(f"fill {fill.trade_id} has non-positive quantity {fill.quantity}")
        if not fill.price.is_finite():
            raise ValueError(f"fill {fill.trade_id} has non-finite price {fill.price}")

    @property
    def lots(self) -> tuple[Lot, ...]:
        """Copies of the open lots, oldest first; copies so callers cannot edit the book."""
        return tuple(Lot(lot.quantity, lot.price) for lot in self._lots)

    @property
    def quantity(self) -> int:
        return sum(lot.quantity for lot in self._lots)

    @property
    def open_cost(self) -> Decimal:
        return sum((lot.quantity * lot.price for lot in self._lots), _ZERO)

    @property
    def average_price(self) -> Decimal | None:
        """Cost-weighted average of the open lots only; unrounded, so it may carry many digits."""
        quantity = self.quantity
        return self.open_cost / quantity if quantity else None

    def state(self) -> PositionState:
        return PositionState(
            account=self.account,
            instrument=self.instrument,
            product=self.product,
            quantity=self.quantity,
            average_price=self.average_price,
            open_cost=self.open_cost,
            realised_pnl=self.realised,
            buy_quantity=self.buy_quantity,
            sell_quantity=self.sell_quantity,
            buy_value=self.buy_value,
            sell_value=self.sell_value,
        )
