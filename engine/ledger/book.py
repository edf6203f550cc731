"""The ledger over every book, plus marking and cross-account consolidation.

The same fill can be delivered more than once (a broker resync, a replay after a restart), so the
ledger keys fills by (account, trade_id) and applies each exactly once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal

from engine.domain.instruments import InstrumentId
from engine.domain.orders import Fill
from engine.domain.types import Product
from engine.ledger.fifo import PositionBook, PositionState, execution_order

_ZERO = Decimal(0)

BookKey = tuple[str, InstrumentId, Product]
# How the ledger files a book: (account, exchange, symbol, product). Plain strings, so hashing and comparing one
# stays in C (an InstrumentId hashes and compares in Python), and they sort exactly as the BookKey does.
Slot = tuple[str, str, str, str]


def slot_of(account: str, instrument: InstrumentId, product: Product) -> Slot:
    return (account, instrument.exchange, instrument.symbol, product)


class Ledger:
    """Position books for many accounts, fed by fills that may be replayed or arrive out of execution order.

    A fill older than one its book already holds leaves the book to be rebuilt (`unordered`, `rebuild`) from
    all its fills in execution order, so FIFO matches what the exchange did, whatever order they came in.
    """

    __slots__ = ("_applied", "_books", "_instruments", "_latest", "_sorted", "_unordered", "_version")

    def __init__(self) -> None:
        self._books: dict[Slot, PositionBook] = {}
        self._applied: dict[str, set[str]] = {}  # trade ids applied, by account
        self._unordered: set[Slot] = set()
        # One InstrumentId per instrument across books: pickled positions then share it, and a reader's dicts find
        # it by identity instead of comparing it field by field.
        self._instruments: dict[tuple[str, str], InstrumentId] = {}
        self._sorted: list[Slot] | None = None  # the slots in order, until a book is added
        self._version = 0  # one more for each apply_many and rebuild; books carry the version that last changed them
        # Every slot once, the most recently changed last, so `changes` reads back only the books changed since a
        # version instead of passing over all of them.
        self._latest: dict[Slot, None] = {}

    def apply(self, fill: Fill) -> bool:
        """Apply `fill` once; False, with nothing changed, if its (account, trade_id) was seen."""
        return self.apply_many((fill,)) == 1

    def apply_many(self, fills: Iterable[Fill]) -> int:
        """Apply each fill once, in order, as `apply` does; the number that were new. A fill that raises leaves those
        before it applied and itself and those after it not.

        A restart replays every stored fill through here, so the loop is written for speed: fills in a row for one
        book (an order filled in parts) are folded together, so the book is found and its numbers loaded once for
        them. A run is told by identity (same instrument and product objects, as the store's decoding shares them)
        and account; a run split where equal objects differ only costs one more lookup."""
        self._version += 1
        count = 0
        run: list[Fill] = []
        account, instrument, product = "", None, None
        for fill in fills:
            if fill.account != account or fill.instrument is not instrument or fill.product is not product:
                if run:
                    count += self._fold(run)
                account, instrument, product = fill.account, fill.instrument, fill.product
                run = [fill]
            else:
                run.append(fill)
        if run:
            count += self._fold(run)
        return count

    def _fold(self, run: list[Fill]) -> int:
        """Fold a run of fills for one book; the number that were new. A book is filed only once it holds a fill,
        and then even if a later fill of the run raised."""
        first = run[0]
        account, instrument, product = first.account, first.instrument, first.product
        slot = (account, instrument.exchange, instrument.symbol, product)
        seen = self._applied.get(account)
        if seen is None:
            seen = self._applied[account] = set()
        before = len(seen)
        book = self._books.get(slot)
        new = book is None
        if book is None:
            book = PositionBook(account, self._instruments.setdefault(slot[1:3], instrument), product)
        try:
            book.fold_many(run, seen)
        finally:
            if len(seen) > before:
                if new:
                    self._books[slot] = book
                    self._sorted = None
                self._changed(slot, book)
                if not book.in_order:
                    self._unordered.add(slot)
        return len(seen) - before

    def _changed(self, slot: Slot, book: PositionBook) -> None:
        book.version = self._version
        self._latest.pop(slot, None)
        self._latest[slot] = None

    def unordered(self) -> list[BookKey]:
        """The books a late fill left out of execution order; each must be rebuilt from all its fills."""
        return [self._key(slot) for slot in sorted(self._unordered)]

    def rebuild(self, key: BookKey, fills: Iterable[Fill]) -> None:
        """Replace one book by its fills (every one applied so far, and only those) in execution order."""
        slot = slot_of(*key)
        account, instrument, product = key
        book = PositionBook(account, self._instruments.setdefault(slot[1:3], instrument), product)
        for fill in sorted(fills, key=execution_order):
            book.apply(fill)
            self._applied.setdefault(fill.account, set()).add(fill.trade_id)
        self._version += 1
        self._changed(slot, book)
        if slot not in self._books:
            self._sorted = None
        self._books[slot] = book
        self._unordered.discard(slot)

    def positions(self, accounts: Collection[str] | None = None) -> list[PositionState]:
        """Every book that has traded, flat ones included since they still carry realised PnL."""
        if self._sorted is None:
            self._sorted = sorted(self._books)
        books = self._books
        if accounts is None:
            return [books[slot].state() for slot in self._sorted]
        wanted = set(accounts)
        return [books[slot].state() for slot in self._sorted if slot[0] in wanted]

    def changes(self, since: int) -> tuple[int, list[PositionState]]:
        """The version now, and every book a fill changed after version `since` (0: every book), in no order: for a
        reader that keeps a copy (LedgerReplica), which then needs only what changed instead of every book."""
        changed = []
        for slot in reversed(self._latest):
            book = self._books[slot]
            if book.version <= since:
                break
            changed.append(book.state())
        return self._version, changed

    def _key(self, slot: Slot) -> BookKey:
        book = self._books[slot]
        return (book.account, book.instrument, book.product)


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
