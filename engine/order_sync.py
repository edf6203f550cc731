"""Fold the broker's view of one order (its record and new trades) into the daemon's order.

Trades are the truth for filled quantity; the broker's status decides only what trades cannot:
rejection, cancellation, and whether the order is still working. A cancel or modify the daemon is
waiting on stays pending until the broker reports something final.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from engine.brokers.base import BrokerOrder, BrokerOrderStatus, BrokerTrade
from engine.domain import Fill, Order, OrderStatus

_PENDING = {OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_MODIFY}


def fills_from(order: Order, trades: Sequence[BrokerTrade]) -> list[Fill]:
    return [
        Fill(
            account=order.account,
            trade_id=t.trade_id,
            order_id=order.order_id,
            instrument=order.instrument,
            side=order.side,
            product=order.product,
            quantity=t.quantity,
            price=t.price,
            filled_at=t.filled_at,
        )
        for t in trades
    ]


def target_status(order: Order, broker: BrokerOrder) -> OrderStatus:
    if broker.status is BrokerOrderStatus.REJECTED:
        return OrderStatus.REJECTED
    if broker.status is BrokerOrderStatus.CANCELLED:
        return OrderStatus.CANCELLED
    if order.filled_quantity >= order.quantity:
        return OrderStatus.FILLED
    if order.status in _PENDING:
        return order.status
    return OrderStatus.PARTIALLY_FILLED if order.filled_quantity else OrderStatus.OPEN


def apply_broker_view(
    order: Order, broker: BrokerOrder, trades: Sequence[BrokerTrade], now: datetime
) -> tuple[Order, list[Fill]]:
    """The order after the broker's record and these (new) trades; raises IllegalTransition."""
    fills = fills_from(order, trades)
    updated = order if order.broker_order_id else replace(order, broker_order_id=broker.broker_order_id)
    for fill in fills:
        updated = updated.with_fill(fill)
    status = target_status(updated, broker)
    if status != updated.status:
        message = broker.status_message if status is OrderStatus.REJECTED else updated.status_message
        updated = updated.moved_to(status, now, status_message=message)
    return updated, fills


def settled_status(order: Order) -> OrderStatus:
    """Where a live order returns to once a cancel or modify request is answered."""
    return OrderStatus.PARTIALLY_FILLED if order.filled_quantity else OrderStatus.OPEN
