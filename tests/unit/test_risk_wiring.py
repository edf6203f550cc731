"""Pre-trade risk wired to the daemon: layered limits from the config, and the context the gateway builds from
its cached snapshot plus what it sent since; also the day's PnL and order count the account runtime reports."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest

from engine.api.gateway import Gateway
from engine.api.risk_check import PreTradeRisk, build_context, uses_last_price
from engine.brokers.base import BrokerPosition, BrokerTrade, Funds, Holding
from engine.config import ConfigError, load_settings
from engine.domain import Instrument, InstrumentId, OrderRequest, OrderType, Product, Side
from engine.domain.accounts import NO_COUNT, AccountSnapshot, AccountStatus, DayCount, Submission
from engine.domain.orders import Order, OrderStatus
from engine.domain.sessions import IST, TradingSessions
from engine.errors import FailedPrecondition, ServiceUnavailable
from engine.ledger import day_pnl
from engine.risk import RiskLimits, RiskViolation
from engine.routing import Hold, Reservations, claim

D = Decimal
INFY = InstrumentId.parse("NSE:INFY")
TCS = InstrumentId.parse("NSE:TCS")
INFY_MASTER = Instrument(INFY, "Infosys", tick_size=D("0.10"), lot_size=1, last_price=D("1500"))
NOW = datetime(2026, 11, 23, 4, 30, tzinfo=UTC)  # 10:00 IST on a Monday
TODAY = NOW.astimezone(IST).date()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


# -- configuration -----------------------------------------------------------------------------------

LAYERED = """
[risk]
max_order_quantity = 1000
max_order_value = "500000"
allow_short_selling = false

[group_risk.family]
max_order_quantity = 100
max_orders_per_day = 50
allowed_products = ["CNC", "MIS"]

[group_risk.intraday]
max_order_quantity = 200
allowed_products = ["MIS"]

[[accounts]]
id = "a"
groups = ["family", "intraday"]

[[accounts]]
id = "b"
groups = ["intraday", "family"]
[accounts.risk]
max_order_value = "20000"
allow_short_selling = true

[[accounts]]
id = "c"
"""


def test_layers_combine_global_then_groups_in_the_accounts_order_then_the_account(tmp_path: Path) -> None:
    limits = load_settings(write(tmp_path, LAYERED)).risk_limits()

    assert limits["a"] == RiskLimits(
        max_order_quantity=200,  # intraday comes after family in a's list
        max_order_value=D(500000),
        allow_short_selling=False,
        max_orders_per_day=50,
        allowed_products=[Product.MIS],
    )
    assert limits["b"] == RiskLimits(
        max_order_quantity=100,  # family comes last in b's list
        max_order_value=D(20000),
        allow_short_selling=True,
        max_orders_per_day=50,
        allowed_products=[Product.CNC, Product.MIS],
    )
    assert limits["c"] == RiskLimits(max_order_quantity=1000, max_order_value=D(500000), allow_short_selling=False)


def test_no_risk_settings_means_no_limits(tmp_path: Path) -> None:
    limits = load_settings(write(tmp_path, '[[accounts]]\nid = "solo"\n')).risk_limits()
    assert limits == {"solo": RiskLimits()}
    assert limits["solo"].enforce_sessions is None and limits["solo"].price_band_percent is None


def test_the_environment_overrides_a_global_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEMASTER_RISK__MAX_ORDER_QUANTITY", "7")
    limits = load_settings(write(tmp_path, LAYERED)).risk_limits()
    assert limits["c"].max_order_quantity == 7
    assert limits["a"].max_order_quantity == 200, "a group still overrides the global layer"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[group_risk.famly]\nmax_order_quantity = 1\n[[accounts]]\nid = "a"\ngroups = ["family"]\n', "famly"),
        ("[group_risk.family]\nmax_order_quantity = 1\n", "group_risk.family: no account is in group"),
        ('[risk]\nmax_order_qty = 1\n[[accounts]]\nid = "a"\n', "risk.max_order_qty: unknown setting"),
        ('[[accounts]]\nid = "a"\n[accounts.risk]\nmax_orders_per_day = -1\n', "accounts.0.risk.max_orders_per_day"),
        ('[risk]\nallowed_products = ["CNC", "BO"]\n[[accounts]]\nid = "a"\n', "risk.allowed_products"),
    ],
    ids=["misspelt-group", "group-of-no-account", "unknown-key", "negative-cap", "unknown-product"],
)
def test_bad_risk_settings_are_config_errors_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(write(tmp_path, text))


# -- the context ------------------------------------------------------------------------------------


def snapshot(
    positions: tuple[BrokerPosition, ...] = (),
    holdings: tuple[Holding, ...] = (),
    marks: dict[InstrumentId, Decimal] | None = None,
    **fields: object,
) -> AccountSnapshot:
    base = AccountSnapshot(
        account="acct",
        broker="zerodha-sim",
        status=AccountStatus.ACTIVE,
        last_sync=NOW - timedelta(seconds=1),
        funds=Funds(D(10**6), D(0), D(10**6)),
        funds_at=NOW - timedelta(seconds=1),
        positions=positions,
        holdings=holdings,
        marks=marks if marks is not None else {INFY: D(1500), TCS: D(4000)},
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def position(instrument: InstrumentId, product: Product, quantity: int) -> BrokerPosition:
    return BrokerPosition(instrument, product, quantity, D(1400), D(1500))


def test_context_adds_every_product_and_the_holdings_then_what_was_sent_since() -> None:
    snap = snapshot(
        positions=(position(INFY, Product.MIS, -30), position(INFY, Product.CNC, 20), position(TCS, Product.NRML, -5)),
        holdings=(Holding(INFY, 50, D(1400), D(1500)),),
        pnl_today=D("-1234.50"),
    )
    sent = [
        Hold("acct", INFY, D(0), 10, quantity=-10, price=D(1500)),  # a CNC sell in flight
        Hold("acct", TCS, D(800), 0, quantity=1, price=D(4000)),
    ]

    context = build_context(snap, INFY, D(1510), sent, orders_today=7)

    assert context.net_quantity == -30 + 20 + 50 - 10
    assert context.holdings_quantity == 50 + 20 - 10
    assert context.gross_position_value == 30 * D(1510) + 4 * D(4000)  # the order's instrument at its last price
    assert (context.last_price, context.pnl_today, context.orders_today) == (D(1510), D("-1234.50"), 7)


def test_kite_shows_holdings_sold_today_as_a_negative_cnc_position() -> None:
    snap = snapshot(positions=(position(INFY, Product.CNC, -10),), holdings=(Holding(INFY, 50, D(1400), D(1500)),))
    assert snap.deliverable(INFY) == 40
    context = build_context(snap, INFY, D(1500), [], 0)
    assert (context.net_quantity, context.holdings_quantity, context.gross_position_value) == (40, 40, 40 * D(1500))


def test_an_instrument_known_only_from_an_order_in_flight_is_valued_at_its_price() -> None:
    context = build_context(snapshot(marks={}), INFY, None, [Hold("acct", TCS, D(0), 0, quantity=3, price=D(99))], 0)
    assert context.gross_position_value == 3 * D(99) and context.net_quantity == 0 and context.last_price is None


def test_claim_holds_margin_or_shares_and_the_signed_quantity() -> None:
    order = OrderRequest("c", "acct", INFY, Side.SELL, 10, Product.CNC, OrderType.LIMIT, D(1500))
    sell = claim(order, D(1500))
    assert (sell.funds, sell.shares, sell.quantity, sell.price) == (D(0), 10, -10, D(1500))
    buy = claim(replace(order, side=Side.BUY, product=Product.MIS), D(1500))
    assert (buy.funds, buy.shares, buy.quantity) == (D(3000), 0, 10)  # MIS margin: 20%


@pytest.mark.parametrize(
    ("limits", "order_type", "uses"),
    [
        (RiskLimits(), OrderType.MARKET, False),
        (RiskLimits(price_band_percent=D(5)), OrderType.LIMIT, True),
        (RiskLimits(price_band_percent=D(5)), OrderType.SL_M, True),
        (RiskLimits(price_band_percent=D(5)), OrderType.MARKET, False),
        (RiskLimits(max_order_value=D(1)), OrderType.MARKET, True),
        (RiskLimits(max_position_value_per_account=D(1)), OrderType.SL_M, True),
        (RiskLimits(max_order_value=D(1)), OrderType.LIMIT, False),
    ],
    ids=["none", "band-limit", "band-trigger", "band-market", "value-market", "position-value-slm", "value-limit"],
)
def test_a_quote_is_worth_asking_only_when_a_limit_reads_the_last_price(
    limits: RiskLimits, order_type: OrderType, uses: bool
) -> None:
    order = OrderRequest("c", "acct", INFY, Side.BUY, 1, Product.MIS, order_type, D(1500), D(1500))
    assert uses_last_price(limits, order) is uses


# -- the gateway's check ----------------------------------------------------------------------------


class FakeGateway:
    def __init__(self, **snapshots: AccountSnapshot) -> None:
        self.snapshots = snapshots

    def snapshot(self, account: str) -> AccountSnapshot:
        return self.snapshots[account]


def risk(
    limits: dict[str, RiskLimits], holds: Reservations | None = None, **snapshots: AccountSnapshot
) -> PreTradeRisk:
    gateway = cast(Gateway, FakeGateway(**snapshots))
    return PreTradeRisk(gateway, limits, holds or Reservations(), TradingSessions(), clock=lambda: NOW)


BUY = OrderRequest("c1", "", INFY, Side.BUY, 10, Product.MIS, OrderType.LIMIT, D("1500.00"))


def sent(count: int, day: date = TODAY) -> Submission:
    order = Order("o", "c", "ka1", INFY, Side.BUY, 1, Product.MIS, OrderType.MARKET, status=OrderStatus.OPEN,
                  created_at=NOW, updated_at=NOW)  # fmt: skip
    return Submission(order, orders_today=DayCount(day, count))


def test_a_violation_names_the_account_the_rule_and_the_numbers() -> None:
    check = risk({"ka1": RiskLimits(max_order_quantity=5)}, ka1=snapshot())
    with pytest.raises(RiskViolation) as caught:
        check.check(BUY, INFY_MASTER, D(1500), [("ka1", 10)])
    assert str(caught.value) == "account ka1: risk max_order_quantity: order quantity 10 exceeds the limit 5"
    assert (caught.value.account, caught.value.rule) == ("ka1", "max_order_quantity")
    assert isinstance(caught.value, FailedPrecondition)


def test_every_piece_counts_the_pieces_before_it_at_the_same_account() -> None:
    limits = {
        "ka1": RiskLimits(max_orders_per_day=3, max_position_quantity_per_instrument=25),
        "ua1": RiskLimits(max_orders_per_day=1),
    }
    check = risk(limits, ka1=snapshot(), ua1=snapshot())
    check.check(BUY, INFY_MASTER, D(1500), [("ka1", 10), ("ua1", 10), ("ka1", 10)])
    with pytest.raises(RiskViolation, match=r"account ka1: risk max_position_quantity_per_instrument: .* 30 units"):
        check.check(BUY, INFY_MASTER, D(1500), [("ka1", 10), ("ka1", 10), ("ka1", 10)])
    with pytest.raises(RiskViolation, match="account ua1: risk max_orders_per_day: 1 orders already placed"):
        check.check(BUY, INFY_MASTER, D(1500), [("ua1", 5), ("ua1", 5)])


def test_orders_today_is_the_newest_count_plus_what_is_in_flight() -> None:
    holds = Reservations()
    check = risk({"ka1": RiskLimits(max_orders_per_day=5)}, holds, ka1=snapshot(orders_today=DayCount(TODAY, 2)))
    check.check(BUY, INFY_MASTER, D(1500), [("ka1", 1)] * 3)  # 2 + 3 = 5: at the cap

    check.note("ka1", sent(3))  # a reply newer than the snapshot
    check.note("ka1", sent(1, TODAY - timedelta(days=1)))  # yesterday's count never counts today
    in_flight = holds.hold(claim(replace(BUY, account="ka1"), D(1500)))
    check.check(BUY, INFY_MASTER, D(1500), [("ka1", 1)])  # 3 + 1 in flight + 1
    with pytest.raises(RiskViolation, match="5 orders already placed today; the limit is 5"):
        check.check(BUY, INFY_MASTER, D(1500), [("ka1", 1)] * 2)

    holds.settle(in_flight, None)  # refused before it was stored: it never counted
    check.check(BUY, INFY_MASTER, D(1500), [("ka1", 1)] * 2)


def test_yesterdays_count_in_the_snapshot_is_zero_today() -> None:
    check = risk(
        {"ka1": RiskLimits(max_orders_per_day=1)}, ka1=snapshot(orders_today=DayCount(TODAY - timedelta(days=1), 9))
    )
    check.check(BUY, INFY_MASTER, D(1500), [("ka1", 1)])


def test_a_burst_cannot_pass_a_position_limit_between_two_snapshots() -> None:
    holds = Reservations()
    check = risk({"ka1": RiskLimits(max_position_quantity_per_instrument=15)}, holds, ka1=snapshot())
    acked = holds.hold(claim(replace(BUY, account="ka1"), D(1500)))
    holds.settle(acked, NOW)  # acknowledged after the snapshot's funds were read: not in it yet
    with pytest.raises(RiskViolation, match="would be 20 units"):
        check.check(BUY, INFY_MASTER, D(1500), [("ka1", 10)])
    synced = snapshot(funds_at=NOW + timedelta(seconds=1), positions=(position(INFY, Product.MIS, 10),))
    check = risk({"ka1": RiskLimits(max_position_quantity_per_instrument=15)}, holds, ka1=synced)
    check.check(BUY, INFY_MASTER, D(1500), [("ka1", 5)])  # the snapshot has it now, and it is counted once


def test_the_accounts_own_mark_wins_over_the_orders_last_price() -> None:
    check = risk({"ka1": RiskLimits(price_band_percent=D(1))}, ka1=snapshot(marks={INFY: D(1500)}))
    check.check(BUY, INFY_MASTER, D(1000), [("ka1", 1)])
    unmarked = risk({"ka1": RiskLimits(price_band_percent=D(1))}, ka1=snapshot(marks={}))
    with pytest.raises(RiskViolation, match=r"is 50\.00% from the last price ₹1,000\.00"):
        unmarked.check(BUY, INFY_MASTER, D(1000), [("ka1", 1)])


def test_refusal_is_why_not_even_one_lot_may_go_there() -> None:
    check = risk(
        {"ka1": RiskLimits(allowed_products=[Product.CNC]), "ua1": RiskLimits(max_order_quantity=1)},
        ka1=snapshot(),
        ua1=snapshot(),
    )
    assert check.refusal(BUY, INFY_MASTER, D(1500), "ka1") == (
        "risk allowed_products: product MIS is not allowed (allowed: CNC)"
    )
    assert check.refusal(BUY, INFY_MASTER, D(1500), "ua1") == "", "one lot fits; the leg's size is checked later"


def test_an_account_never_synced_cannot_be_checked_unless_it_needs_a_login() -> None:
    starting = snapshot(last_sync=None, status=AccountStatus.DEGRADED, last_error="Unavailable: connection refused")
    check = risk({"ka1": RiskLimits()}, ka1=starting)
    with pytest.raises(ServiceUnavailable, match=r"ka1 has not synced .* connection refused"):
        check.check(BUY, INFY_MASTER, D(1500), [("ka1", 1)])
    login = risk({"ka1": RiskLimits()}, ka1=snapshot(last_sync=None, status=AccountStatus.LOGIN_REQUIRED))
    login.check(BUY, INFY_MASTER, D(1500), [("ka1", 1)])  # the account itself refuses, saying how to log in


def test_a_reconciling_account_is_unavailable_even_with_an_older_sync() -> None:
    restarted = snapshot(status=AccountStatus.RECONCILING, last_error="Unavailable: HTTP 503 from /orders")
    check = risk({"ka1": RiskLimits()}, ka1=restarted)
    with pytest.raises(ServiceUnavailable, match=r"ka1 is reconciling .* HTTP 503 from /orders; no order was sent"):
        check.check(BUY, INFY_MASTER, D(1500), [("ka1", 1)])


# -- what the account runtime reports -----------------------------------------------------------------


def trade(instrument: InstrumentId, side: Side, quantity: int, price: str, at: datetime = NOW) -> BrokerTrade:
    return BrokerTrade("t", "b", instrument, side, Product.MIS, quantity, D(price), at)


def test_day_pnl_marks_todays_trades_to_market() -> None:
    trades = [
        trade(INFY, Side.BUY, 10, "1500"),
        trade(INFY, Side.SELL, 4, "1510"),  # 40 realised
        trade(TCS, Side.SELL, 2, "4000"),  # short 2, marked at 3990: +20
        trade(INFY, Side.BUY, 100, "1", NOW - timedelta(days=1)),  # yesterday's: not today's PnL
    ]
    marks = {INFY: D(1490), TCS: D(3990)}
    assert day_pnl(trades, marks, TODAY) == D(40) + 6 * D(-10) + D(20)


def test_day_pnl_marks_an_instrument_without_a_price_at_its_last_trade() -> None:
    trades = [trade(INFY, Side.BUY, 10, "1500", NOW), trade(INFY, Side.BUY, 10, "1520", NOW + timedelta(seconds=1))]
    assert day_pnl(trades, {}, TODAY) == D(200)  # 10 bought at 1500 marked at the last trade, 1520
    assert day_pnl([], {}, TODAY) == D(0)


def test_day_is_the_ist_date() -> None:
    late_utc = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)  # 01:30 IST on the 24th
    assert day_pnl([trade(INFY, Side.BUY, 1, "1500", late_utc)], {INFY: D(1501)}, date(2026, 11, 24)) == D(1)


def test_day_counts_never_go_back() -> None:
    today, yesterday = DayCount(TODAY, 3), DayCount(TODAY - timedelta(days=1), 9)
    assert today.latest(DayCount(TODAY, 2)) == today and DayCount(TODAY, 2).latest(today) == today
    assert today.latest(yesterday) == today and yesterday.latest(today) == today
    assert NO_COUNT.latest(today) == today and NO_COUNT.on(TODAY) == 0 and yesterday.on(TODAY) == 0
