"""The order state machine: every allowed move, the impossible ones, and fill arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from engine.domain import Fill, IllegalTransition, InstrumentId, Order, OrderStatus, OrderType, Product, Side
from engine.domain.ids import new_order_id

S = OrderStatus
T0 = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)

ALLOWED = {
    (S.NEW, S.SUBMITTED), (S.NEW, S.REJECTED), (S.NEW, S.CANCELLED),
    (S.SUBMITTED, S.OPEN), (S.SUBMITTED, S.PARTIALLY_FILLED), (S.SUBMITTED, S.FILLED),
    (S.SUBMITTED, S.CANCELLED), (S.SUBMITTED, S.REJECTED),
    (S.OPEN, S.PARTIALLY_FILLED), (S.OPEN, S.PENDING_CANCEL), (S.OPEN, S.PENDING_MODIFY),
    (S.OPEN, S.FILLED), (S.OPEN, S.CANCELLED), (S.OPEN, S.REJECTED),
    (S.PARTIALLY_FILLED, S.PENDING_CANCEL), (S.PARTIALLY_FILLED, S.PENDING_MODIFY),
    (S.PARTIALLY_FILLED, S.FILLED), (S.PARTIALLY_FILLED, S.CANCELLED),
    (S.PENDING_CANCEL, S.OPEN), (S.PENDING_CANCEL, S.PARTIALLY_FILLED), (S.PENDING_CANCEL, S.FILLED),
    (S.PENDING_CANCEL, S.CANCELLED), (S.PENDING_CANCEL, S.REJECTED),
    (S.PENDING_MODIFY, S.OPEN), (S.PENDING_MODIFY, S.PARTIALLY_FILLED), (S.PENDING_MODIFY, S.PENDING_CANCEL),
    (S.PENDING_MODIFY, S.FILLED), (S.PENDING_MODIFY, S.CANCELLED), (S.PENDING_MODIFY, S.REJECTED),
}  # fmt: skip


def order(status: OrderStatus = S.OPEN, quantity: int = 10) -> Order:
    return Order(
        order_id="O1", client_order_id="c1", account="a", instrument=InstrumentId.parse("NSE:INFY"),
        side=Side.BUY, quantity=quantity, product=Product.MIS, order_type=OrderType.MARKET,
        status=status, created_at=T0, updated_at=T0,
    )  # fmt: skip


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("new", list(S))
def test_transition_table(current: OrderStatus, new: OrderStatus) -> None:
    if current == new or (current, new) in ALLOWED:
        moved = order(current).moved_to(new, T0 + timedelta(seconds=1))
        assert moved.status is new and moved.updated_at > T0
    else:
        with pytest.raises(IllegalTransition, match=f"from {current} to {new}"):
            order(current).moved_to(new, T0)


@pytest.mark.parametrize("terminal", [S.FILLED, S.CANCELLED, S.REJECTED])
def test_terminal_states_are_final(terminal: OrderStatus) -> None:
    done = order(terminal)
    assert done.is_terminal
    for other in set(S) - {terminal}:
        with pytest.raises(IllegalTransition):
            done.moved_to(other, T0)


def test_fills_accumulate_a_volume_weighted_average() -> None:
    def fill(trade: str, qty: int, price: str) -> Fill:
        return Fill("a", trade, "O1", InstrumentId.parse("NSE:INFY"), Side.BUY, Product.MIS, qty, Decimal(price),
                    T0 + timedelta(seconds=5))  # fmt: skip

    o = order().with_fill(fill("t1", 4, "100")).with_fill(fill("t2", 6, "110"))
    assert o.filled_quantity == 10 and o.pending_quantity == 0
    assert o.average_price == Decimal("106.0000")
    assert o.updated_at == T0 + timedelta(seconds=5)


def test_order_ids_fit_a_broker_tag_and_sort_by_time() -> None:
    ids = [new_order_id() for _ in range(200)]
    assert all(len(i) == 16 and i.isalnum() and i.isupper() for i in ids)
    assert len(set(ids)) == 200
    assert ids[0][:8] <= ids[-1][:8]
