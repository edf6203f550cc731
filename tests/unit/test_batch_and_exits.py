"""Batch sizing (quantity × multiplier, rounded down to lots) and exit orders derived from a snapshot."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.api import validation
from engine.brokers.base import BrokerPosition, Holding
from engine.domain import InstrumentId, Product, Side
from engine.domain.accounts import AccountSnapshot, AccountStatus
from engine.domain.exits import ID_SUFFIX_LENGTH, ExitOrder, exit_client_id, exit_orders
from engine.domain.ids import SHORT_CODE_LENGTH
from engine.routing.batch import LegSize, batch_client_id, explicit_sizes, scaled_quantity, scaled_sizes

INFY = InstrumentId.parse("NSE:INFY")
SBIN = InstrumentId.parse("NSE:SBIN")
NIFTY = InstrumentId.parse("NFO:NIFTY26NOVFUT")
D = Decimal


@pytest.mark.parametrize(
    ("base", "multiplier", "lot", "expected"),
    [
        (10, D(1), 1, 10),
        (10, D("1.5"), 1, 15),
        (7, D("0.5"), 1, 3),  # 3.5 rounds down
        (130, D("1.5"), 65, 195),  # 3 lots
        (65, D("1.5"), 65, 65),  # 1.5 lots -> 1
        (65, D("0.5"), 65, 0),  # half a lot -> nothing
        (10, D(0), 1, 0),
    ],
)
def test_scaled_quantity_rounds_down_to_whole_lots(base: int, multiplier: Decimal, lot: int, expected: int) -> None:
    assert scaled_quantity(base, multiplier, lot) == expected


def test_scaled_sizes_skip_a_share_under_one_lot_and_say_why() -> None:
    sizes = scaled_sizes(["a", "b", "c"], 65, {"a": D(2), "b": D("0.5"), "c": D("1.2")}, 65)
    assert sizes[0] == LegSize("a", 130) and sizes[2] == LegSize("c", 65)
    assert sizes[1].quantity == 0 and "under one lot of 65" in sizes[1].skipped and "0.5" in sizes[1].skipped


def test_explicit_sizes_keep_the_given_order_and_skip_zero() -> None:
    sizes = explicit_sizes(["b", "a"], {"a": 5, "b": 0})
    assert [s.account for s in sizes] == ["b", "a"]
    assert sizes[0].quantity == 0 and sizes[0].skipped and sizes[1] == LegSize("a", 5)


def _snap(positions: list[tuple[InstrumentId, Product, int]], holdings: dict[InstrumentId, int] | None = None):
    return AccountSnapshot(
        "acc",
        "paper",
        AccountStatus.ACTIVE,
        positions=tuple(BrokerPosition(i, p, q, D(100), D(100)) for i, p, q in positions),
        holdings=tuple(Holding(i, q, D(90), D(100)) for i, q in (holdings or {}).items()),
    )


def test_positions_close_on_the_opposite_side_in_their_product() -> None:
    snap = _snap([(INFY, Product.MIS, 10), (NIFTY, Product.NRML, -65), (SBIN, Product.MIS, 0)])
    assert exit_orders(snap) == [
        ExitOrder(NIFTY, Product.NRML, Side.BUY, 65),
        ExitOrder(INFY, Product.MIS, Side.SELL, 10),
    ]


def test_filters_by_instrument_and_product() -> None:
    snap = _snap([(INFY, Product.MIS, 10), (INFY, Product.CNC, 4), (SBIN, Product.MIS, -3)])
    assert exit_orders(snap, instrument=INFY, product=Product.MIS) == [ExitOrder(INFY, Product.MIS, Side.SELL, 10)]
    assert exit_orders(snap, instrument=SBIN) == [ExitOrder(SBIN, Product.MIS, Side.BUY, 3)]


def test_holdings_are_sold_only_when_asked_and_never_beyond_deliverable() -> None:
    snap = _snap([(INFY, Product.CNC, 5)], holdings={INFY: 20, SBIN: 7})
    assert exit_orders(snap) == [ExitOrder(INFY, Product.CNC, Side.SELL, 5)]  # today's delivery buy only
    assert exit_orders(snap, include_holdings=True) == [
        ExitOrder(INFY, Product.CNC, Side.SELL, 25),
        ExitOrder(SBIN, Product.CNC, Side.SELL, 7),
    ]
    assert exit_orders(snap, product=Product.MIS, include_holdings=True) == []


def test_a_negative_cnc_position_is_a_sale_out_of_holdings_not_a_short() -> None:
    """Kite keeps sold holdings in the holding until settlement and shows the sale as a negative CNC position."""
    snap = _snap([(INFY, Product.CNC, -8)], holdings={INFY: 20})
    assert exit_orders(snap) == []
    assert exit_orders(snap, include_holdings=True) == [ExitOrder(INFY, Product.CNC, Side.SELL, 12)]


def test_the_exit_key_is_stable_and_tells_instrument_and_product_apart() -> None:
    keys = {ExitOrder(i, p, Side.SELL, 1).key for i in (INFY, SBIN, NIFTY) for p in Product}
    assert len(keys) == 9
    assert ExitOrder(INFY, Product.MIS, Side.SELL, 1).key == ExitOrder(INFY, Product.MIS, Side.BUY, 7).key
    assert all(len(k) == SHORT_CODE_LENGTH and k.isalnum() for k in keys)


DOTTED = "zerodha.main"  # account ids may hold '.', client ids may not
LONGEST = "a" * 40


def test_batch_and_exit_ids_carry_an_account_code_valid_for_any_account_id() -> None:
    order = ExitOrder(INFY, Product.MIS, Side.SELL, 1)
    for account in (DOTTED, LONGEST, "b01"):
        validation.client_id("client_order_id", batch_client_id("x" * 55, account))
        validation.client_id("client_order_id", exit_client_id("x" * (64 - ID_SUFFIX_LENGTH), account, order))
    assert batch_client_id("b1", DOTTED) == batch_client_id("b1", DOTTED)  # a retry finds the first attempt's legs
    assert exit_client_id("x1", DOTTED, order) == exit_client_id("x1", DOTTED, order)
    assert len({batch_client_id("b1", a) for a in (DOTTED, LONGEST, "b01", "zerodha-main")}) == 4
    assert DOTTED not in batch_client_id("b1", DOTTED)
