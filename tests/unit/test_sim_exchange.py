"""Instrument master, deterministic prices and the simulated exchange, all under a fake clock."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.brokers.base import BrokerOrder, BrokerOrderStatus, ModifyRequest, PlaceRequest, Rejected
from engine.domain import Exchange, InstrumentId, OrderType, Product, Side
from engine.domain.margin import MARGIN_RATES
from engine.domain.sessions import TradingSessions
from engine.instrument_master import InstrumentMaster
from engine.sim.exchange import MAX_CATCH_UP_SECONDS, RejectKind, SimExchange, SimRejected
from engine.sim.prices import PricePath
from tests.unit.conftest import T0, FakeClock

D = Decimal
INFY = InstrumentId.parse("NSE:INFY")
SBIN = InstrumentId.parse("NSE:SBIN")
NIFTY = InstrumentId.parse("NFO:NIFTY26NOVFUT")
BANKNIFTY = InstrumentId.parse("NFO:BANKNIFTY26NOVFUT")
ST = BrokerOrderStatus
Make = Callable[..., SimExchange]


@pytest.fixture
def make(master: InstrumentMaster, prices: PricePath, clock: FakeClock) -> Make:
    def build(**kwargs: Any) -> SimExchange:
        kwargs.setdefault("opening_cash", D("1000000"))
        return SimExchange(master, prices, clock=clock, **kwargs)

    return build


def req(
    side: Side = Side.BUY,
    quantity: int = 10,
    *,
    instrument: InstrumentId = INFY,
    product: Product = Product.MIS,
    order_type: OrderType = OrderType.MARKET,
    price: str | None = None,
    trigger: str | None = None,
    tag: str = "t1",
) -> PlaceRequest:
    return PlaceRequest(
        tag=tag,
        instrument=instrument,
        side=side,
        quantity=quantity,
        product=product,
        order_type=order_type,
        price=None if price is None else D(price),
        trigger_price=None if trigger is None else D(trigger),
    )


def order_of(exchange: SimExchange, order_id: str) -> BrokerOrder:
    return next(o for o in exchange.orders() if o.broker_order_id == order_id)


# ---- instrument master ------------------------------------------------------------------------

KITE_HEADER = (
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,"
    "tick_size,lot_size,instrument_type,segment,exchange"
)
KITE_CSV = f"""{KITE_HEADER}
408065,1594,INFY,INFOSYS,1562.4,,0.0,0.1,1,EQ,NSE,NSE
13355010,52168,NIFTY26NOVFUT,NIFTY,26412.3,2026-11-24,0.0,0.1,65,FUT,NFO-FUT,NFO
12073986,47164,BANKNIFTY18JAN23500CE,,2528.4,2018-01-25,23500.0,0.05,30,CE,NFO-OPT,NFO
256265,1001,NIFTY 50,NIFTY 50,26000.0,,0.0,0.0,0,,INDICES,NSE
1,2,FOO,FOO,1.0,,0.0,0.05,1,EQ,XYZ,XYZ
"""


def test_master_parses_kite_csv_and_skips_untradeable_rows() -> None:
    master = InstrumentMaster.from_kite_csv(KITE_CSV)
    assert len(master) == 3
    infy = master.get(INFY)
    assert infy is not None
    assert (infy.tick_size, infy.lot_size, infy.last_price) == (D("0.1"), 1, D("1562.4"))
    assert infy.instrument_token == 408065 and infy.name == "INFOSYS" and infy.freeze_quantity == 0
    nifty = master.get(NIFTY)
    assert nifty is not None and nifty.lot_size == 65 and nifty.freeze_quantity == 1800
    option = master.get(InstrumentId.parse("NFO:BANKNIFTY18JAN23500CE"))
    assert option is not None and option.freeze_quantity == 600  # underlying read from the symbol
    assert INFY in master and SBIN not in master and "NSE:INFY" not in master
    assert master.get(SBIN) is None
    assert {i.id for i in master} == {INFY, NIFTY, option.id}


def test_master_requires_kite_columns() -> None:
    with pytest.raises(ValueError, match="tick_size"):
        InstrumentMaster.from_kite_csv("tradingsymbol,exchange\nINFY,NSE\n")


def test_default_master_contents(master: InstrumentMaster) -> None:
    equities = [i for i in master if i.id.exchange is Exchange.NSE]
    assert len(equities) >= 25
    assert {"INFY", "TCS", "RELIANCE", "HDFCBANK", "ICICIBANK", "SBIN", "ITC", "LT"} <= {i.id.symbol for i in equities}
    assert any(i.id.exchange is Exchange.BSE for i in master)
    for inst in master:
        assert inst.on_tick(inst.last_price) and inst.last_price > 0
        if inst.id.exchange in (Exchange.NSE, Exchange.BSE):
            assert inst.lot_size == 1
            assert inst.tick_size == (D("0.05") if inst.last_price < 1000 else D("0.1"))
    nifty, banknifty = master.get(NIFTY), master.get(BANKNIFTY)
    assert nifty is not None and (nifty.lot_size, nifty.freeze_quantity, nifty.tick_size) == (65, 1800, D("0.1"))
    assert banknifty is not None and (banknifty.lot_size, banknifty.freeze_quantity) == (30, 600)
    assert len({i.instrument_token for i in master}) == len(master)


# ---- prices -----------------------------------------------------------------------------------


def test_price_path_is_deterministic_and_on_tick(master: InstrumentMaster) -> None:
    infy = master.get(INFY)
    assert infy is not None
    a, b = PricePath(seed=42, volatility=0.0002), PricePath(seed=42, volatility=0.0002)
    times = [T0 + timedelta(seconds=s) for s in (0, 1, 7, 3600, 30000, 1)]
    seen_a = [a.price_at(infy, t) for t in times]
    seen_b = [b.price_at(infy, t) for t in reversed(times)][::-1]  # other order, same answers
    assert seen_a == seen_b
    assert all(infy.on_tick(p) and p > 0 for p in seen_a)
    assert len(set(seen_a)) > 1
    other = PricePath(seed=43, volatility=0.0002)
    assert [other.price_at(infy, t) for t in times] != seen_a


def test_price_path_starts_each_utc_day_at_last_price(master: InstrumentMaster) -> None:
    infy = master.get(INFY)
    assert infy is not None
    path = PricePath(seed=5, volatility=0.001)
    assert path.price_at(infy, datetime(2026, 11, 23, tzinfo=UTC)) == infy.last_price
    assert path.price_at(infy, datetime(2026, 11, 24, tzinfo=UTC)) == infy.last_price
    naive = datetime(2026, 11, 23, 5, 0)
    assert path.price_at(infy, naive) == path.price_at(infy, naive.replace(tzinfo=UTC))


def test_price_path_is_identical_in_another_process(master: InstrumentMaster) -> None:
    infy = master.get(INFY)
    assert infy is not None
    at = T0 + timedelta(seconds=1234)
    here = PricePath(seed=9, volatility=0.0003).price_at(infy, at)
    code = (
        "from datetime import datetime\n"
        "from engine.domain import InstrumentId\n"
        "from engine.instrument_master import InstrumentMaster\n"
        "from engine.sim.prices import PricePath\n"
        "inst = InstrumentMaster.default().get(InstrumentId.parse('NSE:INFY'))\n"
        f"at = datetime.fromisoformat('{at.isoformat()}')\n"
        "print(PricePath(seed=9, volatility=0.0003).price_at(inst, at))\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {"PYTHONHASHSEED": "123", "PYTHONPATH": root}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=root)
    assert D(out.stdout.strip()) == here


def test_price_path_flat_at_zero_volatility_and_pinning(master: InstrumentMaster) -> None:
    sbin = master.get(SBIN)
    assert sbin is not None
    path = PricePath(seed=3, volatility=0)
    assert {path.price_at(sbin, T0 + timedelta(hours=h)) for h in range(0, 20, 3)} == {sbin.last_price}
    path.set_price(SBIN, D("900.05"))
    assert path.price_at(sbin, T0) == D("900.05")
    path.clear_price(SBIN)
    assert path.price_at(sbin, T0) == sbin.last_price


# ---- matching ---------------------------------------------------------------------------------


def test_quote_spread(make: Make, prices: PricePath) -> None:
    quote = make(half_spread_ticks=2).quote(INFY)
    assert (quote.last_price, quote.bid, quote.ask, quote.at) == (D("1500.0"), D("1499.8"), D("1500.2"), T0)
    with pytest.raises(Rejected, match="unknown instrument"):
        make().quote(InstrumentId.parse("NSE:NOSUCH"))


def test_market_orders_fill_at_ask_and_bid(make: Make) -> None:
    ex = make()
    buy = ex.place(req(Side.BUY, 10))
    sell = ex.place(req(Side.SELL, 4))
    assert buy.isdigit() and len(buy) == 12 and buy != sell
    assert order_of(ex, buy).status is ST.COMPLETE
    assert order_of(ex, buy).average_price == D("1500.1")
    assert order_of(ex, sell).average_price == D("1499.9")
    trades = ex.trades()
    assert [(t.broker_order_id, t.side, t.quantity, t.price) for t in trades] == [
        (buy, Side.BUY, 10, D("1500.1")),
        (sell, Side.SELL, 4, D("1499.9")),
    ]
    assert len({t.trade_id for t in trades}) == 2 and trades[0].filled_at == T0
    [position] = ex.positions()
    assert (position.quantity, position.average_price, position.last_price) == (6, D("1500.1"), D("1500.0"))


def test_limit_order_rests_until_marketable(make: Make, prices: PricePath, clock: FakeClock) -> None:
    ex = make()
    buy = ex.place(req(Side.BUY, 10, order_type=OrderType.LIMIT, price="1480.0"))
    sell = ex.place(req(Side.SELL, 5, order_type=OrderType.LIMIT, price="1530.0"))
    clock.tick(30)
    assert [o.status for o in ex.orders()] == [ST.OPEN, ST.OPEN]
    prices.set_price(INFY, D("1479.5"))  # ask 1479.6 <= 1480: the buy fills at the ask, not its limit
    clock.tick()
    assert order_of(ex, buy).status is ST.COMPLETE
    assert order_of(ex, buy).average_price == D("1479.6")
    assert order_of(ex, sell).status is ST.OPEN
    prices.set_price(INFY, D("1530.1"))  # bid 1530.0 >= 1530
    clock.tick()
    assert order_of(ex, sell).status is ST.COMPLETE
    assert ex.trades()[-1].price == D("1530.0")


def test_repricing_within_the_same_second_is_seen(make: Make, prices: PricePath) -> None:
    ex = make()
    buy = ex.place(req(Side.BUY, 10, order_type=OrderType.LIMIT, price="1480.0"))
    prices.set_price(INFY, D("1470.0"))
    assert order_of(ex, buy).status is ST.COMPLETE


def test_stop_loss_orders_trigger_then_fill(make: Make, prices: PricePath, clock: FakeClock) -> None:
    ex = make()
    sl_buy = ex.place(req(Side.BUY, 10, order_type=OrderType.SL, price="1521.0", trigger="1520.0"))
    slm_sell = ex.place(req(Side.SELL, 5, order_type=OrderType.SL_M, trigger="1450.0"))
    clock.tick()
    assert [o.status for o in ex.orders()] == [ST.TRIGGER_PENDING, ST.TRIGGER_PENDING]
    prices.set_price(INFY, D("1520.0"))  # last >= trigger; ask 1520.1 <= limit 1521
    clock.tick()
    assert order_of(ex, sl_buy).status is ST.COMPLETE
    assert order_of(ex, sl_buy).average_price == D("1520.1")
    prices.set_price(INFY, D("1449.0"))
    clock.tick()
    order = order_of(ex, slm_sell)
    assert order.status is ST.COMPLETE and order.average_price == D("1448.9") and order.price is None


def test_triggered_stop_loss_limit_waits_for_its_price(make: Make, prices: PricePath, clock: FakeClock) -> None:
    ex = make()
    sl = ex.place(req(Side.BUY, 10, order_type=OrderType.SL, price="1510.0", trigger="1505.0"))
    prices.set_price(INFY, D("1512.0"))  # triggers, but ask 1512.1 > limit 1510
    clock.tick()
    assert order_of(ex, sl).status is ST.OPEN and order_of(ex, sl).filled_quantity == 0
    prices.set_price(INFY, D("1508.0"))  # below the trigger again: stays triggered, now marketable
    clock.tick()
    assert order_of(ex, sl).status is ST.COMPLETE


def test_partial_fills_follow_depth_per_second(make: Make, clock: FakeClock) -> None:
    ex = make(depth_per_second=100)
    oid = ex.place(req(Side.BUY, 250))
    order = order_of(ex, oid)
    assert (order.status, order.filled_quantity) == (ST.OPEN, 100)
    other = ex.place(req(Side.BUY, 10, tag="t2"))  # this second's depth is used up
    assert order_of(ex, other).filled_quantity == 0
    sell = ex.place(req(Side.SELL, 10, tag="t3"))  # the other side has its own depth
    assert order_of(ex, sell).status is ST.COMPLETE
    clock.tick()
    assert order_of(ex, oid).filled_quantity == 200
    assert order_of(ex, other).filled_quantity == 0  # time priority: the older order first
    clock.tick(5)
    assert order_of(ex, oid).status is ST.COMPLETE and order_of(ex, oid).filled_quantity == 250
    assert order_of(ex, other).status is ST.COMPLETE
    fills = [t for t in ex.trades() if t.broker_order_id == oid]
    assert [t.quantity for t in fills] == [100, 100, 50]
    assert [t.filled_at for t in fills] == [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]


def test_partial_fills_of_futures_come_in_whole_lots(make: Make, clock: FakeClock) -> None:
    ex = make(depth_per_second=100, opening_cash=D("100000000"))
    oid = ex.place(req(Side.BUY, 195, instrument=NIFTY, product=Product.NRML))
    assert order_of(ex, oid).filled_quantity == 65
    clock.tick(2)
    assert order_of(ex, oid).filled_quantity == 195


def test_catch_up_is_capped_then_jumps_to_now(make: Make, clock: FakeClock) -> None:
    ex = make(depth_per_second=1, opening_cash=D("100000000"))
    oid = ex.place(req(Side.BUY, 5000))
    clock.tick(3 * 3600)
    assert order_of(ex, oid).filled_quantity == 1 + MAX_CATCH_UP_SECONDS + 1
    clock.tick(10)
    assert order_of(ex, oid).filled_quantity == 1 + MAX_CATCH_UP_SECONDS + 1 + 10


def test_random_walk_exchange_is_reproducible(master: InstrumentMaster) -> None:
    def run() -> list[tuple[str, int, Decimal]]:
        clock = FakeClock()
        ex = SimExchange(master, PricePath(seed=11, volatility=0.0005), opening_cash=D("10000000"), clock=clock)
        ex.place(req(Side.BUY, 10, order_type=OrderType.LIMIT, price="1555.0"))
        ex.place(req(Side.SELL, 10, order_type=OrderType.LIMIT, price="1570.0"))
        clock.tick(600)
        return [(t.broker_order_id, t.quantity, t.price) for t in ex.trades()]

    assert run() == run()


# ---- rejections -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        (req(instrument=InstrumentId.parse("NSE:NOSUCH")), "unknown instrument NSE:NOSUCH"),
        (req(quantity=0), "quantity must be positive"),
        (req(quantity=-5), "quantity must be positive"),
        (req(quantity=10, instrument=NIFTY, product=Product.NRML), "not a multiple of the lot size 65"),
        (req(quantity=1820, instrument=NIFTY, product=Product.NRML), "exceeds the freeze quantity 1800"),
        (req(quantity=630, instrument=BANKNIFTY, product=Product.NRML), "exceeds the freeze quantity 600"),
        (req(order_type=OrderType.LIMIT, price="1500.03"), "price 1500.03 is off tick"),
        (req(order_type=OrderType.LIMIT, price="0"), "price must be positive"),
        (req(order_type=OrderType.LIMIT, price="-10.0"), "price must be positive"),
        (req(order_type=OrderType.SL, price="1500.0", trigger="1499.95"), "trigger price 1499.95 is off tick"),
        (req(order_type=OrderType.LIMIT), "LIMIT order needs a price"),
        (req(order_type=OrderType.SL, trigger="1500.0"), "SL order needs a price"),
        (req(order_type=OrderType.SL_M), "SL-M order needs a trigger price"),
        (req(order_type=OrderType.SL, price="1500.0"), "SL order needs a trigger price"),
        (req(order_type=OrderType.SL, price="1500.0", trigger="1501.0"), "above the limit price"),
        (req(instrument=NIFTY, quantity=65, product=Product.CNC), "product CNC"),
        (req(product=Product.NRML), "product NRML"),
        (req(quantity=700, product=Product.CNC), "insufficient funds"),
        (req(quantity=3400, product=Product.MIS), "insufficient funds"),
        (req(Side.SELL, 1, product=Product.CNC), "insufficient holdings"),
    ],
)
def test_rejections_name_the_problem_and_are_recorded(make: Make, request_: PlaceRequest, needle: str) -> None:
    ex = make(opening_cash=D("1000000"))
    with pytest.raises(Rejected, match=needle.replace("(", r"\(")) as info:
        ex.place(request_)
    [order] = ex.orders()
    assert order.status is ST.REJECTED and order.status_message == str(info.value)
    assert order.quantity == request_.quantity and order.filled_quantity == 0
    assert ex.trades() == [] and ex.funds().used_margin == 0


def test_funds_are_checked_against_what_is_left(make: Make) -> None:
    ex = make(opening_cash=D("200000"))
    ex.place(req(Side.BUY, 100, product=Product.CNC))  # 150010.00 of cash
    with pytest.raises(Rejected, match=r"needs margin 60004\.00, available 49990\.00"):
        ex.place(req(Side.BUY, 40, product=Product.CNC))
    ex.place(req(Side.BUY, 33, product=Product.CNC))
    assert ex.funds().available == D("49990.00") - D("49503.30")


# ---- margin and funds -------------------------------------------------------------------------


def test_cnc_margin_is_full_value(make: Make) -> None:
    assert {Product.CNC: D("1.0"), Product.MIS: D("0.2"), Product.NRML: D("0.2")} == MARGIN_RATES
    ex = make()
    ex.place(req(Side.BUY, 100, product=Product.CNC))
    funds = ex.funds()
    assert (funds.used_margin, funds.available, funds.total) == (D("150010.00"), D("849990.00"), D("1000000"))
    ex.place(req(Side.BUY, 10, product=Product.CNC, order_type=OrderType.LIMIT, price="1400.0"))
    assert ex.funds().used_margin == D("150010.00") + D("14000.00")
    ex.place(req(Side.SELL, 50, product=Product.CNC, order_type=OrderType.LIMIT, price="1600.0"))
    assert ex.funds().used_margin == D("164010.00")  # a CNC sell is covered by shares, not cash


def test_mis_margin_counts_only_exposure_increasing_quantity(make: Make, prices: PricePath, clock: FakeClock) -> None:
    ex = make()
    ex.place(req(Side.BUY, 100))
    assert ex.funds().used_margin == D("30002.00")  # 0.2 * 100 * 1500.1
    ex.place(req(Side.SELL, 60, order_type=OrderType.LIMIT, price="1600.0"))  # closes part of the long
    assert ex.funds().used_margin == D("30002.00")
    ex.place(req(Side.SELL, 60, order_type=OrderType.LIMIT, price="1600.0"))  # 40 close, 20 open short
    assert ex.funds().used_margin == D("30002.00") + D("6400.00")
    ex.place(req(Side.SELL, 10))  # fills at once at the bid: the long is now 90
    prices.set_price(INFY, D("1600.1"))  # bid 1600.0 reaches both resting sells
    clock.tick()
    funds = ex.funds()
    [position] = ex.positions()
    assert position.quantity == -30 and position.average_price == D("1600.0")
    # realised: 10 * (1499.9 - 1500.1) + 90 * (1600.0 - 1500.1)
    assert funds.total == D("1000000") - D("2.0") + 90 * D("99.9")
    assert funds.used_margin == D("0.2") * 30 * D("1600.0")
    assert funds.available == funds.total - funds.used_margin


def test_exposure_reducing_sell_needs_no_margin(make: Make, prices: PricePath) -> None:
    ex = make(opening_cash=D("31000"))
    ex.place(req(Side.BUY, 100))  # uses 30002.00 of 31000
    prices.set_price(INFY, D("1400.0"))  # a loss; still the close must go through
    assert ex.funds().available == D("998.00")
    oid = ex.place(req(Side.SELL, 100))
    assert order_of(ex, oid).status is ST.COMPLETE
    funds = ex.funds()
    assert funds.used_margin == 0
    assert funds.total == D("31000") + 100 * (D("1399.9") - D("1500.1"))
    with pytest.raises(Rejected, match="insufficient funds"):
        ex.place(req(Side.SELL, 100))  # a fresh short is exposure-increasing


def test_short_covering_buy_needs_no_margin(make: Make, prices: PricePath) -> None:
    ex = make(opening_cash=D("30000"))
    ex.place(req(Side.SELL, 100))  # 0.2 * 100 * 1499.9 = 29998.00
    prices.set_price(INFY, D("1600.0"))
    ex.place(req(Side.BUY, 100))
    assert ex.positions()[0].quantity == 0
    assert ex.funds().total == D("30000") + 100 * (D("1499.9") - D("1600.1"))


# ---- holdings ---------------------------------------------------------------------------------


def test_cnc_sell_draws_on_holdings(make: Make) -> None:
    ex = make(holdings={INFY: (50, D("1400"))})
    [holding] = ex.holdings()
    assert (holding.quantity, holding.average_price, holding.last_price) == (50, D("1400"), D("1500.0"))
    ex.place(req(Side.SELL, 30, product=Product.CNC))
    [holding] = ex.holdings()
    assert holding.quantity == 20
    funds = ex.funds()
    assert funds.used_margin == 0
    assert funds.total == D("1000000") + 30 * D("1499.9")  # the whole sale value is credited
    with pytest.raises(Rejected, match="only 20 available"):
        ex.place(req(Side.SELL, 21, product=Product.CNC))
    ex.place(req(Side.SELL, 15, product=Product.CNC, order_type=OrderType.LIMIT, price="1700.0"))
    with pytest.raises(Rejected, match="insufficient holdings"):  # 15 are already pending
        ex.place(req(Side.SELL, 6, product=Product.CNC))
    ex.place(req(Side.SELL, 5, product=Product.CNC))
    assert ex.holdings()[0].quantity == 15


def test_cnc_sell_uses_todays_buys_before_holdings(make: Make) -> None:
    ex = make(holdings={INFY: (5, D("1000"))})
    ex.place(req(Side.BUY, 10, product=Product.CNC))
    assert ex.holdings()[0].quantity == 5  # today's buy is a position, not yet a holding
    ex.place(req(Side.SELL, 12, product=Product.CNC))
    assert ex.holdings()[0].quantity == 3
    [position] = ex.positions()
    assert (position.product, position.quantity) == (Product.CNC, 0)
    funds = ex.funds()
    assert funds.used_margin == 0
    # 10 round trip at -0.2 each, 2 holdings sold at 1499.9 over cost 1000
    assert funds.total == D("1000000") - D("2.0") + 2 * D("1499.9")
    with pytest.raises(Rejected, match="only 3 available"):
        ex.place(req(Side.SELL, 4, product=Product.CNC))


def test_holdings_must_be_known_instruments(make: Make) -> None:
    with pytest.raises(ValueError, match="NSE:NOSUCH"):
        make(holdings={InstrumentId.parse("NSE:NOSUCH"): (1, D("1"))})


# ---- cancel and modify ------------------------------------------------------------------------


def test_cancel_partially_filled_order(make: Make, clock: FakeClock) -> None:
    ex = make(depth_per_second=100)
    oid = ex.place(req(Side.BUY, 250))
    assert ex.funds().used_margin == D("0.2") * 250 * D("1500.1")
    ex.cancel(oid)
    order = order_of(ex, oid)
    assert (order.status, order.filled_quantity, order.average_price) == (ST.CANCELLED, 100, D("1500.1"))
    clock.tick(5)
    assert order_of(ex, oid).filled_quantity == 100
    assert ex.funds().used_margin == D("0.2") * 100 * D("1500.1")  # the rest's margin is released
    with pytest.raises(Rejected, match="already CANCELLED"):
        ex.cancel(oid)
    with pytest.raises(Rejected, match="unknown order id 999"):
        ex.cancel("999")


def test_cancel_of_filled_order_is_rejected(make: Make) -> None:
    ex = make()
    oid = ex.place(req(Side.BUY, 1))
    with pytest.raises(Rejected, match="already COMPLETE"):
        ex.cancel(oid)


def test_modify_quantity_and_price(make: Make, clock: FakeClock) -> None:
    ex = make()
    oid = ex.place(req(Side.BUY, 10, order_type=OrderType.LIMIT, price="1400.0"))
    clock.tick()
    ex.modify(oid, ModifyRequest(quantity=20, price=D("1450.0")))
    order = order_of(ex, oid)
    assert (order.quantity, order.price, order.status) == (20, D("1450.0"), ST.OPEN)
    assert order.updated_at == T0 + timedelta(seconds=1)
    assert ex.funds().used_margin == D("0.2") * 20 * D("1450.0")
    with pytest.raises(Rejected, match="off tick"):
        ex.modify(oid, ModifyRequest(price=D("1450.01")))
    with pytest.raises(Rejected, match="insufficient funds"):
        ex.modify(oid, ModifyRequest(quantity=4000))
    assert order_of(ex, oid).price == D("1450.0")  # refused changes leave the order as it was
    ex.modify(oid, ModifyRequest(price=D("1500.1")))  # now marketable: fills at once
    order = order_of(ex, oid)
    assert (order.status, order.filled_quantity, order.average_price) == (ST.COMPLETE, 20, D("1500.1"))
    with pytest.raises(Rejected, match="already COMPLETE"):
        ex.modify(oid, ModifyRequest(quantity=30))


def test_modify_partially_filled_and_order_type(make: Make, clock: FakeClock) -> None:
    ex = make(depth_per_second=100)
    oid = ex.place(req(Side.BUY, 300))
    with pytest.raises(Rejected, match="must exceed the filled quantity 100"):
        ex.modify(oid, ModifyRequest(quantity=100))
    ex.modify(oid, ModifyRequest(quantity=150))
    clock.tick()
    assert order_of(ex, oid).status is ST.COMPLETE and order_of(ex, oid).filled_quantity == 150
    limit = ex.place(req(Side.BUY, 10, order_type=OrderType.LIMIT, price="1400.0"))
    with pytest.raises(Rejected, match="SL order needs a trigger price"):
        ex.modify(limit, ModifyRequest(order_type=OrderType.SL))
    ex.modify(limit, ModifyRequest(order_type=OrderType.SL, price=D("1610.0"), trigger_price=D("1600.0")))
    assert order_of(ex, limit).status is ST.TRIGGER_PENDING
    ex.modify(limit, ModifyRequest(order_type=OrderType.SL_M))
    order = order_of(ex, limit)
    assert (order.status, order.price, order.trigger_price) == (ST.TRIGGER_PENDING, None, D("1600.0"))
    ex.modify(limit, ModifyRequest(order_type=OrderType.MARKET))
    order = order_of(ex, limit)
    assert (order.status, order.price, order.trigger_price) == (ST.COMPLETE, None, None)


# ---- persistence ------------------------------------------------------------------------------


def test_json_round_trip_mid_life(make: Make, master: InstrumentMaster, prices: PricePath, clock: FakeClock) -> None:
    ex = make(depth_per_second=100, holdings={SBIN: (10, D("800.5"))})
    partial = ex.place(req(Side.BUY, 250))
    resting = ex.place(req(Side.SELL, 5, order_type=OrderType.LIMIT, price="1600.0", tag="t2"))
    ex.place(req(Side.SELL, 4, instrument=SBIN, product=Product.CNC, tag="t3"))
    with pytest.raises(Rejected):
        ex.place(req(quantity=0))
    state = json.loads(json.dumps(ex.to_json()))
    restored = SimExchange.from_json(state, master, prices, clock=clock)
    assert restored.to_json() == state
    for read in ("orders", "trades", "positions", "holdings", "funds"):
        assert getattr(restored, read)() == getattr(ex, read)()
    clock.tick()
    assert order_of(restored, partial).filled_quantity == 200
    assert order_of(restored, resting).status is ST.OPEN
    clock.tick()
    assert order_of(restored, partial).status is ST.COMPLETE
    new_id = restored.place(req(Side.BUY, 1, tag="t4"))
    assert new_id not in {o.broker_order_id for o in ex.orders()}
    trade_ids = [t.trade_id for t in restored.trades()]
    assert len(trade_ids) == len(set(trade_ids)) == 5


def test_from_json_rejects_unknown_version(master: InstrumentMaster, prices: PricePath) -> None:
    with pytest.raises(ValueError, match="version"):
        SimExchange.from_json({"version": 99}, master, prices)


# ---- order history, reject kinds, price band, sessions, IOC ------------------------------------


def stages(exchange: SimExchange, order_id: str) -> list[str]:
    return [h.stage.value for h in exchange.order_record(order_id).history]


def test_history_records_every_stage(make: Make, prices: PricePath, clock: FakeClock) -> None:
    exchange = make()
    oid = exchange.place(req(order_type=OrderType.LIMIT, price="1490.0"))
    assert stages(exchange, oid) == ["PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING", "OPEN"]
    exchange.modify(oid, ModifyRequest(price=D("1495.0")))
    assert stages(exchange, oid)[-3:] == ["MODIFY VALIDATION PENDING", "MODIFY PENDING", "OPEN"]
    assert exchange.order_record(oid).modifications == 1
    assert exchange.order_record(oid).history[-1].price == D("1495.0")
    prices.set_price(INFY, D("1490.0"))
    clock.tick()
    exchange.orders()
    record = exchange.order_record(oid)
    assert record.history[-1].stage.value == "COMPLETE" and record.history[-1].filled_quantity == 10
    assert record.history[-1].average_price == D("1490.1")
    cancelled = exchange.place(req(order_type=OrderType.LIMIT, price="1400.0", tag="t2"))
    exchange.cancel(cancelled)
    assert stages(exchange, cancelled)[-2:] == ["CANCEL PENDING", "CANCELLED"]
    assert exchange.order_record(cancelled).cancelled_quantity == 10


def test_rejections_carry_their_kind_and_history(make: Make) -> None:
    exchange = make(opening_cash=D("1000"))
    with pytest.raises(SimRejected) as margin:
        exchange.place(req(product=Product.CNC))
    assert margin.value.kind is RejectKind.MARGIN
    with pytest.raises(SimRejected) as holding:
        exchange.place(req(Side.SELL, product=Product.CNC, tag="t2"))
    assert holding.value.kind is RejectKind.HOLDING
    with pytest.raises(SimRejected) as tick:
        exchange.place(req(order_type=OrderType.LIMIT, price="1500.05", tag="t3"))
    assert tick.value.kind is RejectKind.INPUT
    with pytest.raises(SimRejected) as unknown:
        exchange.cancel("nope")
    assert unknown.value.kind is RejectKind.ORDER
    rejected = next(o for o in exchange.order_records() if o.tag == "t1")
    assert [h.stage.value for h in rejected.history] == ["PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "REJECTED"]
    assert rejected.exchange_order_id is None


def test_price_band_accepts_its_edges_and_refuses_beyond(make: Make, master: InstrumentMaster) -> None:
    exchange = make(price_band_percent=D(10))
    close = master.get(INFY).last_price  # 1562.4: band 1406.16 - 1718.64
    assert close == D("1562.4")
    exchange.place(req(order_type=OrderType.LIMIT, price="1406.2"))
    exchange.place(req(Side.SELL, order_type=OrderType.LIMIT, price="1718.6", tag="t2"))
    with pytest.raises(SimRejected, match=r"outside the price band 1406.16-1718.64") as below:
        exchange.place(req(order_type=OrderType.LIMIT, price="1406.1", tag="t3"))
    assert below.value.kind is RejectKind.INPUT
    with pytest.raises(SimRejected, match="outside the price band"):
        exchange.place(req(order_type=OrderType.SL, price="1720.0", trigger="1719.0", tag="t4"))


def test_trading_sessions_refuse_orders_out_of_hours(make: Make, clock: FakeClock) -> None:
    exchange = make(sessions=TradingSessions())
    exchange.place(req())  # T0 is Monday 09:30 IST
    clock.now = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)  # 15:35 IST
    with pytest.raises(SimRejected, match=r"closed at 15:35 IST; the session runs 09:15-15:30") as late:
        exchange.place(req(tag="t2"))
    assert late.value.kind is RejectKind.INPUT
    clock.now = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)  # 24 Nov 2026 is an NSE holiday
    with pytest.raises(SimRejected, match="not a trading day"):
        exchange.place(req(tag="t3"))


def test_sessions_know_weekends_holidays_and_commodity_hours() -> None:
    sessions = TradingSessions()
    saturday = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
    assert "not a trading day" in (sessions.closed_reason(Exchange.NSE, saturday) or "")
    evening = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 19:30 IST
    assert sessions.closed_reason(Exchange.MCX, evening) is None
    assert sessions.closed_reason(Exchange.NSE, evening) is not None
    beyond_calendar = datetime(2031, 6, 2, 5, 0, tzinfo=UTC)  # a Monday past the calendar's end
    assert sessions.closed_reason(Exchange.NSE, beyond_calendar) is None


def test_ioc_cancels_what_does_not_fill_at_once(make: Make) -> None:
    exchange = make(depth_per_second=4)
    oid = exchange.place(req(quantity=10), validity="IOC", meta={"variety": "regular"})
    record = exchange.order_record(oid)
    assert record.status is ST.CANCELLED and record.filled_quantity == 4 and record.cancelled_quantity == 6
    assert "IOC" in record.status_message and record.meta == {"variety": "regular"}


def test_history_and_meta_survive_json(make: Make, master: InstrumentMaster, prices: PricePath) -> None:
    exchange = make(price_band_percent=D(10))
    oid = exchange.place(req(order_type=OrderType.LIMIT, price="1490.0"), meta={"guid": "g1"})
    exchange.modify(oid, ModifyRequest(quantity=12))
    data = json.loads(json.dumps(exchange.to_json()))
    restored = SimExchange.from_json(data, master, prices, clock=exchange._clock)
    assert restored.order_record(oid).history == exchange.order_record(oid).history
    assert restored.order_record(oid).meta == {"guid": "g1"} and restored.price_band_percent == D(10)
