"""One book across accounts: ledger positions marked to market, plus broker holdings and funds.

A portfolio of 100 accounts holds some 20,000 positions, and between two reads a few dozen of them change. So what
a read builds is kept, and the next read redoes only what changed since: `Portfolio` keeps every account's marked
rows and sums, redoing the books the ledger reports changed, the accounts whose snapshot is new and the rows of the
instruments whose quote moved; `PortfolioView` keeps one set of accounts' consolidated rows, redoing those of the
(instrument, product) pairs whose rows changed. A first read is the same code with nothing kept.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from functools import reduce

from engine.brokers.base import Funds, Holding, Quote
from engine.domain import InstrumentId
from engine.domain.accounts import AccountSnapshot
from engine.ledger import ConsolidatedPosition, LedgerReplica, MarkedPosition, PositionState
from engine.ledger.book import Slot, slot_of

_ZERO = Decimal(0)
# The kept sums are updated by taking a row's old value out and its new one in. With additions only, this context
# never rounds, so a kept sum equals one made from scratch in any order.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
_add, _subtract = _EXACT.add, _EXACT.subtract

GroupKey = tuple[str, str, str]
"""(exchange, symbol, product): a consolidated row's key, a Slot without its account, and sorting as a Slot does."""


def _sum(values: Iterable[Decimal]) -> Decimal:
    return reduce(_add, values, _ZERO)


def _same(a: Decimal | None, b: Decimal | None) -> bool:
    """Equal and written alike (12.5 is not 12.50, 0 is not -0): a price that reads the same leaves its row as it is."""
    return a is b or (
        a is not None and b is not None and a == b and a.same_quantum(b) and a.is_signed() == b.is_signed()
    )


@dataclass(frozen=True, slots=True)
class HoldingView:
    account: str  # empty on consolidated rows
    instrument: InstrumentId
    quantity: int
    average_price: Decimal
    last_price: Decimal

    @property
    def unrealised_pnl(self) -> Decimal:
        return (self.last_price - self.average_price) * self.quantity

    @property
    def value(self) -> Decimal:
        return self.last_price * self.quantity


@dataclass(frozen=True, slots=True)
class AccountBook:
    """One account's part of the portfolio, as of one read. A read that changes nothing of it hands out the same
    object again, and one that changes a few rows says which (`after`, `changed`), so that a reader that kept the
    previous book redoes only those."""

    account: str
    broker: str
    positions: list[MarkedPosition]
    holdings: list[HoldingView]
    funds: Funds | None
    funds_as_of: datetime | None
    realised_pnl: Decimal
    unrealised_pnl: Decimal  # of positions and holdings
    version: int = 0  # of this book, unique within its Portfolio
    after: int = 0  # the version of the book this one differs from in the rows `changed` only (0: none)
    changed: tuple[int, ...] = ()  # places in `positions`


def _holding_view(account: str, holding: Holding) -> HoldingView:
    return HoldingView(account, holding.instrument, holding.quantity, holding.average_price, holding.last_price)


def _consolidate_holdings(rows: Sequence[HoldingView]) -> list[HoldingView]:
    grouped: dict[InstrumentId, list[HoldingView]] = {}
    for row in rows:
        grouped.setdefault(row.instrument, []).append(row)
    result = []
    for instrument in sorted(grouped):
        group = grouped[instrument]
        quantity = sum(h.quantity for h in group)
        cost = sum((h.average_price * h.quantity for h in group), _ZERO)
        average = cost / quantity if quantity else _ZERO
        result.append(HoldingView("", instrument, quantity, average, group[0].last_price))
    return result


class _Account:
    """One account's rows, each marked with its broker's mark from the last sync or a newer quote, and their sums."""

    __slots__ = ("book", "changed", "holdings", "holdings_pnl", "places", "realised", "rows", "snapshot", "sorted",
                 "stale", "unrealised")  # fmt: skip

    def __init__(self, snapshot: AccountSnapshot) -> None:
        self.snapshot = snapshot
        self.rows: dict[Slot, MarkedPosition] = {}  # in the ledger's order once `sorted`
        self.places: dict[Slot, int] = {}  # each row's place in `rows`, while `sorted`
        self.sorted = True
        self.changed: set[Slot] = set()  # rows changed since `book` was made
        self.realised = self.unrealised = _ZERO  # of the rows
        self.holdings = [_holding_view(snapshot.account, h) for h in snapshot.holdings]
        self.holdings_pnl = _sum(h.unrealised_pnl for h in self.holdings)
        self.book: AccountBook | None = None
        self.stale = True  # something above changed since `book` was made


class Portfolio:
    """Every account read so far, kept between reads: its ledger positions marked to market, its holdings, its
    sums. `update` takes in what changed since the last one."""

    def __init__(self, quote: Callable[[InstrumentId], Quote | None]) -> None:
        """`quote`: market data's latest quote of an instrument, if any."""
        self._quote = quote
        self.open_changed = False  # whether the last update changed `open_instruments`
        self._versions = itertools.count(1)  # of the books made
        self._reset(None)

    def forget(self) -> None:
        """Keep nothing: the next update builds every account's rows again (after an update that failed midway)."""
        self._reset(None)

    def _reset(self, epoch: str | None) -> None:
        self._epoch = epoch
        self._accounts: dict[str, _Account] = {}
        self._quotes: dict[InstrumentId, Quote | None] = {}  # the quote each instrument's rows were marked with
        self._holders: dict[InstrumentId, list[tuple[_Account, Slot]]] = {}  # the rows a quote marks
        self._open: dict[InstrumentId, int] = {}  # open books by instrument, over the accounts read

    def open_instruments(self) -> set[InstrumentId]:
        """The instruments of the open positions of the accounts read so far."""
        return set(self._open)

    def update(
        self,
        ledger: LedgerReplica,
        changed: Iterable[PositionState],
        snapshots: Mapping[str, AccountSnapshot],
        wanted: Sequence[str],
    ) -> list[AccountBook]:
        """The `wanted` accounts' books, after taking in what changed: `changed`, the books `ledger` took since
        the last update (the whole copy is read again when its epoch is another), each account's snapshot in
        `snapshots` that is not the one it was marked with, and each quote that moved."""
        self.open_changed = False
        if ledger.epoch != self._epoch:
            self.open_changed = bool(self._open)
            self._reset(ledger.epoch)
            changed = ()
        moved = []
        for instrument, seen in self._quotes.items():
            latest = self._quote(instrument)
            if latest is not seen:
                self._quotes[instrument] = latest
                moved.append(instrument)
        for name, account in self._accounts.items():
            if snapshots[name] is not account.snapshot:
                self._resync(account, snapshots[name])
        for state in changed:
            account = self._accounts.get(state.account)
            if account is not None:
                self._put(account, slot_of(state.account, state.instrument, state.product), state)
        for instrument in moved:
            for account, slot in self._holders[instrument]:
                self._put(account, slot, account.rows[slot].state)
        for name in wanted:
            if name not in self._accounts:
                account = self._accounts[name] = _Account(snapshots[name])
                for state in ledger.positions([name]):
                    self._put(account, slot_of(name, state.instrument, state.product), state)
        return [self._book(self._accounts[name]) for name in wanted]

    def _resync(self, account: _Account, snap: AccountSnapshot) -> None:
        """Take an account's new snapshot: its holdings and funds, and its marks for every row."""
        old, account.snapshot = account.snapshot, snap
        if snap.holdings != old.holdings:
            account.holdings = [_holding_view(snap.account, h) for h in snap.holdings]
            account.holdings_pnl = _sum(h.unrealised_pnl for h in account.holdings)
            account.stale = True
        if (snap.broker, snap.funds, snap.last_sync) != (old.broker, old.funds, old.last_sync):
            account.stale = True
        for slot, row in list(account.rows.items()):
            self._put(account, slot, row.state)

    def _mark(self, snap: AccountSnapshot, instrument: InstrumentId) -> Decimal | None:
        """The account's mark from its last sync, or market data's quote when that came after the sync; none if the
        price is not a number (a broker's "NaN"), which would poison every kept sum it entered."""
        quote = self._quotes[instrument]
        if quote is not None and (snap.last_sync is None or quote.at > snap.last_sync):
            price = quote.last_price
        else:
            price = snap.marks.get(instrument)
        return price if price is None or price.is_finite() else None

    def _put(self, account: _Account, slot: Slot, state: PositionState) -> None:
        """Make `state`, marked, the account's row at `slot`, unless the row there already reads the same."""
        instrument = state.instrument
        old = account.rows.get(slot)
        if old is None:
            if instrument not in self._quotes:
                self._quotes[instrument] = self._quote(instrument)
            self._holders.setdefault(instrument, []).append((account, slot))
            account.sorted = False
        last = self._mark(account.snapshot, instrument)
        if old is not None and old.state is state and _same(old.last_price, last):
            return
        row = account.rows[slot] = MarkedPosition(state, last, state.unrealised(last))
        account.stale = True
        account.changed.add(slot)
        account.unrealised = _add(account.unrealised, row.unrealised_pnl)
        if old is not None:
            account.unrealised = _subtract(account.unrealised, old.unrealised_pnl)
            if old.state is state:
                return  # marked again: nothing else moved
            account.realised = _subtract(account.realised, old.state.realised_pnl)
        account.realised = _add(account.realised, state.realised_pnl)
        opened = bool(state.quantity) - bool(old is not None and old.state.quantity)
        if opened:
            count = self._open[instrument] = self._open.get(instrument, 0) + opened
            if count == 0:
                del self._open[instrument]
            self.open_changed |= count == 0 or count == opened

    def _book(self, account: _Account) -> AccountBook:
        if account.stale or account.book is None:
            after = account.book.version if account.book is not None and account.sorted else 0
            if not account.sorted:  # rows were added: no row keeps its place for sure
                account.rows = dict(sorted(account.rows.items()))
                account.places = {slot: place for place, slot in enumerate(account.rows)}
                account.sorted = True
            snap = account.snapshot
            account.book = AccountBook(
                account=snap.account,
                broker=snap.broker,
                positions=list(account.rows.values()),
                holdings=account.holdings,
                funds=snap.funds,
                funds_as_of=snap.last_sync,
                realised_pnl=account.realised,
                unrealised_pnl=_add(account.unrealised, account.holdings_pnl),
                version=next(self._versions),
                after=after,
                changed=tuple(account.places[slot] for slot in account.changed) if after else (),
            )
            account.changed.clear()
            account.stale = False
        return account.book


class _Group:
    """One (instrument, product) over a set of accounts: each account's row, in the set's order, and their sums."""

    __slots__ = ("accounts", "joined", "longs", "members", "open_cost", "quantity", "realised", "shorts", "unrealised")

    def __init__(self) -> None:
        self.members: dict[int, MarkedPosition] = {}  # by the account's place in the set
        self.joined = False  # a member was added since the last `consolidate`
        self.quantity, self.longs, self.shorts = 0, 0, 0  # longs, shorts: members holding a long, a short
        self.open_cost = self.realised = self.unrealised = _ZERO
        self.accounts: tuple[str, ...] = ()

    def put(self, member: int, row: MarkedPosition) -> bool:
        """Make `row` the member's; False if it already was."""
        members = self.members
        old = members.get(member)
        if old is row:
            return False
        if old is None:
            self.joined = True
            if members and member < next(reversed(members)):
                self.members = members = dict(sorted({**members, member: row}.items()))
        elif old.state is row.state:  # marked again: only the unrealised PnL moved
            self.unrealised = _add(_subtract(self.unrealised, old.unrealised_pnl), row.unrealised_pnl)
            members[member] = row
            return True
        else:
            self._count(old, _subtract, -1)
        members[member] = row
        self._count(row, _add, 1)
        return True

    def _count(self, row: MarkedPosition, op: Callable[[Decimal, Decimal], Decimal], sign: int) -> None:
        state = row.state
        self.quantity += sign * state.quantity
        self.open_cost = op(self.open_cost, state.open_cost)
        self.realised = op(self.realised, state.realised_pnl)
        self.unrealised = op(self.unrealised, row.unrealised_pnl)
        if state.quantity > 0:
            self.longs += sign
        elif state.quantity < 0:
            self.shorts += sign

    def consolidate(self) -> ConsolidatedPosition:
        if self.joined:
            self.accounts = tuple(sorted({m.state.account for m in self.members.values()}))
            self.joined = False
        first = next(iter(self.members.values())).state
        # A long in one account and a short in another do not net into a meaningful entry price.
        one_side = (self.longs > 0) != (self.shorts > 0)
        return ConsolidatedPosition(
            instrument=first.instrument,
            product=first.product,
            quantity=self.quantity,
            open_cost=self.open_cost,
            average_price=self.open_cost / self.quantity if one_side else None,
            last_price=next((m.last_price for m in self.members.values() if m.last_price is not None), None),
            realised_pnl=self.realised,
            unrealised_pnl=self.unrealised,
            accounts=self.accounts,
        )


class PortfolioView:
    """One set of accounts' portfolio, kept between reads: their books, their rows consolidated per (instrument,
    product) and their holdings per instrument. `refresh` redoes only the consolidated rows whose accounts' rows
    changed. The lists it hands out are never changed afterwards, so a reader may keep them to compare."""

    def __init__(self) -> None:
        self.accounts: list[AccountBook] = []
        self.positions: list[ConsolidatedPosition] = []
        self.holdings: list[HoldingView] = []
        self.funds = Funds(_ZERO, _ZERO, _ZERO)
        self._groups: dict[GroupKey, _Group] = {}  # sorted
        self._rows: dict[GroupKey, ConsolidatedPosition] = {}  # each group's row
        self._places: dict[GroupKey, int] = {}  # each group's place in `positions`

    def refresh(self, books: Sequence[AccountBook]) -> None:
        """Take the set's books as they are now: of a book that is not the one taken before, the rows it says
        changed since that one, else all (each group skips a row it holds already)."""
        before: Sequence[AccountBook | None] = self.accounts or [None] * len(books)
        touched: dict[GroupKey, _Group] = {}
        grouped = False  # a group was added
        holdings = not self.accounts
        for member, (book, old) in enumerate(zip(books, before, strict=True)):
            if book is old:
                continue
            rows = book.positions
            if old is not None:
                holdings |= book.holdings is not old.holdings or book.funds is not old.funds
                if book.after == old.version:
                    rows = [rows[place] for place in book.changed]
            for row in rows:
                state = row.state
                key = (state.instrument.exchange, state.instrument.symbol, state.product)
                group = self._groups.get(key)
                if group is None:
                    group = self._groups[key] = _Group()
                    grouped = True
                if group.put(member, row):
                    touched[key] = group
        for key, group in touched.items():
            self._rows[key] = group.consolidate()
        if grouped:
            self._groups = dict(sorted(self._groups.items()))
            self._places = {key: place for place, key in enumerate(self._groups)}
            self.positions = [self._rows[key] for key in self._groups]
        elif touched:
            positions = list(self.positions)
            for key in touched:
                positions[self._places[key]] = self._rows[key]
            self.positions = positions
        if holdings:
            self.holdings = _consolidate_holdings([h for b in books for h in b.holdings])
            present = [b.funds for b in books if b.funds is not None]
            self.funds = Funds(
                available=_sum(f.available for f in present),
                used_margin=_sum(f.used_margin for f in present),
                total=_sum(f.total for f in present),
            )
        self.accounts = list(books)

    @property
    def realised_pnl(self) -> Decimal:
        return _sum(a.realised_pnl for a in self.accounts)

    @property
    def unrealised_pnl(self) -> Decimal:
        return _sum(a.unrealised_pnl for a in self.accounts)

    @property
    def holdings_value(self) -> Decimal:
        return sum((h.value for h in self.holdings), _ZERO)


@dataclass(frozen=True, slots=True)
class PnlPoint:
    """The summed PnL of some accounts at one sampling instant: a point of the intraday PnL curve."""

    at: datetime
    realised: Decimal
    unrealised: Decimal

    @property
    def total(self) -> Decimal:
        return self.realised + self.unrealised
