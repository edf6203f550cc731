"""The portfolio kept between reads (engine.portfolio, engine.api.portfolio_message) answers what a build from
nothing answers, byte for byte, after any sequence of fills, account syncs, quote moves and ledger restarts, for
every set of accounts a caller may ask for; and its rows are what marking and consolidating from scratch give."""

from __future__ import annotations

import asyncio
import itertools
import pickle
import random
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from engine.api.gateway import AccountHandle, Gateway
from engine.api.portfolio_message import PortfolioMessage, PortfolioMessages
from engine.brokers.base import Funds, Holding, Quote
from engine.config import AccountSettings
from engine.domain import Exchange, Fill, InstrumentId, Product, Side
from engine.domain.accounts import AccountSnapshot, AccountStatus
from engine.errors import PermissionDenied
from engine.ledger import ConsolidatedPosition, Ledger, LedgerReplica, MarkedPosition, PositionState
from engine.portfolio import Portfolio, PortfolioView
from engine.security.principal import Principal
from engine.security.tokens import Role
from trademaster.v1 import portfolio_pb2

ACCOUNTS = ("a0", "a1", "a2", "a3", "a4")
SETS = (ACCOUNTS, ("a3", "a1"), ("a2",), ("a4", "a0", "a2"))  # every account, and the subsets callers own
SYMBOLS = tuple(f"S{i}" for i in range(7))
T0 = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
AS_OF = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _instrument(symbol: str) -> InstrumentId:
    """A new object each time, as every Ray answer brings its own."""
    return InstrumentId(Exchange.NSE, symbol)


def _price(rng: random.Random) -> Decimal:
    """Two decimals, or now and then the same value written with a third (12.5 vs 12.50 vs 12.500)."""
    price = Decimal(rng.randint(100, 400)).scaleb(-1)
    return price.quantize(Decimal(rng.choice(("0.1", "0.01", "0.001"))))


class World:
    """What a Gateway reads: a LedgerActor's answers, the accounts' snapshots and market data's quotes."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ledger = Ledger()
        self.epoch = "e1"
        self.restarts = itertools.count(2)
        self.fills: list[Fill] = []
        self.snapshots = {a: AccountSnapshot(a, "paper", AccountStatus.RECONCILING) for a in ACCOUNTS}
        self.quotes: dict[InstrumentId, Quote] = {}
        self.now = T0

    def latest(self, instrument: InstrumentId) -> Quote | None:
        return self.quotes.get(instrument)

    def changes(self, epoch: str, since: int) -> tuple[str, int, list[PositionState]]:
        """The LedgerActor's answer, pickled both ways as Ray does."""
        answer = (self.epoch, *self.ledger.changes(since if epoch == self.epoch else 0))
        return pickle.loads(pickle.dumps(answer))  # type: ignore[no-any-return]

    def trade(self) -> None:
        """A few fills, on books old and new: positions open, grow, close, go flat and flip."""
        rng = self.rng
        for _ in range(rng.randint(1, 6)):
            self.now += timedelta(seconds=1)
            n = len(self.fills)
            fill = Fill(rng.choice(ACCOUNTS), str(1000 + n), f"O{n}", _instrument(rng.choice(SYMBOLS)),
                        rng.choice((Side.BUY, Side.SELL)), rng.choice((Product.MIS, Product.CNC)),
                        rng.randint(1, 30), _price(rng), self.now)  # fmt: skip
            self.fills.append(fill)
            self.ledger.apply(fill)

    def sync(self) -> None:
        """An account syncs: new marks (some instruments unmarked), funds (or none), holdings; or a snapshot
        object that is new but says the same, as each poll of the account actors brings."""
        rng = self.rng
        name = rng.choice(ACCOUNTS)
        old = self.snapshots[name]
        if rng.random() < 0.3:
            self.snapshots[name] = pickle.loads(pickle.dumps(old))
            return
        self.now += timedelta(seconds=1)
        marks = {_instrument(s): _price(rng) for s in SYMBOLS if rng.random() < 0.8}
        held = rng.sample(SYMBOLS, rng.randint(0, 3))
        holdings = tuple(Holding(_instrument(s), rng.randint(1, 9), _price(rng), _price(rng)) for s in held)
        funds = Funds(_price(rng), _price(rng), _price(rng)) if rng.random() < 0.8 else None
        broker = rng.choice(("paper", "kite"))
        self.snapshots[name] = AccountSnapshot(name, broker, AccountStatus.ACTIVE, last_sync=self.now, funds=funds,
                                               holdings=holdings, marks=marks)  # fmt: skip

    def move(self) -> None:
        """Quotes come in: new prices, the same price again (newer), or the same value written otherwise; some
        timed before an account's sync, which then keeps its own mark."""
        rng = self.rng
        for symbol in rng.sample(SYMBOLS, rng.randint(1, 4)):
            instrument = _instrument(symbol)
            old = self.quotes.get(instrument)
            price = old.last_price if old is not None and rng.random() < 0.3 else _price(rng)
            at = self.now + timedelta(seconds=rng.choice((-3, 1)))
            self.quotes[instrument] = Quote(instrument, price, price, price, at)

    def restart(self) -> None:
        """The LedgerActor restarts: a new epoch, the books replayed from the stored fills."""
        self.epoch = f"e{next(self.restarts)}"
        self.ledger = Ledger()
        self.ledger.apply_many(self.fills)


class Reader:
    """A Gateway's and a PortfolioService's part: a ledger copy, a Portfolio, a view and a message per account set."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.copy = LedgerReplica()
        self.portfolio = Portfolio(world.latest)
        self.views: dict[tuple[str, ...], PortfolioView] = {}
        self.messages = PortfolioMessages()

    def read(self, names: tuple[str, ...]) -> PortfolioView:
        changed = self.copy.update(*self.world.changes(self.copy.epoch, self.copy.version))
        books = self.portfolio.update(self.copy, changed, self.world.snapshots, names)
        view = self.views.setdefault(names, PortfolioView())
        view.refresh(books)
        return view

    def message(self, names: tuple[str, ...]) -> tuple[PortfolioMessage, portfolio_pb2.Portfolio]:
        view = self.read(names)
        kept = self.messages.of(view)
        kept.draw(view)
        return kept, kept.lend(AS_OF)


# The reference model: every book marked and consolidated from scratch, as the portfolio was built before it kept
# anything; the kept portfolio must give the same rows.


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
    quantity, open_cost, realised, unrealised = 0, Decimal(0), Decimal(0), Decimal(0)
    sides: set[bool] = set()
    accounts: set[str] = set()
    last_price: Decimal | None = None
    for m in group:
        state = m.state
        quantity += state.quantity
        open_cost += state.open_cost
        realised += state.realised_pnl
        unrealised += m.unrealised_pnl
        if state.quantity:
            sides.add(state.quantity > 0)
        if last_price is None:
            last_price = m.last_price
        accounts.add(state.account)
    # A long in one account and a short in another do not net into a meaningful entry price.
    return ConsolidatedPosition(
        instrument=instrument,
        product=product,
        quantity=quantity,
        open_cost=open_cost,
        average_price=open_cost / quantity if len(sides) == 1 else None,
        last_price=last_price,
        realised_pnl=realised,
        unrealised_pnl=unrealised,
        accounts=tuple(sorted(accounts)),
    )


def _fresh(world: World, names: tuple[str, ...]) -> bytes:
    _, message = Reader(world).message(names)
    return message.SerializeToString(deterministic=True)


def _reference(world: World, view: PortfolioView, names: Iterable[str]) -> None:
    """The view's rows and sums against marking and consolidating every book from scratch (engine.ledger)."""
    rows = []
    for name, book in zip(names, view.accounts, strict=True):
        snap = world.snapshots[name]
        newer = {i: q.last_price for i, q in world.quotes.items() if snap.last_sync is None or q.at > snap.last_sync}
        marked = mark(world.ledger.positions([name]), {**snap.marks, **newer})
        assert [(m.state, m.last_price, m.unrealised_pnl) for m in book.positions] == [
            (m.state, m.last_price, m.unrealised_pnl) for m in marked
        ]
        assert [str(m.last_price) for m in book.positions] == [str(m.last_price) for m in marked]
        assert book.realised_pnl == sum((m.state.realised_pnl for m in marked), Decimal(0))
        holdings = sum(((h.last_price - h.average_price) * h.quantity for h in snap.holdings), Decimal(0))
        assert book.unrealised_pnl == sum((m.unrealised_pnl for m in marked), Decimal(0)) + holdings
        rows.extend(marked)
    assert view.positions == consolidate(rows)


@pytest.mark.parametrize("seed", range(12))
def test_kept_portfolio_answers_what_a_fresh_build_does(seed: int) -> None:
    world = World(seed)
    reader = Reader(world)
    lent: list[tuple[PortfolioMessage, portfolio_pb2.Portfolio, bytes]] = []
    steps = (world.trade, world.trade, world.sync, world.move, world.restart)
    for _ in range(60):
        for step in world.rng.choices(steps, weights=(4, 4, 3, 3, 0.3), k=world.rng.randint(1, 3)):
            step()
        names = world.rng.choice(SETS)  # the other sets' views fall behind by a few reads
        kept, message = reader.message(names)
        body = message.SerializeToString(deterministic=True)
        assert body == _fresh(world, names)
        _reference(world, reader.views[names], names)
        if world.rng.random() < 0.3:  # still being sent when the next read comes: left as it is
            lent.append((kept, message, body))
        else:
            kept.returned(message)
    assert lent, "some reads overlapped one still being sent"
    for _, message, body in lent:
        assert message.SerializeToString(deterministic=True) == body


def test_a_returned_message_is_redrawn_in_place_and_a_lent_one_is_not() -> None:
    world = World(7)
    world.trade()
    world.sync()
    reader = Reader(world)
    kept, first = reader.message(ACCOUNTS)
    kept.returned(first)
    world.trade()
    _, second = reader.message(ACCOUNTS)
    assert second is first, "drawn in place: no copy of the whole message"
    before = second.SerializeToString()
    world.trade()
    _, third = reader.message(ACCOUNTS)  # the second was not returned
    assert third is not second and second.SerializeToString() == before
    assert third.SerializeToString(deterministic=True) == _fresh(world, ACCOUNTS)


def test_a_message_filled_again_many_times_is_copied_to_let_go_of_the_old_fields() -> None:
    world = World(3)
    world.trade()
    reader = Reader(world)
    kept, first = reader.message(ACCOUNTS)
    messages = {id(first)}
    for _ in range(200):
        kept.returned(first)
        world.move()
        kept, first = reader.message(ACCOUNTS)
        messages.add(id(first))
    assert 1 < len(messages) < 100
    assert first.SerializeToString(deterministic=True) == _fresh(world, ACCOUNTS)


def test_an_unchanged_account_keeps_its_book_and_a_changed_one_names_its_rows() -> None:
    world = World(5)
    for _ in range(5):
        world.trade()
    reader = Reader(world)
    before = list(reader.read(ACCOUNTS).accounts)
    fill = world.fills[-1]
    world.ledger.apply(Fill(fill.account, "9999", "O9999", fill.instrument, fill.side, fill.product, 1, fill.price,
                            world.now + timedelta(seconds=1)))  # fmt: skip
    after = reader.read(ACCOUNTS).accounts
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old is not new]
    assert len(changed) == 1
    old, new = changed[0]
    assert new.after == old.version and len(new.changed) == 1
    place = new.changed[0]
    assert new.positions[place].state.instrument == fill.instrument
    assert [p for i, p in enumerate(new.positions) if i != place] == [
        p for i, p in enumerate(old.positions) if i != place
    ]


def test_instrument_ids_hash_as_their_fields_and_pickle_without_the_hash() -> None:
    infy = InstrumentId(Exchange.NSE, "INFY")
    assert hash(infy) == hash(InstrumentId.parse("nse:infy")) == hash((Exchange.NSE, "INFY"))
    assert infy.__reduce__() == (InstrumentId, (Exchange.NSE, "INFY")), "a reader's process hashes strings its way"
    copy = pickle.loads(pickle.dumps(infy))
    assert copy == infy and hash(copy) == hash(infy) and {copy: 1}[infy] == 1
    assert sorted([InstrumentId(Exchange.NSE, "TCS"), infy]) == [infy, InstrumentId(Exchange.NSE, "TCS")]


class _Remote:
    def __init__(self, method: Any) -> None:
        self._method = method

    def remote(self, *args: Any) -> Any:
        return self._method(*args)


def test_the_gateway_reads_each_callers_accounts_once_and_keeps_their_views() -> None:
    world = World(11)
    for _ in range(4):
        world.trade()
        world.sync()
    world.move()

    async def changes(epoch: str, since: int) -> tuple[str, int, list[PositionState]]:
        return world.changes(epoch, since)

    async def snapshot(name: str) -> AccountSnapshot:
        return world.snapshots[name]

    def handle(name: str) -> AccountHandle:
        return AccountHandle(AccountSettings(id=name), SimpleNamespace(snapshot=_Remote(lambda: snapshot(name))))

    async def quote_now(wanted: list[InstrumentId], _timeout: float) -> list[Quote]:
        return [world.quotes[i] for i in wanted if i in world.quotes]

    followed: dict[str, list[InstrumentId]] = {}
    market = SimpleNamespace(subscribe=_Remote(followed.__setitem__), unsubscribe=_Remote(followed.pop),
                             quote_now=_Remote(quote_now))  # fmt: skip

    async def scenario() -> None:
        gateway = Gateway([handle(n) for n in ACCOUNTS], None, SimpleNamespace(changes=_Remote(changes)), None,  # type: ignore[arg-type]
                          None, market_data=market, quote_timeout=1.0, quote_max_age=60.0)  # type: ignore[arg-type]  # fmt: skip
        await gateway.quotes.get(list(world.quotes))
        await gateway.refresh_snapshots()
        viewer = Principal("vera", Role.VIEWER, "t1", frozenset({"a3", "a1"}))
        mine = await gateway.portfolio([], viewer)
        assert [b.account for b in mine.accounts] == ["a1", "a3"], "the caller's accounts, in configured order"
        twice = await gateway.portfolio(["a3", "a3"], viewer)
        assert [b.account for b in twice.accounts] == ["a3"], "an account named twice counts once"
        with pytest.raises(PermissionDenied):
            await gateway.portfolio(["a0"], viewer)
        world.trade()
        again = await gateway.portfolio([], viewer)
        assert again is mine, "the caller's view, kept and brought up to date"
        expected = {b.account: b for b in Reader(world).read(("a1", "a3")).accounts}
        assert [(b.positions, b.realised_pnl, b.unrealised_pnl) for b in again.accounts] == [
            (expected[b.account].positions, expected[b.account].realised_pnl, expected[b.account].unrealised_pnl)
            for b in again.accounts
        ]
        opened = {s.instrument for s in world.ledger.positions(["a1", "a3"]) if s.quantity}
        assert set(followed["portfolio"]) == opened, "their open positions followed, for fresh marks"

        polled = gateway.snapshot("a1")
        world.snapshots["a1"] = pickle.loads(pickle.dumps(polled))
        await gateway.refresh_snapshots()
        assert gateway.snapshot("a1") is polled, "an equal snapshot is not a new one: no row is marked again"

        gone = next(s for s in world.ledger.positions(["a1", "a3"]))
        key = (gone.account, gone.instrument, gone.product)
        world.fills = [f for f in world.fills if (f.account, f.instrument, f.product) != key]
        world.restart()  # a replay without one book: no kept view may still show it
        after = await gateway.portfolio([], viewer)
        assert after.positions == Reader(world).read(("a1", "a3")).positions
        assert all(p.instrument != gone.instrument or p.product != gone.product or gone.account not in p.accounts
                   for p in after.positions)  # fmt: skip

    asyncio.run(scenario())


def test_a_price_that_is_not_a_number_leaves_its_rows_unmarked_and_does_not_stick() -> None:
    """A broker's "NaN" or "Infinity" would otherwise enter the kept sums and stay there (NaN - NaN is NaN)."""
    world = World(5)
    for _ in range(4):
        world.trade()
        world.sync()
    reader = Reader(world)
    held = next(s.instrument for s in world.ledger.positions() if s.quantity)
    for bad in ("NaN", "Infinity", "-Infinity"):
        world.now += timedelta(seconds=1)
        world.quotes[held] = Quote(held, Decimal(bad), Decimal(bad), Decimal(bad), world.now)
        rows = [m for b in reader.read(ACCOUNTS).accounts for m in b.positions if m.state.instrument == held]
        assert rows and all(m.last_price is None for m in rows)
        world.now += timedelta(seconds=1)
        world.quotes[held] = Quote(held, Decimal("101.5"), Decimal("101.5"), Decimal("101.5"), world.now)
        kept, message = reader.message(ACCOUNTS)
        assert message.SerializeToString(deterministic=True) == _fresh(world, ACCOUNTS)
        kept.returned(message)
