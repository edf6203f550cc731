"""Pre-trade risk: every rule at its limit and just past it, layering, exits under a breached limit, sessions."""

from __future__ import annotations

import pickle
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, time
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from engine.domain import Instrument, InstrumentId, OrderRequest, OrderType, Product, Side
from engine.domain.sessions import IST, TradingSessions
from engine.errors import FailedPrecondition
from engine.risk import RiskContext, RiskLimits, RiskViolation, check_order, effective_limits

D = Decimal
INFY = Instrument(InstrumentId.parse("NSE:INFY"), "Infosys", tick_size=D("0.10"), lot_size=1, last_price=D("1500"))
NIFTY = Instrument(
    InstrumentId.parse("NFO:NIFTY26NOVFUT"), "NIFTY Nov fut", tick_size=D("0.10"), lot_size=65, last_price=D("26000")
)
TRADING_MORNING = datetime(2026, 11, 23, 10, 0, tzinfo=IST)  # a Monday
SESSIONS = TradingSessions()

BASE_ORDER = OrderRequest(
    client_order_id="c1",
    account="acct",
    instrument=INFY.id,
    side=Side.BUY,
    quantity=10,
    product=Product.MIS,
    order_type=OrderType.LIMIT,
    price=D("1500.00"),
)
FLAT = RiskContext(
    last_price=D("1500.00"),
    net_quantity=0,
    holdings_quantity=0,
    gross_position_value=D(0),
    pnl_today=D(0),
    orders_today=0,
)


def check(
    limits: RiskLimits,
    order: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    instrument: Instrument = INFY,
    now: datetime = TRADING_MORNING,
) -> None:
    order_request = replace(BASE_ORDER, instrument=instrument.id, **(order or {}))
    check_order(order_request, instrument, replace(FLAT, **(context or {})), limits, SESSIONS, now)


def refused_by(rule: str, *args: Any, **kwargs: Any) -> RiskViolation:
    with pytest.raises(RiskViolation) as caught:
        check(*args, **kwargs)
    assert caught.value.rule == rule
    assert str(caught.value).startswith(f"risk {rule}: ")
    return caught.value


MARKET = {"order_type": OrderType.MARKET, "price": None}
SELL = Side.SELL

# (limits, order changes, context changes, rule that refuses or None); each limit at its edge and just past it.
RULE_CASES: list[Any] = [
    pytest.param(RiskLimits(max_order_quantity=10), {}, {}, None, id="order-quantity-at"),
    pytest.param(
        RiskLimits(max_order_quantity=10), {"quantity": 11}, {}, "max_order_quantity", id="order-quantity-over"
    ),
    pytest.param(RiskLimits(max_order_value=D(15000)), {}, {}, None, id="order-value-at"),
    pytest.param(
        RiskLimits(max_order_value=D(15000)), {"price": D("1500.10")}, {}, "max_order_value", id="order-value-over"
    ),
    pytest.param(RiskLimits(max_order_value=D(15000)), MARKET, {}, None, id="order-value-market-at-last-price"),
    pytest.param(
        RiskLimits(max_order_value=D(15000)),
        MARKET,
        {"last_price": D("1500.10")},
        "max_order_value",
        id="order-value-market-over-last-price",
    ),
    pytest.param(
        RiskLimits(max_position_quantity_per_instrument=100),
        {},
        {"net_quantity": 90},
        None,
        id="position-quantity-long-at",
    ),
    pytest.param(
        RiskLimits(max_position_quantity_per_instrument=100),
        {},
        {"net_quantity": 91},
        "max_position_quantity_per_instrument",
        id="position-quantity-long-over",
    ),
    pytest.param(
        RiskLimits(max_position_quantity_per_instrument=100),
        {"side": SELL},
        {"net_quantity": -90},
        None,
        id="position-quantity-short-at",
    ),
    pytest.param(
        RiskLimits(max_position_quantity_per_instrument=100),
        {"side": SELL},
        {"net_quantity": -91},
        "max_position_quantity_per_instrument",
        id="position-quantity-short-over",
    ),
    pytest.param(
        RiskLimits(max_position_value_per_account=D(100000)),
        {},
        {"gross_position_value": D(85000)},
        None,
        id="position-value-at",
    ),
    pytest.param(
        RiskLimits(max_position_value_per_account=D(100000)),
        {},
        {"gross_position_value": D("85000.01")},
        "max_position_value_per_account",
        id="position-value-over",
    ),
    pytest.param(RiskLimits(price_band_percent=D(10)), {"price": D("1650.00")}, {}, None, id="band-upper-at"),
    pytest.param(
        RiskLimits(price_band_percent=D(10)), {"price": D("1650.10")}, {}, "price_band_percent", id="band-upper-over"
    ),
    pytest.param(RiskLimits(price_band_percent=D(10)), {"price": D("1350.00")}, {}, None, id="band-lower-at"),
    pytest.param(
        RiskLimits(price_band_percent=D(10)), {"price": D("1349.90")}, {}, "price_band_percent", id="band-lower-over"
    ),
    pytest.param(
        RiskLimits(price_band_percent=D(10)),
        {"order_type": OrderType.SL_M, "price": None, "trigger_price": D("1650.00")},
        {},
        None,
        id="band-trigger-at",
    ),
    pytest.param(
        RiskLimits(price_band_percent=D(10)),
        {"order_type": OrderType.SL_M, "price": None, "trigger_price": D("1650.10")},
        {},
        "price_band_percent",
        id="band-trigger-over",
    ),
    pytest.param(RiskLimits(price_band_percent=D(10)), MARKET, {"last_price": None}, None, id="band-market-no-price"),
    pytest.param(
        RiskLimits(max_daily_loss=D(5000)), {}, {"pnl_today": D("-4999.99")}, None, id="daily-loss-short-of-limit"
    ),
    pytest.param(
        RiskLimits(max_daily_loss=D(5000)), {}, {"pnl_today": D(-5000)}, "max_daily_loss", id="daily-loss-reached"
    ),
    pytest.param(RiskLimits(max_orders_per_day=20), {}, {"orders_today": 19}, None, id="orders-per-day-at"),
    pytest.param(
        RiskLimits(max_orders_per_day=20), {}, {"orders_today": 20}, "max_orders_per_day", id="orders-per-day-over"
    ),
    pytest.param(RiskLimits(allowed_products=[Product.CNC, Product.MIS]), {}, {}, None, id="product-allowed"),
    pytest.param(
        RiskLimits(allowed_products=[Product.CNC, Product.MIS]),
        {"product": Product.NRML},
        {},
        "allowed_products",
        id="product-not-allowed",
    ),
    pytest.param(
        RiskLimits(allow_short_selling=False), {"side": SELL}, {"net_quantity": 10}, None, id="no-shorts-sell-to-flat"
    ),
    pytest.param(
        RiskLimits(allow_short_selling=False),
        {"side": SELL, "quantity": 11},
        {"net_quantity": 10},
        "allow_short_selling",
        id="no-shorts-sell-past-flat",
    ),
    pytest.param(
        RiskLimits(allow_short_selling=False),
        {"side": SELL, "product": Product.NRML},
        {"net_quantity": -5},
        "allow_short_selling",
        id="no-shorts-add-to-short",
    ),
    pytest.param(RiskLimits(allow_short_selling=True), {"side": SELL}, {}, None, id="shorts-allowed"),
    pytest.param(
        RiskLimits(),
        {"side": SELL, "product": Product.CNC},
        {"net_quantity": 10, "holdings_quantity": 10},
        None,
        id="cnc-sell-covered",
    ),
    pytest.param(
        RiskLimits(allow_short_selling=True),
        {"side": SELL, "product": Product.CNC},
        {"net_quantity": 10, "holdings_quantity": 9},
        "delivery_holdings",
        id="cnc-sell-uncovered-even-with-shorts-allowed",
    ),
    pytest.param(RiskLimits(), {"price": D("1500.10")}, {}, None, id="price-on-tick"),
    pytest.param(RiskLimits(), {"price": D("1500.05")}, {}, "tick_size", id="price-off-tick"),
    pytest.param(
        RiskLimits(),
        {"order_type": OrderType.SL, "trigger_price": D("1499.95")},
        {},
        "tick_size",
        id="trigger-off-tick",
    ),
    pytest.param(RiskLimits(), {"price": D("0.10")}, {}, None, id="price-one-tick"),
    pytest.param(RiskLimits(), {"price": D(0)}, {}, "price", id="price-zero"),
    pytest.param(
        RiskLimits(),
        {"order_type": OrderType.SL_M, "price": None, "trigger_price": D(0)},
        {},
        "price",
        id="trigger-zero",
    ),
    pytest.param(RiskLimits(), {"quantity": 1}, {}, None, id="quantity-one"),
    pytest.param(RiskLimits(), {"quantity": 0}, {}, "quantity", id="quantity-zero"),
]


@pytest.mark.parametrize(("limits", "order", "context", "rule"), RULE_CASES)
def test_each_rule_at_and_past_its_limit(
    limits: RiskLimits, order: dict[str, Any], context: dict[str, Any], rule: str | None
) -> None:
    if rule is None:
        check(limits, order, context)
    else:
        refused_by(rule, limits, order, context)


@pytest.mark.parametrize(("quantity", "rule"), [(65, None), (130, None), (66, "lot_size"), (64, "lot_size")], ids=str)
def test_quantity_is_a_whole_number_of_lots(quantity: int, rule: str | None) -> None:
    order = {"quantity": quantity, "product": Product.NRML, "price": D("26000.00")}
    context = {"last_price": D("26000.00")}
    if rule is None:
        check(RiskLimits(), order, context, instrument=NIFTY)
    else:
        refused_by(rule, RiskLimits(), order, context, instrument=NIFTY)


def test_message_names_the_rule_and_the_amounts_in_rupees() -> None:
    error = refused_by("max_order_value", RiskLimits(max_order_value=D(100000)), {"quantity": 100})
    assert str(error) == "risk max_order_value: order value ₹1,50,000.00 exceeds the limit ₹1,00,000.00"


@pytest.mark.parametrize(
    "limits",
    [
        RiskLimits(max_order_value=D(10**9)),
        RiskLimits(max_position_value_per_account=D(10**9)),
    ],
    ids=["order-value", "position-value"],
)
def test_value_rules_refuse_when_nothing_prices_the_order(limits: RiskLimits) -> None:
    rule = next(iter(limits.model_fields_set))
    error = refused_by(rule, limits, MARKET, {"last_price": None})
    assert "no last price" in str(error)


def test_price_band_refuses_a_priced_order_without_a_last_price() -> None:
    refused_by("price_band_percent", RiskLimits(price_band_percent=D(10)), {}, {"last_price": None})


EVERY_EXPOSURE_LIMIT = RiskLimits(
    max_daily_loss=D(5000),
    max_position_quantity_per_instrument=100,
    max_position_value_per_account=D(100000),
)
BREACHED = {"pnl_today": D(-9000), "gross_position_value": D(300000)}


@pytest.mark.parametrize(
    ("net", "side", "quantity"),
    [(200, SELL, 50), (200, SELL, 200), (-200, Side.BUY, 1), (-200, Side.BUY, 200)],
    ids=["cut-long", "close-long", "cut-short", "close-short"],
)
def test_reducing_orders_pass_breached_loss_and_position_limits(net: int, side: Side, quantity: int) -> None:
    check(EVERY_EXPOSURE_LIMIT, {"side": side, "quantity": quantity}, {**BREACHED, "net_quantity": net})


@pytest.mark.parametrize(
    ("net", "side", "quantity"),
    [(200, Side.BUY, 1), (200, SELL, 201), (-200, Side.SELL, 1), (-200, Side.BUY, 201), (0, Side.BUY, 1)],
    ids=["add-long", "flip-long-to-short", "add-short", "flip-short-to-long", "open"],
)
def test_orders_adding_exposure_are_refused_once_the_loss_limit_is_reached(net: int, side: Side, quantity: int) -> None:
    refused_by(
        "max_daily_loss", EVERY_EXPOSURE_LIMIT, {"side": side, "quantity": quantity}, {**BREACHED, "net_quantity": net}
    )


def test_reducing_orders_still_count_against_the_daily_order_cap() -> None:
    limits = RiskLimits(max_orders_per_day=20)
    refused_by("max_orders_per_day", limits, {"side": SELL}, {"net_quantity": 100, "orders_today": 20})


@pytest.mark.parametrize(
    ("now", "closed"),
    [
        (datetime(2026, 11, 23, 10, 0, tzinfo=IST), False),
        (datetime(2026, 11, 23, 16, 0, tzinfo=IST), True),
        (datetime(2026, 11, 24, 10, 0, tzinfo=IST), True),  # an NSE holiday (Guru Nanak Jayanti)
        (datetime(2026, 11, 22, 10, 0, tzinfo=IST), True),  # a Sunday
    ],
    ids=["weekday-10:00", "weekday-16:00", "holiday-10:00", "sunday-10:00"],
)
def test_sessions_rule(now: datetime, closed: bool) -> None:
    limits = RiskLimits(enforce_sessions=True)
    if closed:
        error = refused_by("enforce_sessions", limits, now=now)
        assert "NSE is closed" in str(error)
    else:
        check(limits, now=now)
    check(RiskLimits(enforce_sessions=False), now=now)


@pytest.mark.parametrize(
    ("at", "closed"),
    [(time(9, 14, 59), True), (time(9, 15), False), (time(15, 29, 59), False), (time(15, 30), True)],
    ids=str,
)
def test_sessions_rule_at_the_opening_and_closing_bells(at: time, closed: bool) -> None:
    now = datetime.combine(TRADING_MORNING.date(), at, tzinfo=IST)
    if closed:
        refused_by("enforce_sessions", RiskLimits(enforce_sessions=True), now=now)
    else:
        check(RiskLimits(enforce_sessions=True), now=now)


def test_sessions_rule_rejects_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check(RiskLimits(enforce_sessions=True), now=datetime(2026, 11, 23, 10, 0))


def test_the_order_and_instrument_must_match() -> None:
    with pytest.raises(ValueError, match="NFO:NIFTY26NOVFUT"):
        check_order(BASE_ORDER, NIFTY, FLAT, RiskLimits(), SESSIONS, TRADING_MORNING)


def test_later_layers_override_only_the_fields_they_set() -> None:
    global_ = RiskLimits(max_order_quantity=100, max_order_value=D(1000000), max_daily_loss=D(50000))
    groups = [RiskLimits(max_order_quantity=50, enforce_sessions=True), RiskLimits(), RiskLimits(price_band_percent=5)]
    account = RiskLimits(max_order_quantity=10)

    limits = effective_limits(global_, groups, account)

    assert limits == RiskLimits(
        max_order_quantity=10,
        max_order_value=D(1000000),
        max_daily_loss=D(50000),
        enforce_sessions=True,
        price_band_percent=D(5),
    )
    assert limits.model_fields_set == {
        "max_order_quantity",
        "max_order_value",
        "max_daily_loss",
        "enforce_sessions",
        "price_band_percent",
    }


def test_an_explicit_null_lifts_an_inherited_limit() -> None:
    account = RiskLimits.model_validate({"max_daily_loss": None})
    assert effective_limits(RiskLimits(max_daily_loss=D(5000)), [], account).max_daily_loss is None
    assert effective_limits(RiskLimits(max_daily_loss=D(5000)), [], RiskLimits()).max_daily_loss == D(5000)


def test_groups_apply_in_order_and_the_account_is_optional() -> None:
    groups = [RiskLimits(max_orders_per_day=10), RiskLimits(max_orders_per_day=5)]
    assert effective_limits(RiskLimits(max_orders_per_day=100), groups).max_orders_per_day == 5
    assert effective_limits(RiskLimits()) == RiskLimits()


@pytest.mark.parametrize(
    "settings",
    [
        {"max_order_quantity": 0},
        {"max_order_value": "-1"},
        {"price_band_percent": 0},
        {"max_daily_loss": 0},
        {"max_orders_per_day": -1},
        {"allowed_products": ["CNC", "MTF"]},
        {"max_order_qty": 10},
    ],
    ids=str,
)
def test_bad_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RiskLimits.model_validate(settings)


def test_violation_is_a_failed_precondition_that_survives_pickling() -> None:
    error = RiskViolation("max_order_quantity", "order quantity 11 exceeds the limit 10")
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, FailedPrecondition)
    assert (copy.rule, copy.problem, str(copy)) == (error.rule, error.problem, str(error))


def test_risk_imports_no_io_frameworks() -> None:
    code = "import sys, engine.risk; print(sorted({'ray', 'grpc', 'asyncpg', 'httpx'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
