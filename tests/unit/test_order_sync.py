"""Folding the broker's view of an order into the daemon's order."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from engine.brokers.base import BrokerOrder, BrokerOrderStatus, BrokerTrade
from engine.domain import IllegalTransition, InstrumentId, OrderStatus, OrderType, Product, Side
from engine.order_sync import apply_broker_view
from tests.unit.test_order_state import T0, order

INFY = InstrumentId.parse("NSE:INFY")
B = BrokerOrderStatus


def broker(status: BrokerOrderStatus, filled: int = 0, message: str = "") -> BrokerOrder:
    return BrokerOrder(
        broker_order_id="B1", tag="O1", instrument=INFY, side=Side.BUY, product=Product.MIS,
        order_type=OrderType.MARKET, quantity=10, filled_quantity=filled, status=status,
        updated_at=T0, status_message=message,
    )  # fmt: skip


def trade(trade_id: str, qty: int, price: str = "100") -> BrokerTrade:
    return BrokerTrade(trade_id, "B1", INFY, Side.BUY, Product.MIS, qty, Decimal(price), T0)


NOW = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)


def test_a_submitted_order_found_by_tag_takes_the_broker_id_and_status() -> None:
    updated, fills = apply_broker_view(order(OrderStatus.SUBMITTED), broker(B.OPEN), [], NOW)
    assert updated.broker_order_id == "B1" and updated.status is OrderStatus.OPEN and fills == []


def test_trades_decide_filled_quantity_and_status() -> None:
    partly, fills = apply_broker_view(order(), broker(B.OPEN, 4), [trade("t1", 4)], NOW)
    assert partly.status is OrderStatus.PARTIALLY_FILLED and partly.filled_quantity == 4
    assert [(f.trade_id, f.order_id, f.account) for f in fills] == [("t1", "O1", "a")]
    done, _ = apply_broker_view(partly, broker(B.COMPLETE, 10), [trade("t2", 6, "101")], NOW)
    assert done.status is OrderStatus.FILLED and done.average_price == Decimal("100.6000")


def test_complete_without_the_trades_yet_waits_for_them() -> None:
    updated, _ = apply_broker_view(order(), broker(B.COMPLETE, 10), [], NOW)
    assert updated.status is OrderStatus.OPEN


@pytest.mark.parametrize("pending", [OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_MODIFY])
def test_a_pending_request_is_not_undone_by_a_working_broker_status(pending: OrderStatus) -> None:
    updated, _ = apply_broker_view(order(pending), broker(B.OPEN, 2), [trade("t1", 2)], NOW)
    assert updated.status is pending and updated.filled_quantity == 2


def test_cancel_and_reject_are_final_and_keep_the_reason() -> None:
    cancelled, _ = apply_broker_view(order(OrderStatus.PENDING_CANCEL), broker(B.CANCELLED), [], NOW)
    assert cancelled.status is OrderStatus.CANCELLED
    rejected, _ = apply_broker_view(order(OrderStatus.SUBMITTED), broker(B.REJECTED, message="margin"), [], NOW)
    assert rejected.status is OrderStatus.REJECTED and rejected.status_message == "margin"


def test_an_impossible_broker_view_raises_instead_of_rewriting_history() -> None:
    with pytest.raises(IllegalTransition):
        apply_broker_view(order(OrderStatus.PARTIALLY_FILLED), broker(B.REJECTED), [], NOW)
