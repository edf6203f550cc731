"""A routed order seen as one order: status, fills and price computed from its legs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from engine.domain import InstrumentId, Order, OrderStatus, OrderType, Product, Side
from engine.domain.routed import RoutedOrder, aggregate, leg_client_id

D = Decimal
S = OrderStatus
INFY = InstrumentId.parse("NSE:INFY")
T0 = datetime(2026, 11, 23, 4, 0, 0, tzinfo=UTC)

PARENT = RoutedOrder(
    order_id="R1",
    client_order_id="cli-1",
    instrument=INFY,
    side=Side.BUY,
    quantity=10,
    product=Product.CNC,
    order_type=OrderType.LIMIT,
    created_at=T0,
    price=D("1500.5"),
)


def leg(
    number: int,
    status: OrderStatus,
    quantity: int,
    filled: int = 0,
    price: str | None = None,
    account: str = "acct-1",
    at: float = 0,
    message: str = "",
) -> Order:
    return Order(
        order_id=f"L{number}",
        client_order_id=leg_client_id(PARENT.client_order_id, number),
        account=account,
        instrument=INFY,
        side=Side.BUY,
        quantity=quantity,
        product=Product.CNC,
        order_type=OrderType.LIMIT,
        status=status,
        created_at=T0,
        updated_at=T0 + timedelta(seconds=at),
        price=D("1500.5"),
        filled_quantity=filled,
        average_price=D(price) if price is not None else None,
        status_message=message,
        parent_order_id=PARENT.order_id,
    )


def test_leg_client_id() -> None:
    assert leg_client_id("abc", 2) == "abc/2"
    assert leg_client_id("abc", 1) != leg_client_id("abc", 11)


def test_no_legs_is_submitted_and_routing() -> None:
    order = aggregate(PARENT, [])
    assert order.status is S.SUBMITTED
    assert order.status_message == "routing"
    assert order.filled_quantity == 0
    assert order.average_price is None
    assert order.account == ""
    assert order.updated_at == T0


def test_parent_fields_are_carried_over() -> None:
    order = aggregate(PARENT, [leg(1, S.OPEN, 10)])
    assert (order.order_id, order.client_order_id) == ("R1", "cli-1")
    assert (order.instrument, order.side, order.quantity) == (INFY, Side.BUY, 10)
    assert (order.product, order.order_type) == (Product.CNC, OrderType.LIMIT)
    assert (order.price, order.trigger_price) == (D("1500.5"), None)
    assert order.created_at == T0
    assert order.parent_order_id is None


# (legs, status, filled, average price)
CASES = {
    "all filled": (
        [leg(1, S.FILLED, 4, 4, "100"), leg(2, S.FILLED, 6, 6, "101")],
        S.FILLED,
        10,
        D("100.6000"),
    ),
    "rejected then replaced and filled": (
        [leg(1, S.REJECTED, 10, message="unreachable"), leg(2, S.FILLED, 10, 10, "99.5")],
        S.FILLED,
        10,
        D("99.5000"),
    ),
    "partly cancelled leg topped up by another": (
        [leg(1, S.CANCELLED, 10, 7, "100"), leg(2, S.FILLED, 3, 3, "102")],
        S.FILLED,
        10,
        D("100.6000"),
    ),
    "some filled, some open": (
        [leg(1, S.FILLED, 4, 4, "100"), leg(2, S.OPEN, 6)],
        S.PARTIALLY_FILLED,
        4,
        D("100.0000"),
    ),
    "some filled, some submitted": (
        [leg(1, S.FILLED, 4, 4, "100"), leg(2, S.SUBMITTED, 6)],
        S.PARTIALLY_FILLED,
        4,
        D("100.0000"),
    ),
    "none filled, one open": (
        [leg(1, S.SUBMITTED, 4), leg(2, S.OPEN, 6)],
        S.OPEN,
        0,
        None,
    ),
    "none filled, one pending cancel": (
        [leg(1, S.SUBMITTED, 4), leg(2, S.PENDING_CANCEL, 6)],
        S.OPEN,
        0,
        None,
    ),
    "only submitted": (
        [leg(1, S.SUBMITTED, 4), leg(2, S.SUBMITTED, 6)],
        S.SUBMITTED,
        0,
        None,
    ),
    "submitted after a rejection": (
        [leg(1, S.REJECTED, 10, message="no funds"), leg(2, S.SUBMITTED, 10)],
        S.SUBMITTED,
        0,
        None,
    ),
    "all rejected": (
        [leg(1, S.REJECTED, 4, message="no funds"), leg(2, S.REJECTED, 6, message="unreachable")],
        S.REJECTED,
        0,
        None,
    ),
    "some filled, rest cancelled": (
        [leg(1, S.FILLED, 4, 4, "100"), leg(2, S.CANCELLED, 6, 1, "103")],
        S.CANCELLED,
        5,
        D("100.6000"),
    ),
    "rejected and cancelled, nothing filled": (
        [leg(1, S.REJECTED, 4), leg(2, S.CANCELLED, 6)],
        S.CANCELLED,
        0,
        None,
    ),
}


@pytest.mark.parametrize(("legs", "status", "filled", "average"), CASES.values(), ids=CASES.keys())
def test_status_fills_and_price(legs: list[Order], status: OrderStatus, filled: int, average: Decimal | None) -> None:
    order = aggregate(PARENT, legs)
    assert order.status is status
    assert order.filled_quantity == filled
    assert order.average_price == average
    if average is not None:
        assert order.average_price.as_tuple().exponent == -4


def test_average_price_is_volume_weighted_and_quantized() -> None:
    legs = [leg(1, S.FILLED, 1, 1, "10"), leg(2, S.FILLED, 2, 2, "11"), leg(3, S.FILLED, 7, 7, "10.05")]
    order = aggregate(PARENT, legs)
    # (10 + 22 + 70.35) / 10 = 10.235
    assert order.average_price == D("10.2350")
    assert str(order.average_price) == "10.2350"

    single = aggregate(PARENT, [leg(1, S.FILLED, 3, 3, "10"), leg(2, S.OPEN, 7, 0)])
    assert str(single.average_price) == "10.0000"

    thirds = aggregate(PARENT, [leg(1, S.FILLED, 1, 1, "10"), leg(2, S.FILLED, 2, 2, "11"), leg(3, S.OPEN, 7)])
    assert str(thirds.average_price) == "10.6667"  # 32 / 3


def test_account_is_the_single_account_or_empty() -> None:
    same = aggregate(PARENT, [leg(1, S.FILLED, 4, 4, "100"), leg(2, S.OPEN, 6)])
    assert same.account == "acct-1"
    mixed = aggregate(PARENT, [leg(1, S.FILLED, 4, 4, "100"), leg(2, S.OPEN, 6, account="acct-2")])
    assert mixed.account == ""


def test_updated_at_is_the_latest_legs() -> None:
    legs = [leg(1, S.FILLED, 4, 4, "100", at=30), leg(2, S.OPEN, 6, at=90), leg(3, S.SUBMITTED, 1, at=5)]
    assert aggregate(PARENT, legs).updated_at == T0 + timedelta(seconds=90)


def test_status_message_lists_each_leg_with_rejection_reasons() -> None:
    legs = [
        leg(1, S.REJECTED, 10, account="acct-1", message="broker unreachable"),
        leg(2, S.PARTIALLY_FILLED, 6, 2, "100", account="acct-2", message="ignored"),
        leg(3, S.OPEN, 4, account="acct-3"),
    ]
    message = aggregate(PARENT, legs).status_message
    assert message == (
        "3 legs: acct-1 REJECTED 0/10 (broker unreachable); acct-2 PARTIALLY_FILLED 2/6; acct-3 OPEN 0/4"
    )


def test_status_message_for_rejection_without_reason() -> None:
    message = aggregate(PARENT, [leg(1, S.REJECTED, 10)]).status_message
    assert message == "1 leg: acct-1 REJECTED 0/10; 10 not placed: no account could take it"


def test_status_message_says_how_much_no_account_took() -> None:
    legs = [leg(1, S.FILLED, 6, 6, "100"), leg(2, S.REJECTED, 4, account="acct-2", message="not sent: down")]
    view = aggregate(PARENT, legs)
    assert view.status is S.CANCELLED and view.filled_quantity == 6
    assert view.status_message.endswith("; 4 not placed: no account could take it")
