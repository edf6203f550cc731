"""What one account can take of an order, from its latest snapshot: funds, margin, holdings, and exclusions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.brokers.base import BrokerPosition, Funds, Holding
from engine.domain import InstrumentId, Product, Side
from engine.domain.accounts import AccountSnapshot, AccountStatus, CircuitState
from engine.domain.margin import MARGIN_RATES
from engine.routing.candidates import OrderShape, Reserved, candidate, capacity

D = Decimal
B, S = Side.BUY, Side.SELL
CNC, MIS, NRML = Product.CNC, Product.MIS, Product.NRML
INFY = InstrumentId.parse("NSE:INFY")
TCS = InstrumentId.parse("NSE:TCS")
NIFTY_FUT = InstrumentId.parse("NFO:NIFTY26NOVFUT")
PRICE = D(1500)


def funds(available: Decimal | int) -> Funds:
    return Funds(available=D(available), used_margin=D(0), total=D(available))


def holding(quantity: int, instrument: InstrumentId = INFY) -> Holding:
    return Holding(instrument, quantity, PRICE, PRICE)


def position(quantity: int, product: Product, instrument: InstrumentId = INFY) -> BrokerPosition:
    return BrokerPosition(instrument, product, quantity, PRICE, PRICE)


def snapshot(
    available: Decimal | int | None = 0,
    holdings: tuple[Holding, ...] = (),
    positions: tuple[BrokerPosition, ...] = (),
    status: AccountStatus = AccountStatus.ACTIVE,
    circuit: CircuitState = CircuitState.CLOSED,
    last_error: str = "",
) -> AccountSnapshot:
    return AccountSnapshot(
        account="alpha",
        broker="zerodha-sim",
        status=status,
        funds=None if available is None else funds(available),
        holdings=holdings,
        positions=positions,
        circuit=circuit,
        last_error=last_error,
        ack_latency_ms=42.0,
        error_rate=0.125,
    )


def order(
    side: Side, product: Product, quantity: int = 100, price: Decimal = PRICE, lot: int = 1, instrument=INFY
) -> OrderShape:
    return OrderShape(instrument, side, product, quantity, lot, price)


@pytest.mark.parametrize(
    ("snap", "shape", "reserved", "expected"),
    [
        # CNC buy: the full value, from free funds (available less what in-flight orders claim)
        pytest.param(snapshot(150_000), order(B, CNC), Reserved(), 100, id="cnc-buy-full-value"),
        pytest.param(snapshot(150_000), order(B, CNC), Reserved(funds=D(30_000)), 80, id="cnc-buy-less-reserved"),
        pytest.param(snapshot(D("151499.99")), order(B, CNC), Reserved(), 100, id="cnc-buy-rounds-down"),
        pytest.param(snapshot(10_000), order(B, CNC), Reserved(funds=D(20_000)), 0, id="cnc-buy-over-reserved"),
        pytest.param(snapshot(1_000_000), order(B, CNC, 10), Reserved(), 666, id="cnc-buy-capacity-beyond-order"),
        # MIS: 20% margin (5x), shorts allowed, closing the opposite MIS position is free
        pytest.param(snapshot(30_000), order(B, MIS), Reserved(), 100, id="mis-buy-5x"),
        pytest.param(snapshot(30_000), order(S, MIS), Reserved(), 100, id="mis-sell-short-with-margin"),
        pytest.param(
            snapshot(3_000, positions=(position(40, MIS),)),
            order(S, MIS),
            Reserved(),
            50,
            id="mis-sell-closing-long-is-free",
        ),
        pytest.param(
            snapshot(0, positions=(position(40, MIS),)),
            order(S, MIS),
            Reserved(),
            40,
            id="mis-sell-closing-only-without-funds",
        ),
        pytest.param(
            snapshot(0, positions=(position(-40, MIS),)),
            order(B, MIS),
            Reserved(),
            40,
            id="mis-buy-covering-short-is-free",
        ),
        pytest.param(
            snapshot(0, positions=(position(40, MIS),)),
            order(B, MIS),
            Reserved(),
            0,
            id="mis-buy-adding-to-long-needs-margin",
        ),
        pytest.param(
            snapshot(0, positions=(position(40, CNC),)),
            order(S, MIS),
            Reserved(),
            0,
            id="mis-sell-cannot-close-a-cnc-position",
        ),
        pytest.param(
            snapshot(0, positions=(position(40, MIS, TCS),)),
            order(S, MIS),
            Reserved(),
            0,
            id="mis-sell-cannot-close-another-instrument",
        ),
        # CNC sell: the shares, never margin
        pytest.param(snapshot(0, holdings=(holding(100),)), order(S, CNC), Reserved(), 100, id="cnc-sell-holdings"),
        pytest.param(
            snapshot(0, holdings=(holding(100),), positions=(position(20, CNC),)),
            order(S, CNC),
            Reserved(),
            120,
            id="cnc-sell-holdings-plus-todays-cnc-buys",
        ),
        pytest.param(
            snapshot(0, holdings=(holding(100),), positions=(position(-30, CNC),)),
            order(S, CNC),
            Reserved(),
            70,
            id="cnc-sell-holdings-less-todays-cnc-sells",  # Kite keeps sold holdings until settlement
        ),
        pytest.param(
            snapshot(0, holdings=(holding(100),)),
            order(S, CNC),
            Reserved(shares=30),
            70,
            id="cnc-sell-less-reserved-shares",
        ),
        pytest.param(
            snapshot(0, holdings=(holding(100),), positions=(position(50, MIS),)),
            order(S, CNC),
            Reserved(),
            100,
            id="cnc-sell-ignores-mis-position",
        ),
        pytest.param(
            snapshot(10**9, holdings=(holding(100, TCS),)),
            order(S, CNC),
            Reserved(),
            0,
            id="cnc-sell-holds-another-instrument-only",
        ),
        pytest.param(
            snapshot(0, holdings=(holding(100),)),
            order(S, CNC),
            Reserved(shares=150),
            0,
            id="cnc-sell-all-claimed-in-flight",
        ),
        pytest.param(
            snapshot(0, holdings=(holding(17),)), order(S, CNC, lot=5), Reserved(), 15, id="cnc-sell-rounds-down-to-lot"
        ),
        # F&O: NRML at 20%, whole lots only
        pytest.param(
            snapshot(1_000_000),
            order(B, NRML, 300, D(20_000), 75, NIFTY_FUT),
            Reserved(),
            225,
            id="nrml-buy-rounds-down-to-lots",
        ),
        pytest.param(
            snapshot(3_999), order(B, NRML, 75, D(20_000), 75, NIFTY_FUT), Reserved(), 0, id="nrml-buy-not-one-lot"
        ),
        pytest.param(
            snapshot(0, positions=(position(150, NRML, NIFTY_FUT),)),
            order(S, NRML, 75, D(20_000), 75, NIFTY_FUT),
            Reserved(),
            150,
            id="nrml-sell-closing-long",
        ),
        pytest.param(
            snapshot(300_000), order(S, NRML, 75, D(20_000), 75, NIFTY_FUT), Reserved(), 75, id="nrml-sell-short"
        ),
    ],
)
def test_capacity_table(snap: AccountSnapshot, shape: OrderShape, reserved: Reserved, expected: int) -> None:
    units, why = capacity(snap, shape, reserved)
    assert units == expected
    assert (why == "") == (units > 0), "a reason exactly when the account can take nothing"


def test_capacity_reasons_are_readable() -> None:
    _, why = capacity(snapshot(0), order(S, CNC), Reserved())
    assert why == "holds no NSE:INFY to sell for delivery (CNC)"
    _, why = capacity(snapshot(D("1499.5")), order(B, CNC), Reserved())
    assert why == "free funds ₹1499.50 cover not even one lot"
    _, why = capacity(snapshot(10_000), order(B, CNC), Reserved(funds=D(20_000)))
    assert why == "free funds ₹0.00 cover not even one lot"  # never a negative amount


@pytest.mark.parametrize(
    ("snap", "reason"),
    [
        pytest.param(snapshot(10**9, status=AccountStatus.LOGIN_REQUIRED), "needs a broker login", id="login"),
        pytest.param(
            snapshot(10**9, status=AccountStatus.LOGIN_REQUIRED, circuit=CircuitState.OPEN),
            "needs a broker login",
            id="login-before-circuit",
        ),
        pytest.param(snapshot(None, status=AccountStatus.RECONCILING), "reconciling with its broker", id="reconciling"),
        pytest.param(
            snapshot(10**9, status=AccountStatus.RECONCILING),
            "reconciling with its broker",
            id="reconciling-with-stale-funds",
        ),
        pytest.param(snapshot(None), "not synced with its broker yet", id="no-funds-yet"),
        pytest.param(
            snapshot(10**9, circuit=CircuitState.OPEN, last_error="HTTP 503 from /orders"),
            "circuit open after repeated broker failures (HTTP 503 from /orders)",
            id="circuit-open",
        ),
        pytest.param(snapshot(100), "free funds ₹100.00 cover not even one lot", id="no-funds-for-one-share"),
    ],
)
def test_candidate_exclusions(snap: AccountSnapshot, reason: str) -> None:
    cand = candidate(snap, order(B, CNC), Reserved(), 1.0)
    assert cand.excluded == reason
    assert cand.capacity == 0


@pytest.mark.parametrize(
    ("status", "circuit"),
    [
        (AccountStatus.ACTIVE, CircuitState.CLOSED),
        (AccountStatus.DEGRADED, CircuitState.CLOSED),
        (AccountStatus.ACTIVE, CircuitState.HALF_OPEN),
    ],
)
def test_candidate_usable_carries_the_snapshot(status: AccountStatus, circuit: CircuitState) -> None:
    snap = snapshot(200_000, status=status, circuit=circuit)
    cand = candidate(snap, order(B, CNC), Reserved(funds=D(50_000)), 0.75)
    assert cand.excluded == ""
    assert cand.capacity == 100  # ₹150,000 free at ₹1,500
    assert (cand.account, cand.broker) == ("alpha", "zerodha-sim")
    assert cand.free_funds == D(150_000)
    assert cand.ack_latency_ms == 42.0
    assert cand.error_rate == 0.125
    assert cand.circuit is circuit
    assert cand.preference == 0.75


def test_excluded_candidate_still_reports_its_free_funds() -> None:
    cand = candidate(snapshot(80_000, status=AccountStatus.LOGIN_REQUIRED), order(B, CNC), Reserved(D(5_000)), 1.0)
    assert cand.free_funds == D(75_000)
    assert cand.capacity == 0


paise = st.integers(-(10**6), 10**10).map(lambda p: D(p) / 100)
prices = st.integers(5, 5_000_000).map(lambda p: D(p) / 100)


@settings(max_examples=300, deadline=None)
@given(
    available=paise,
    reserved_funds=st.integers(0, 10**9).map(lambda p: D(p) / 100),
    price=prices,
    side=st.sampled_from([B, S]),
    product=st.sampled_from([CNC, MIS, NRML]),
    net=st.integers(-500, 500),
    lot=st.sampled_from([1, 1, 25, 75]),
)
def test_capacity_never_exceeds_what_free_funds_buy(
    available: Decimal, reserved_funds: Decimal, price: Decimal, side: Side, product: Product, net: int, lot: int
) -> None:
    if product is CNC and side is S:
        side = B  # CNC sells are covered by shares, tested below
    snap = snapshot(available, positions=(position(net, product), position(999, MIS if product is CNC else CNC)))
    units, why = capacity(snap, order(side, product, 100, price, lot), Reserved(funds=reserved_funds))
    free = max(D(0), available - reserved_funds)
    per_unit = price * MARGIN_RATES[product]
    closable = max(0, -net) if side is B else max(0, net)
    assert units >= 0 and units % lot == 0
    opening = max(0, units - closable)
    assert opening * per_unit <= free, "capacity opens more exposure than free funds cover"
    assert max(0, units + lot - closable) * per_unit > free, "capacity is a whole lot short of what funds cover"
    assert (why == "") == (units > 0)


@settings(max_examples=300, deadline=None)
@given(
    held=st.integers(0, 1000),
    bought_today=st.integers(-300, 300),
    reserved_shares=st.integers(0, 1500),
    available=paise,
    lot=st.sampled_from([1, 1, 5]),
)
def test_cnc_sell_capacity_never_exceeds_the_shares(
    held: int, bought_today: int, reserved_shares: int, available: Decimal, lot: int
) -> None:
    snap = snapshot(available, holdings=(holding(held), holding(500, TCS)), positions=(position(bought_today, CNC),))
    units, why = capacity(snap, order(S, CNC, 100, PRICE, lot), Reserved(shares=reserved_shares))
    shares = held + bought_today - reserved_shares  # a negative CNC position is holdings sold today (Kite)
    assert units >= 0 and units % lot == 0
    assert units <= max(0, shares)
    assert units + lot > shares, "capacity is a whole lot short of the shares held"
    assert (why == "") == (units > 0)
