"""FIFO lots for one (account, instrument, product) and the immutable snapshot other processes read.

Matching oldest lot first makes realised PnL a pure function of the fill sequence, so a ledger rebuilt
from stored fills after a restart agrees to the paisa with the one that ran live. Arithmetic is exact
Decimal (+, -, * only); nothing is quantized here, rounding belongs to whoever displays the number.
"""

from __future__ import annotations

from collections.abc import Iterable
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
        "_head",
        "_last_at",
        "_last_trade",
        "_lots",
        "_open",
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
        # Open lots flat, oldest first from `_head`: quantity (unsigned, never 0), price, quantity, price... One list
        # per book instead of a deque and a tuple per lot, as a restart folds a million fills into some 40,000 books
        # and every object a fill touches is another cache miss. Closed lots before `_head` are dropped once they
        # are half the list, so closing stays O(1) a lot. `_open` is the lots' signed total, hence their sign.
        self._lots: list[int | Decimal] = []
        self._head = 0
        self._open = 0
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
        before = self.realised
        self.fold_many((fill,), set())
        return self.realised - before

    def fold_many(self, fills: Iterable[Fill], seen: set[str]) -> None:
        """Fold in, in order, each fill whose trade id is not in `seen`, adding its id; without checking that the
        fills are this book's, for a caller that found the book by their own (account, instrument, product), as the
        Ledger does for each run of fills in a row for one book (an order filled in parts).

        The book's numbers are held in locals for the run and stored once at the end, even when a fill raises:
        a fill is checked before anything changes for it, so the book then holds exactly the fills before it,
        and `seen` their ids."""
        lots, head, open_ = self._lots, self._head, self._open
        realised, buy_quantity, sell_quantity = self.realised, self.buy_quantity, self.sell_quantity
        buy_value, sell_value = self.buy_value, self.sell_value
        last_at, last_trade, in_order = self._last_at, self._last_trade, self.in_order
        used = 0  # units of lots[head] closed: set on the lot once, at the end
        try:
            for fill in fills:
                trade_id = fill.trade_id
                if trade_id in seen:
                    continue
                quantity, price, at = fill.quantity, fill.price, fill.filled_at
                # A malformed fill would silently corrupt every later number: refuse it before changing anything.
                if quantity <= 0:
                    raise ValueError(f"fill {trade_id} has non-positive quantity {quantity}")
                if not price.is_finite():
                    raise ValueError(f"fill {trade_id} has non-finite price {price}")
                # Times first: the trade ids, which order fills of the same time, are needed only on a tie.
                if last_at is None or at > last_at or (at == last_at and _by_id(trade_id) >= _by_id(last_trade)):
                    last_at, last_trade = at, trade_id
                else:
                    in_order = False
                seen.add(trade_id)
                value = quantity * price
                if fill.side is _BUY:
                    buy_quantity += quantity
                    buy_value += value
                    if open_ >= 0:
                        lots += (quantity, price)  # opens, or adds to the open side
                        open_ += quantity
                        continue
                    sign = -1  # closes short lots
                else:
                    sell_quantity += quantity
                    sell_value += value
                    if open_ <= 0:
                        lots += (quantity, price)
                        open_ -= quantity
                        continue
                    sign = 1
                # Close against the oldest lots; a remainder opens (or flips into) a new lot.
                pnl = _ZERO
                left, end = quantity, len(lots)
                while left and head < end:
                    held = lots[head] - used
                    if held <= left:
                        pnl += (price - lots[head + 1]) * (sign * held)
                        left -= held
                        head += 2
                        used = 0
                    else:
                        pnl += (price - lots[head + 1]) * (sign * left)
                        used += left
                        left = 0
                realised += pnl
                open_ -= sign * (quantity - left)
                if left:
                    lots += (left, price)
                    open_ = -sign * left
        finally:
            if used:
                lots[head] -= used
            if head * 2 >= len(lots):
                del lots[:head]
                head = 0
            self._head, self._open = head, open_
            self.realised, self.buy_quantity, self.sell_quantity = realised, buy_quantity, sell_quantity
            self.buy_value, self.sell_value = buy_value, sell_value
            self._last_at, self._last_trade, self.in_order = last_at, last_trade, in_order
            self._state = None

    @property
    def lots(self) -> tuple[Lot, ...]:
        """Copies of the open lots, oldest first; copies so callers cannot edit the book."""
        sign = -1 if self._open < 0 else 1
        lots = self._lots
        return tuple(Lot(sign * lots[i], lots[i + 1]) for i in range(self._head, len(lots), 2))

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
            quantity, lots = self._open, self._lots
            sign = -1 if quantity < 0 else 1
            open_cost = sum(((sign * lots[i]) * lots[i + 1] for i in range(self._head, len(lots), 2)), _ZERO)
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
