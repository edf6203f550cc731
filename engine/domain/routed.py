"""A routed order: what the user asked for, carried out as legs at one or more accounts.

The parent owns no state of its own beyond the request; its status and fills are always computed
from its legs, so there is one truth and nothing to keep in step after a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from engine.domain.instruments import InstrumentId
from engine.domain.orders import Order
from engine.domain.types import OrderStatus, OrderType, Product, Side

S = OrderStatus
_WORKING = frozenset({S.OPEN, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.PENDING_MODIFY})


@dataclass(frozen=True, slots=True)
class RoutedOrder:
    order_id: str
    client_order_id: str
    instrument: InstrumentId
    side: Side
    quantity: int
    product: Product
    order_type: OrderType
    created_at: datetime
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    placed_by: str = ""
    """The user who placed it: a parent whose legs all failed has no account to tell its owner by."""


def leg_client_id(parent_client_id: str, number: int) -> str:
    """A leg's client order id; '/' never occurs in a client's own ids, so legs cannot collide with them."""
    return f"{parent_client_id}/{number}"


def _status(quantity: int, legs: Sequence[Order], filled: int) -> OrderStatus:
    if filled >= quantity:
        return S.FILLED
    live = [leg for leg in legs if not leg.is_terminal]
    if live:
        if filled:
            return S.PARTIALLY_FILLED
        return S.OPEN if any(leg.status in _WORKING for leg in live) else S.SUBMITTED
    if not legs:
        return S.SUBMITTED  # routing has not placed a leg yet
    if not filled and all(leg.status is S.REJECTED for leg in legs):
        return S.REJECTED
    return S.CANCELLED


def _message(quantity: int, legs: Sequence[Order], summary: str) -> str:
    if not legs:
        return "routing"
    text = f"{len(legs)} leg{'s' if len(legs) > 1 else ''}: {summary}"
    unplaced = quantity - sum(leg.quantity for leg in legs if leg.status is not S.REJECTED)
    if unplaced > 0:
        text += f"; {unplaced} not placed: no account could take it"
    return text


def aggregate(parent: RoutedOrder, legs: Sequence[Order]) -> Order:
    """The parent as one order: legs' fills summed, price averaged by volume, status from theirs."""
    filled = sum(leg.filled_quantity for leg in legs)
    notional = sum((leg.average_price or Decimal(0)) * leg.filled_quantity for leg in legs)
    accounts = sorted({leg.account for leg in legs})
    summary = "; ".join(
        f"{leg.account} {leg.status} {leg.filled_quantity}/{leg.quantity}"
        + (f" ({leg.status_message})" if leg.status is S.REJECTED and leg.status_message else "")
        for leg in legs
    )
    return Order(
        order_id=parent.order_id,
        client_order_id=parent.client_order_id,
        account=accounts[0] if len(accounts) == 1 else "",
        instrument=parent.instrument,
        side=parent.side,
        quantity=parent.quantity,
        product=parent.product,
        order_type=parent.order_type,
        status=_status(parent.quantity, legs, filled),
        created_at=parent.created_at,
        updated_at=max((leg.updated_at for leg in legs), default=parent.created_at),
        price=parent.price,
        trigger_price=parent.trigger_price,
        filled_quantity=filled,
        average_price=(notional / filled).quantize(Decimal("0.0001")) if filled else None,
        status_message=_message(parent.quantity, legs, summary),
    )
