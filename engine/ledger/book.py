"""The ledger over every book, plus marking and cross-account consolidation.

The same fill can be delivered more than once (a broker resync, a replay after a restart), so the
ledger keys fills by (account, trade_id) and applies each exactly once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from engine.domain.instruments import InstrumentId
from engine.domain.orders import Fill
from engine.domain.types import Product
from engine.ledger.fifo import PositionBook, PositionState, execution_order

_ZERO = Decimal(0)

BookKey = tuple[str, InstrumentId, Product]


class Ledger:
    """Position books for many accounts, fed by fills that may be replayed or arrive out of execution order.

    A fill older than one its book already holds leaves the book to be rebuilt (`unordered`, `rebuild`) from
    all its fills in execution order, so FIFO matches what the exchange did, whatever order they came in.
    """

    __slots__ = ("_applied", "_books", "_unordered")

    def __init__(self) -> None:
        self._books: dict[BookKey, PositionBook] = {}
        self._applied: set[tuple[str, str]] = set()
        self._unordered: set[BookKey] = set()

    def apply(self, fill: Fill) -> bool:
        """Apply `fill` once; False, with nothing changed, if its (account, trade_id) was seen."""
        trade_key = (fill.account, fill.trade_id)
        if trade_key in self._applied:
            return False
        key = (fill.account, fill.instrument, fill.product)
        book = self._books.get(key)
        if book is None:
            book = PositionBook(*key)
        late = book.latest is not None and execution_order(fill) < book.latest
        book.apply(fill)  # raises before anything is recorded if the fill is malformed
        if late:
            self._unordered.add(key)
        self._books[key] = book
        self._applied.add(trade_key)
        return True

    def apply_many(self, fills: Iterable[Fill]) -> int:
        return sum(self.apply(fill) for fill in fills)

    def unordered(self) -> list[BookKey]:
        """The books a late fill left out of execution order; each must be rebuilt from all its fills."""
        return sorted(self._unordered)

    def rebuild(self, key: BookKey, fills: Iterable[Fill]) -> None:
        """Replace one book by its fills (every one applied so far, and only those) in execution order."""
        book = PositionBook(*key)
        for fill in sorted(fills, key=execution_order):
            book.apply(fill)
            self._applied.add((fill.account, fill.trade_id))
        self._books[key] = book
        self._unordered.discard(key)

    def positions(self, accounts: Collection[str] | None = None) -> list[PositionState]:
        """Every book that has traded, flat ones included since they still carry realised PnL."""
        keys = sorted(k for k in self._books if accounts is None or k[0] in accounts)
        return [self._books[k].state() for k in keys]


@dataclass(frozen=True, slots=True)
class MarkedPosition:
    state: PositionState
    last_price: Decimal | None
    unrealised_pnl: Decimal


@dataclass(frozen=True, slots=True)
class ConsolidatedPosition:
    """One (instrument, product) summed over accounts, as the operator sees the whole book."""

    instrument: InstrumentId
    product: Product
    quantity: int
    open_cost: Decimal
    average_price: Decimal | None
    last_price: Decimal | None
    realised_pnl: Decimal
    unrealised_pnl: Decimal
    accounts: tuple[str, ...]


def mark(states: Iterable[PositionState], marks: Mapping[InstrumentId, Decimal]) -> list[MarkedPosition]:
    """Attach last prices, keeping input order; a missing price means unrealised 0, not a guess."""
    marked = []
    for state in states:
        last = marks.get(state.instrument)
        marked.append(MarkedPosition(state, last, state.unrealised(last)))
    return marked


def consolidate(marked: Iterable[MarkedPosition]) -> list[ConsolidatedPosition]:
    groups: dict[tuple[InstrumentId, Product], list[MarkedPosition]] = {}
    for m in marked:
        groups.setdefault((m.state.instrument, m.state.product), []).append(m)
    return [_merge(instrument, product, groups[instrument, product]) for instrument, product in sorted(groups)]


def _merge(instrument: InstrumentId, product: Product, group: list[MarkedPosition]) -> ConsolidatedPosition:
    quantity = sum(m.state.quantity for m in group)
    open_cost = sum((m.state.open_cost for m in group), _ZERO)
    # A long in one account and a short in another do not net into a meaningful entry price.
    sides = {m.state.quantity > 0 for m in group if m.state.quantity}
    return ConsolidatedPosition(
        instrument=instrument,
        product=product,
        quantity=quantity,
        open_cost=open_cost,
        average_price=open_cost / quantity if len(sides) == 1 else None,
        last_price=next((m.last_price for m in group if m.last_price is not None), None),
        realised_pnl=sum((m.state.realised_pnl for m in group), _ZERO),
        unrealised_pnl=sum((m.unrealised_pnl for m in group), _ZERO),
        accounts=tuple(sorted({m.state.account for m in group})),
    )
