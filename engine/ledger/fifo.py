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
from engine.domain.types import Product, Side

_ZERO = Decimal(0)
_BUY = Side.BUY  # bound once: an enum member looked up on its class costs as much as the comparison

ExecutionOrder = tuple[datetime, int, str]


def execution_order(fill: Fill) -> ExecutionOrder:
    """Where a fill falls in time: FIFO matches lots by when they traded, not by when the daemon learned of
    them (a restart or an adopted order can bring old trades late). Ties within a timestamp go by trade id,
    numerically for the exchanges' numeric ids."""
    return (fill.filled_at, *_by_id(fill.trade_id))


def _by_id(trade_id: str) -> tuple[int, str]:
    return (len(trade_id), trade_id)


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
    """FIFO lots for one (account, instrument, product); all open lots share one sign.

    `in_order` turns False for good once a fill older (in execution order) than one already applied arrives:
    the lots were then matched in the wrong order and the book must be rebuilt from all its fills.
    """

    __slots__ = (
        "_last_at",
        "_last_trade",
        "_lots",
        "_state",
        "account",
        "buy_quantity",
        "buy_value",
        "in_order",
        "instrument",
        "product",
        "realised",
        "sell_quantity",
        "sell_value",
        "version",
    )

    def __init__(self, account: str, instrument: InstrumentId, product: Product) -> None:
        self.account = account
        self.instrument = instrument
        self.product = product
        # (signed quantity, price), oldest first: plain tuples, as a Lot per fill would cost more than the matching,
        # and the garbage collector stops tracking a tuple of numbers, so a million open lots do not slow its passes
        self._lots: deque[tuple[int, Decimal]] = deque()
        self.realised: Decimal = _ZERO
        self.buy_quantity = 0
        self.sell_quantity = 0
        self.buy_value: Decimal = _ZERO
        self.sell_value: Decimal = _ZERO
        self.in_order = True
        # The latest fill applied, in execution order: its time, and its trade id for a tie.
        self._last_at: datetime | None = None
        self._last_trade = ""
        self._state: PositionState | None = None  # state() until the next fill
        self.version = 0  # set by a Ledger: its version when a fill last changed the book

    def apply(self, fill: Fill) -> Decimal:
        """Fold one fill in and return the realised PnL it produced (0 if it only opened)."""
        # A misrouted fill would silently corrupt every later number, so refuse it.
        if (fill.account, fill.instrument, fill.product) != (self.account, self.instrument, self.product):
            raise ValueError(
                f"fill {fill.trade_id} for {fill.account}/{fill.instrument}/{fill.product} "
                f"applied to book {self.account}/{self.instrument}/{self.product}"
            )
        return self.fold(fill)

    def fold(self, fill: Fill) -> Decimal:
        """`apply` without checking that the fill is this book's: for a caller that found the book by the fill's
        own (account, instrument, product), as the Ledger does for every fill."""
        quantity, price = fill.quantity, fill.price
        # A malformed fill would silently corrupt every later number: refuse it before changing anything.
        if quantity <= 0:
            raise ValueError(f"fill {fill.trade_id} has non-positive quantity {quantity}")
        if not price.is_finite():
            raise ValueError(f"fill {fill.trade_id} has non-finite price {price}")
        at, last_at = fill.filled_at, self._last_at
        # Times first: the trade ids, which order fills of the same time, are needed only on a tie.
        if last_at is None or at > last_at or (at == last_at and _by_id(fill.trade_id) >= _by_id(self._last_trade)):
            self._last_at, self._last_trade = at, fill.trade_id
        else:
            self.in_order = False
        self._state = None
        value = quantity * price
        if fill.side is _BUY:
            self.buy_quantity += quantity
            self.buy_value += value
            remaining = quantity
        else:
            self.sell_quantity += quantity
            self.sell_value += value
            remaining = -quantity

        lots = self._lots
        if not lots or (lots[0][0] > 0) == (remaining > 0):
            lots.append((remaining, price))  # opens, or adds to the open side
            return _ZERO
        pnl = _ZERO
        # Close against the oldest opposite lots; a remainder opens (or flips into) a new lot.
        while remaining and lots and (lots[0][0] > 0) != (remaining > 0):
            held, held_price = lots[0]
            if abs(held) <= abs(remaining):
                closed = held
                lots.popleft()
            else:
                closed = -remaining
                lots[0] = (held - closed, held_price)
            pnl += (price - held_price) * closed
            remaining += closed
        if remaining:
            lots.append((remaining, price))
        self.realised += pnl
        return pnl

    @property
    def lots(self) -> tuple[Lot, ...]:
        """Copies of the open lots, oldest first; copies so callers cannot edit the book."""
        return tuple(Lot(quantity, price) for quantity, price in self._lots)

    @property
    def quantity(self) -> int:
        return self.state().quantity

    @property
    def open_cost(self) -> Decimal:
        return self.state().open_cost

    @property
    def average_price(self) -> Decimal | None:
        """Cost-weighted average of the open lots only; unrounded, so it may carry many digits."""
        return self.state().average_price

    def state(self) -> PositionState:
        """The book now; kept until the next fill, since a portfolio reads every book far more often than most
        books change."""
        if self._state is None:
            quantity = sum(lot[0] for lot in self._lots)
            open_cost = sum((q * p for q, p in self._lots), _ZERO)
            self._state = PositionState(
                account=self.account,
                instrument=self.instrument,
                product=self.product,
                quantity=quantity,
                average_price=open_cost / quantity if quantity else None,
                open_cost=open_cost,
                realised_pnl=self.realised,
                buy_quantity=self.buy_quantity,
                sell_quantity=self.sell_quantity,
                buy_value=self.buy_value,
                sell_value=self.sell_value,
            )
        return self._state
