"""FIFO ledger: exact table cases, then properties checked against a unit-by-unit reference model."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, getcontext, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain import Exchange, Fill, InstrumentId, Product, Side
from engine.domain.accounts import AccountSnapshot, AccountStatus
from engine.ledger import (
    ConsolidatedPosition,
    Ledger,
    LedgerReplica,
    Lot,
    PositionBook,
    PositionState,
)
from engine.portfolio import Portfolio, PortfolioView

D = Decimal
B, S = Side.BUY, Side.SELL
INFY = InstrumentId(Exchange.NSE, "INFY")
TCS = InstrumentId(Exchange.NSE, "TCS")
AT = datetime(2024, 6, 3, 9, 15, tzinfo=UTC)
_trade_ids = itertools.count(1)


def fill(
    side: Side,
    quantity: int,
    price: str | Decimal,
    *,
    account: str = "ACC1",
    instrument: InstrumentId = INFY,
    product: Product = Product.CNC,
    trade_id: str | None = None,
) -> Fill:
    return Fill(
        account=account,
        trade_id=trade_id or f"T{next(_trade_ids)}",
        order_id="O1",
        instrument=instrument,
        side=side,
        product=product,
        quantity=quantity,
        price=D(price),
        filled_at=AT,
    )


def new_book(account: str = "ACC1") -> PositionBook:
    return PositionBook(account, INFY, Product.CNC)


# --- table tests -------------------------------------------------------------------------------------

# (fills as (side, qty, price), realised per fill, open lots afterwards as (signed qty, price))
CASES = [
    pytest.param(
        [(B, 100, "10.00"), (S, 40, "12.50")],
        ["0", "100.00"],
        [(60, "10.00")],
        id="partial-close-keeps-lot-price",
    ),
    pytest.param(
        [(B, 100, "10.00"), (S, 40, "12.50"), (S, 60, "9.00")],
        ["0", "100.00", "-60.00"],
        [],
        id="partial-then-full-close",
    ),
    pytest.param(
        [(B, 10, "100"), (B, 20, "110"), (B, 30, "120"), (S, 60, "130")],
        ["0", "0", "0", "1000"],
        [],
        id="one-sell-closes-three-buy-lots",
    ),
    pytest.param(
        [(B, 10, "100"), (B, 20, "110"), (B, 30, "120"), (S, 50, "130")],
        ["0", "0", "0", "900"],
        [(10, "120")],
        id="one-sell-closes-two-and-a-half-lots",
    ),
    pytest.param(
        [(B, 90, "50.00"), (S, 30, "51.00"), (S, 30, "49.50"), (S, 30, "55.25")],
        ["0", "30.00", "-15.00", "157.50"],
        [],
        id="one-lot-closed-by-three-sells",
    ),
    pytest.param(
        [(S, 50, "200"), (B, 20, "190"), (B, 30, "210")],
        ["0", "200", "-300"],
        [],
        id="short-then-cover",
    ),
    pytest.param(
        [(S, 10, "200"), (S, 10, "205"), (B, 15, "195")],
        ["0", "0", "100"],
        [(-5, "205")],
        id="cover-two-short-lots-partially",
    ),
    pytest.param(
        [(B, 10, "100"), (S, 25, "105")],
        ["0", "50"],
        [(-15, "105")],
        id="flip-long-to-short",
    ),
    pytest.param(
        [(B, 10, "100"), (B, 5, "102"), (S, 25, "105"), (B, 15, "100")],
        ["0", "0", "65", "50"],
        [(5, "100")],
        id="flip-through-zero-and-back",
    ),
    pytest.param(
        [(S, 5, "10.10"), (B, 8, "9.90")],
        ["0", "1.00"],
        [(3, "9.90")],
        id="flip-short-to-long",
    ),
    pytest.param(
        [(B, 7, "1.05"), (S, 7, "1.05"), (B, 3, "2.00")],
        ["0", "0.00", "0"],
        [(3, "2.00")],
        id="flat-at-cost-then-reopen",
    ),
]


@pytest.mark.parametrize(("fills", "pnls", "lots"), CASES)
def test_fifo_table(fills: list[tuple[Side, int, str]], pnls: list[str], lots: list[tuple[int, str]]) -> None:
    book = new_book()
    got = [book.apply(fill(side, qty, price)) for side, qty, price in fills]

    assert got == [D(p) for p in pnls]
    assert book.realised == sum(D(p) for p in pnls)
    assert book.lots == tuple(Lot(q, D(p)) for q, p in lots)
    assert book.quantity == sum(q for q, _ in lots)
    assert book.open_cost == sum((q * D(p) for q, p in lots), D(0))
    expected_avg = book.open_cost / book.quantity if lots else None
    assert book.average_price == expected_avg


def test_average_price_realised_and_unrealised() -> None:
    book = new_book()
    book.apply(fill(B, 10, "100"))
    book.apply(fill(B, 10, "110"))
    assert book.average_price == D("105")

    assert book.apply(fill(S, 5, "120")) == D("100")
    # Open lots are 5@100 and 10@110; the average covers only what is still open.
    state = book.state()
    assert (state.quantity, state.open_cost, state.realised_pnl) == (15, D("1600"), D("100"))
    assert state.average_price == D(1600) / 15
    assert state.unrealised(D("115")) == D("125")
    assert state.unrealised(D("100")) == D("-100")
    assert state.unrealised(None) == D(0)
    assert (state.buy_quantity, state.sell_quantity) == (20, 5)
    assert (state.buy_value, state.sell_value) == (D("2100"), D("600"))


def test_average_price_is_not_rounded() -> None:
    book = new_book()
    book.apply(fill(B, 1, "100"))
    book.apply(fill(B, 2, "101"))
    assert book.average_price == D(302) / 3
    assert book.average_price != D("100.67")


def test_short_unrealised_and_average() -> None:
    book = new_book()
    book.apply(fill(S, 10, "100.50"))
    state = book.state()
    assert state.quantity == -10
    assert state.open_cost == D("-1005.00")
    assert state.average_price == D("100.50")
    assert state.unrealised(D("90.50")) == D("100.00")
    assert state.unrealised(D("101")) == D("-5.00")


def test_flat_book_has_no_average_and_zero_unrealised() -> None:
    book = new_book()
    book.apply(fill(B, 4, "10"))
    book.apply(fill(S, 4, "12"))
    state = book.state()
    assert (state.quantity, state.average_price, state.open_cost) == (0, None, D(0))
    assert state.realised_pnl == D("8")
    assert state.unrealised(D("50")) == D(0)


def test_state_is_a_frozen_snapshot() -> None:
    book = new_book()
    book.apply(fill(B, 10, "100"))
    before = book.state()
    book.apply(fill(B, 10, "200"))
    assert before.quantity == 10
    with pytest.raises(AttributeError):
        before.quantity = 5  # type: ignore[misc]


def test_lots_are_copies() -> None:
    book = new_book()
    book.apply(fill(B, 10, "100"))
    book.lots[0].quantity = 99
    assert book.quantity == 10


@pytest.mark.parametrize(
    "bad",
    [
        fill(B, 0, "100"),
        fill(B, -3, "100"),
        fill(B, 1, "NaN"),
        fill(B, 1, "100", account="OTHER"),
        fill(B, 1, "100", instrument=TCS),
        fill(B, 1, "100", product=Product.MIS),
    ],
)
def test_book_rejects_malformed_or_misrouted_fills(bad: Fill) -> None:
    book = new_book()
    book.apply(fill(B, 5, "100"))
    with pytest.raises(ValueError):
        book.apply(bad)
    assert (book.quantity, book.buy_quantity, book.realised) == (5, 5, D(0))


# --- ledger ------------------------------------------------------------------------------------------


def test_duplicate_trade_ids_are_ignored() -> None:
    ledger = Ledger()
    first = fill(B, 10, "100", trade_id="X1")
    assert ledger.apply(first) is True
    assert ledger.apply(first) is False
    # Same identity with different content is still a replay: the first version wins.
    assert ledger.apply(fill(S, 10, "150", trade_id="X1")) is False
    [state] = ledger.positions()
    assert (state.quantity, state.realised_pnl, state.buy_quantity, state.sell_quantity) == (10, D(0), 10, 0)


def test_trade_id_is_scoped_to_account() -> None:
    ledger = Ledger()
    assert ledger.apply(fill(B, 1, "100", account="A", trade_id="X1"))
    assert ledger.apply(fill(B, 1, "100", account="B", trade_id="X1"))
    assert [s.account for s in ledger.positions()] == ["A", "B"]


def test_apply_many_counts_only_new_fills() -> None:
    ledger = Ledger()
    fills = [fill(B, 10, "100"), fill(S, 4, "110"), fill(S, 6, "90")]
    assert ledger.apply_many(fills) == 3
    assert ledger.apply_many([*fills, fill(B, 1, "95")]) == 1
    [state] = ledger.positions()
    assert (state.quantity, state.realised_pnl) == (1, D("-20"))


def test_rejected_fill_is_not_recorded_as_applied() -> None:
    ledger = Ledger()
    with pytest.raises(ValueError):
        ledger.apply(fill(B, 0, "100", trade_id="X1"))
    assert ledger.positions() == []
    assert ledger.apply(fill(B, 3, "100", trade_id="X1")) is True


def test_positions_sorted_filtered_and_keep_flat_books() -> None:
    ledger = Ledger()
    ledger.apply_many(
        [
            fill(B, 5, "10", account="B", instrument=TCS),
            fill(B, 5, "10", account="A", instrument=TCS, product=Product.MIS),
            fill(B, 5, "10", account="A", instrument=TCS),
            fill(B, 2, "20", account="A", instrument=INFY),
            fill(S, 2, "25", account="A", instrument=INFY),
        ]
    )
    keys = [(s.account, s.instrument, s.product) for s in ledger.positions()]
    assert keys == [
        ("A", INFY, Product.CNC),
        ("A", TCS, Product.CNC),
        ("A", TCS, Product.MIS),
        ("B", TCS, Product.CNC),
    ]
    flat = ledger.positions()[0]
    assert (flat.quantity, flat.realised_pnl, flat.average_price) == (0, D("10"), None)
    assert [s.account for s in ledger.positions(["B"])] == ["B"]
    assert ledger.positions({"nobody"}) == []


# --- marking and consolidation -----------------------------------------------------------------------


def _ledger(*fills: Fill) -> Ledger:
    ledger = Ledger()
    ledger.apply_many(fills)
    return ledger


def _book_view(ledger: Ledger, marks: dict[InstrumentId, Decimal]) -> PortfolioView:
    """The ledger's books as the gateway shows them (engine.portfolio), every account marked with `marks`."""
    copy = LedgerReplica()
    changed = copy.update("e1", *ledger.changes(0))
    names = sorted({s.account for s in ledger.positions()})
    snapshots = {n: AccountSnapshot(n, "paper", AccountStatus.ACTIVE, marks=marks) for n in names}
    view = PortfolioView()
    view.refresh(Portfolio(lambda _: None).update(copy, changed, snapshots, names))
    return view


def test_consolidate_same_side_gives_average_price() -> None:
    ledger = _ledger(
        fill(B, 10, "100", account="A"),
        fill(B, 40, "104", account="B"),
        fill(S, 10, "106", account="B"),  # realises 20 in B, leaves 30@104
    )
    [row] = _book_view(ledger, {INFY: D("110")}).positions
    assert row == ConsolidatedPosition(
        instrument=INFY,
        product=Product.CNC,
        quantity=40,
        open_cost=D("4120"),
        average_price=D("103"),
        last_price=D("110"),
        realised_pnl=D("20"),
        unrealised_pnl=D("280"),
        accounts=("A", "B"),
    )


def test_consolidate_same_side_short() -> None:
    ledger = _ledger(fill(S, 10, "100", account="A"), fill(S, 30, "104", account="B"))
    [row] = _book_view(ledger, {INFY: D("101")}).positions
    assert (row.quantity, row.open_cost, row.average_price) == (-40, D("-4120"), D("103"))
    assert row.unrealised_pnl == D("-10") + D("90")


def test_consolidate_mixed_sides_has_no_average_price() -> None:
    ledger = _ledger(fill(B, 10, "100", account="A"), fill(S, 4, "105", account="B"))
    [row] = _book_view(ledger, {INFY: D("110")}).positions
    assert (row.quantity, row.open_cost, row.average_price) == (6, D("580"), None)
    assert row.unrealised_pnl == D("100") + D("-20")
    assert row.realised_pnl == D(0)


def test_consolidate_net_flat_across_accounts() -> None:
    ledger = _ledger(fill(B, 5, "100", account="A"), fill(S, 5, "102", account="B"))
    [row] = _book_view(ledger, {INFY: D("101")}).positions
    assert (row.quantity, row.average_price, row.open_cost) == (0, None, D("-10"))
    assert row.unrealised_pnl == D("5") + D("5")


def test_consolidate_ignores_flat_accounts_for_side() -> None:
    ledger = _ledger(
        fill(B, 5, "100", account="A"),
        fill(S, 5, "90", account="A"),  # A is flat with realised -50
        fill(B, 10, "120", account="B"),
    )
    [row] = _book_view(ledger, {INFY: D("125")}).positions
    assert (row.quantity, row.average_price) == (10, D("120"))
    assert (row.realised_pnl, row.unrealised_pnl) == (D("-50"), D("50"))
    assert row.accounts == ("A", "B")


def test_consolidate_groups_by_instrument_and_product() -> None:
    ledger = _ledger(
        fill(B, 1, "10", account="A", instrument=TCS),
        fill(B, 2, "20", account="B", instrument=INFY, product=Product.MIS),
        fill(B, 3, "30", account="A", instrument=INFY),
        fill(B, 4, "40", account="C", instrument=INFY),
    )
    rows = _book_view(ledger, {}).positions
    assert [(r.instrument, r.product, r.quantity, r.accounts) for r in rows] == [
        (INFY, Product.CNC, 7, ("A", "C")),
        (INFY, Product.MIS, 2, ("B",)),
        (TCS, Product.CNC, 1, ("A",)),
    ]


def test_mark_with_missing_price_gives_zero_unrealised() -> None:
    ledger = _ledger(fill(B, 10, "100", instrument=INFY), fill(B, 10, "100", instrument=TCS))
    view = _book_view(ledger, {TCS: D("101")})
    assert [(m.state.instrument, m.last_price, m.unrealised_pnl) for m in view.accounts[0].positions] == [
        (INFY, None, D(0)),
        (TCS, D("101"), D("10")),
    ]
    rows = view.positions
    assert [(r.last_price, r.unrealised_pnl) for r in rows] == [(None, D(0)), (D("101"), D("10"))]
    assert rows[0].average_price == D("100")


def test_consolidate_empty() -> None:
    assert _book_view(Ledger(), {}).positions == []


# --- properties against a reference model ------------------------------------------------------------

PRICES = st.decimals(min_value=D("1"), max_value=D("5000"), places=2, allow_nan=False, allow_infinity=False)
FILLS = st.lists(st.tuples(st.sampled_from(Side), st.integers(1, 500), PRICES), min_size=1, max_size=60)
PROPERTY = settings(max_examples=300, deadline=None)


def reference(fills: list[tuple[Side, int, Decimal]]) -> tuple[Decimal, list[tuple[int, Decimal]]]:
    """FIFO one unit at a time: obviously right, too slow for production."""
    units: deque[tuple[int, Decimal]] = deque()
    realised = D(0)
    for side, quantity, price in fills:
        for _ in range(quantity):
            if units and units[0][0] != side.sign:
                sign, lot_price = units.popleft()
                realised += (price - lot_price) * sign
            else:
                units.append((side.sign, price))
    return realised, list(units)


def cash_mark_to_market(fills: list[tuple[Side, int, Decimal]], mark_price: Decimal) -> Decimal:
    quantity = sum(side.sign * q for side, q, _ in fills)
    return -sum((side.sign * q * p for side, q, p in fills), D(0)) + quantity * mark_price


def assert_average_within_half_ulp(state: PositionState) -> None:
    """average_price is the exact quotient rounded once by the context, never quantized further."""
    assert state.average_price is not None
    avg, q = state.average_price, state.quantity
    half_ulp = D(1).scaleb(avg.adjusted() - getcontext().prec + 1) / 2
    with localcontext() as ctx:
        ctx.prec = 80  # wide enough that the check itself is exact
        assert abs(avg * q - state.open_cost) <= abs(q) * half_ulp


@PROPERTY
@given(fills=FILLS, mark_price=PRICES)
def test_book_matches_unit_reference(fills: list[tuple[Side, int, Decimal]], mark_price: Decimal) -> None:
    book = new_book()
    per_fill = [book.apply(fill(side, q, p)) for side, q, p in fills]
    state = book.state()
    ref_realised, ref_units = reference(fills)

    # (a) quantity conserves
    assert state.quantity == sum(side.sign * q for side, q, _ in fills)
    # (b) realised matches the reference, and the per-fill returns add up to it
    assert state.realised_pnl == ref_realised == sum(per_fill, D(0))
    # open lots are exactly the reference's unmatched units, in order
    units = [(1 if lot.quantity > 0 else -1, lot.price) for lot in book.lots for _ in range(abs(lot.quantity))]
    assert units == ref_units
    assert all(lot.quantity != 0 for lot in book.lots)
    # (c) realised + unrealised is the mark-to-market of the cash flows, exactly
    assert state.realised_pnl + state.unrealised(mark_price) == cash_mark_to_market(fills, mark_price)
    # (d) average price times quantity gives back open cost
    if state.quantity:
        assert_average_within_half_ulp(state)
    else:
        assert state.average_price is None
        assert state.open_cost == 0
    # gross totals
    assert state.buy_quantity == sum(q for side, q, _ in fills if side is B)
    assert state.sell_value == sum((q * p for side, q, p in fills if side is S), D(0))


@PROPERTY
@given(
    fills=st.lists(
        st.tuples(st.sampled_from(["A", "B", "C"]), st.sampled_from(Side), st.integers(1, 500), PRICES),
        min_size=1,
        max_size=60,
    ),
    mark_price=PRICES,
)
def test_ledger_replays_and_consolidates(fills: list[tuple[str, Side, int, Decimal]], mark_price: Decimal) -> None:
    domain_fills = [fill(side, q, p, account=acct) for acct, side, q, p in fills]
    ledger = Ledger()
    assert ledger.apply_many(domain_fills) == len(domain_fills)
    assert ledger.apply_many(domain_fills[::2]) == 0

    states = ledger.positions()
    for state in states:
        mine = [(side, q, p) for acct, side, q, p in fills if acct == state.account]
        assert state.realised_pnl == reference(mine)[0]

    [row] = _book_view(ledger, {INFY: mark_price}).positions
    flows = [(side, q, p) for _, side, q, p in fills]
    assert row.quantity == sum(side.sign * q for side, q, _ in flows)
    assert row.realised_pnl + row.unrealised_pnl == cash_mark_to_market(flows, mark_price)
    assert row.accounts == tuple(sorted({acct for acct, *_ in fills}))
    sides = {s.quantity > 0 for s in states if s.quantity}
    if len(sides) == 1:
        assert row.average_price == row.open_cost / row.quantity
    else:
        assert row.average_price is None


def test_a_late_fill_leaves_its_book_to_be_rebuilt_in_execution_order() -> None:
    """A fill the daemon learns of late (after a restart) still closes against the lots that traded first."""
    first, second, exit_ = (
        replace(fill(Side.BUY, 10, "100", trade_id="9"), filled_at=AT),
        replace(fill(Side.BUY, 10, "110", trade_id="10"), filled_at=AT),  # same second: numeric id order
        replace(fill(Side.SELL, 10, "120", trade_id="11"), filled_at=AT + timedelta(seconds=1)),
    )
    other = replace(fill(Side.BUY, 1, "50", instrument=TCS), filled_at=AT)
    ledger = Ledger()
    ledger.apply_many([other, second, exit_])
    assert ledger.unordered() == []
    ledger.apply(first)
    key = ("ACC1", INFY, Product.CNC)
    assert ledger.unordered() == [key]
    ledger.rebuild(key, [exit_, first, second])
    assert ledger.unordered() == []
    infy = next(p for p in ledger.positions() if p.instrument == INFY)
    assert (infy.realised_pnl, infy.quantity, infy.average_price) == (D(200), 10, D(110))
    assert not ledger.apply(first), "the rebuilt book's fills still count as applied"


# --- a reader's copy -------------------------------------------------------------------------------------


def test_changes_name_only_the_books_changed_since_a_version() -> None:
    ledger = _ledger(fill(B, 5, "10", account="A"), fill(B, 5, "10", account="B"))
    version, everything = ledger.changes(0)
    assert sorted(s.account for s in everything) == ["A", "B"]
    ledger.apply(fill(S, 2, "12", account="B"))
    later, changed = ledger.changes(version)
    assert later > version and [(s.account, s.quantity) for s in changed] == [("B", 3)]
    assert ledger.changes(later) == (later, [])


def test_changes_since_any_version_are_the_books_changed_after_it_rebuilt_ones_included() -> None:
    """`changes` reads the most recently changed books back until it meets an older one: checked against
    what each version did, over books changed again and again and a rebuilt one."""
    ledger = Ledger()
    touched: list[set[str]] = [set()]  # the accounts whose book each version changed (one instrument, product)
    for n, account in enumerate(["A", "B", "C", "A", "D", "B", "B", "E", "A"]):
        ledger.apply(fill(B, 1, "10", account=account, trade_id=f"t{n}"))
        touched.append({account})
    key = next((p.account, p.instrument, p.product) for p in ledger.positions() if p.account == "C")
    ledger.rebuild(key, [fill(B, 1, "10", account="C", trade_id="t2")])
    touched.append({"C"})
    for since in range(len(touched)):
        version, changed = ledger.changes(since)
        assert version == len(touched) - 1
        assert sorted(s.account for s in changed) == sorted(set().union(*touched[since + 1 :]))


def test_a_replica_follows_the_ledger_and_drops_an_answer_older_than_itself() -> None:
    ledger = _ledger(fill(B, 5, "10", account="B", instrument=TCS), fill(B, 5, "10", account="A"))
    copy = LedgerReplica()
    copy.update("e1", *ledger.changes(0))
    stale = ("e1", *ledger.changes(0))  # every book as it is now
    ledger.apply_many([fill(S, 5, "11", account="A"), fill(B, 1, "10", account="A", instrument=TCS)])
    copy.update("e1", *ledger.changes(copy.version))
    copy.update(*stale)  # an overlapping call's answer, come back last
    assert copy.positions(["B", "A", "nobody"]) == ledger.positions(["B"]) + ledger.positions(["A"])
    assert copy.positions(["A"])[0].quantity == 0, "in the ledger's order: INFY before TCS"


def test_a_replica_of_another_epoch_is_replaced_whole() -> None:
    copy = LedgerReplica()
    copy.update("e1", *_ledger(fill(B, 5, "10", account="A"), fill(B, 5, "10", account="B")).changes(0))
    restarted = _ledger(fill(B, 7, "10", account="A"))
    copy.update("e2", *restarted.changes(0))
    assert copy.positions(["A", "B"]) == restarted.positions()


# --- runs: fills in a row for one book are folded together -----------------------------------------------


def _snapshot(ledger: Ledger) -> list[tuple[str, ...]]:
    """Every field of every book, as text: equal Decimals with other exponents would compare equal."""
    return [tuple(repr(getattr(s, f)) for f in PositionState.__slots__) for s in ledger.positions()]


@PROPERTY
@given(
    fills=st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.sampled_from([INFY, TCS]),
            st.sampled_from(Side),
            st.integers(1, 50),
            PRICES,
            st.integers(0, 30),  # trade id: repeats are replays
            st.integers(0, 3),  # seconds: a fill may come late
        ),
        min_size=1,
        max_size=80,
    )
)
def test_apply_many_folds_as_one_fill_at_a_time(
    fills: list[tuple[str, InstrumentId, Side, int, Decimal, int, int]],
) -> None:
    domain = [
        replace(fill(side, q, p, account=a, instrument=i, trade_id=str(t)), filled_at=AT + timedelta(seconds=s))
        for a, i, side, q, p, t, s in fills
    ]
    one_by_one, together = Ledger(), Ledger()
    assert sum(one_by_one.apply(f) for f in domain) == together.apply_many(domain)
    assert _snapshot(together) == _snapshot(one_by_one)
    assert together.unordered() == one_by_one.unordered()


def test_a_malformed_fill_in_a_run_leaves_those_before_it_applied() -> None:
    good, bad, after = fill(B, 5, "10", trade_id="1"), fill(B, 1, "NaN", trade_id="2"), fill(B, 2, "11", trade_id="3")
    ledger = Ledger()
    with pytest.raises(ValueError, match="non-finite"):
        ledger.apply_many([good, bad, after])
    assert [(s.quantity, s.buy_quantity) for s in ledger.positions()] == [(5, 5)]
    assert ledger.apply_many([good, replace(bad, price=D("10.5")), after]) == 2
    assert [s.quantity for s in ledger.positions()] == [8]


def test_a_run_of_replays_files_no_book() -> None:
    ledger = _ledger(fill(B, 5, "10", trade_id="X1"))
    assert ledger.apply_many([fill(S, 5, "10", instrument=TCS, trade_id="X1")]) == 0
    assert [s.instrument for s in ledger.positions()] == [INFY]
    version, _ = ledger.changes(0)
    assert ledger.changes(version - 1)[1] == [], "a replay changes no book"


def test_equal_instruments_that_are_other_objects_share_a_book() -> None:
    ledger = _ledger(fill(B, 5, "10"), fill(S, 2, "12", instrument=InstrumentId(Exchange.NSE, "INFY")))
    [state] = ledger.positions()
    assert (state.quantity, state.realised_pnl) == (3, D("4"))


def test_many_lots_close_one_by_one_in_fifo_order() -> None:
    book = new_book()
    book.fold_many([fill(B, 1, D(100 + i)) for i in range(1000)], set())
    for i in range(999):
        assert book.apply(fill(S, 1, "200")) == D(100 - i)
    assert book.lots == (Lot(1, D(1099)),)
    assert (book.quantity, book.realised) == (1, sum((D(100 - i) for i in range(999)), D(0)))
