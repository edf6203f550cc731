"""Orders, fills and the order state machine.

The state machine is explicit so that an impossible transition (say FILLED -> OPEN because a stale
broker snapshot arrived late) is caught and logged instead of silently rewriting history.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from engine.domain.instruments import InstrumentId
from engine.domain.types import OrderStatus, OrderType, Product, Side

S = OrderStatus

TERMINAL_STATUSES = frozenset({S.FILLED, S.CANCELLED, S.REJECTED})

_LIVE = {S.OPEN, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.PENDING_MODIFY}
_ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.NEW: frozenset({S.SUBMITTED, S.REJECTED, S.CANCELLED}),
    # An ack may race the first sync, which can already see fills or a cancel.
    S.SUBMITTED: frozenset({S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.REJECTED}),
    S.OPEN: frozenset(_LIVE - {S.OPEN} | TERMINAL_STATUSES),
    S.PARTIALLY_FILLED: frozenset(_LIVE - {S.PARTIALLY_FILLED, S.OPEN} | {S.FILLED, S.CANCELLED}),
    # A refused cancel or modify returns the order to where it was.
    S.PENDING_CANCEL: frozenset({S.OPEN, S.PARTIALLY_FILLED} | TERMINAL_STATUSES),
    S.PENDING_MODIFY: frozenset({S.OPEN, S.PARTIALLY_FILLED, S.PENDING_CANCEL} | TERMINAL_STATUSES),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
}


class IllegalTransition(ValueError):
    pass


def check_transition(current: OrderStatus, new: OrderStatus) -> None:
    """Raise IllegalTransition unless `current -> new` is allowed (staying put always is)."""
    if new != current and new not in _ALLOWED[current]:
        raise IllegalTransition(f"order status cannot go from {current} to {new}")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated request to place an order in one named account."""

    client_order_id: str
    account: str
    instrument: InstrumentId
    side: Side
    quantity: int
    product: Product
    order_type: OrderType
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    parent_order_id: str | None = None  # set on the legs of a routed order


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    client_order_id: str
    account: str
    instrument: InstrumentId
    side: Side
    quantity: int
    product: Product
    order_type: OrderType
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    filled_quantity: int = 0
    average_price: Decimal | None = None
    broker_order_id: str | None = None
    status_message: str = ""
    parent_order_id: str | None = None
    external: bool = False  # placed at the broker outside the daemon, adopted by reconciliation

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def pending_quantity(self) -> int:
        return self.quantity - self.filled_quantity

    def moved_to(self, status: OrderStatus, at: datetime, **changes: object) -> Order:
        """A copy in `status`, after checking the transition is legal."""
        check_transition(self.status, status)
        return replace(self, status=status, updated_at=at, **changes)

    def with_fill(self, fill: Fill) -> Order:
        """Fold one execution into filled quantity and volume-weighted average price."""
        filled = self.filled_quantity + fill.quantity
        notional = (self.average_price or Decimal(0)) * self.filled_quantity + fill.price * fill.quantity
        return replace(
            self,
            filled_quantity=filled,
            average_price=(notional / filled).quantize(Decimal("0.0001")),
            updated_at=max(self.updated_at, fill.filled_at),
        )


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution; (account, trade_id) is its identity, so replays are no-ops."""

    account: str
    trade_id: str
    order_id: str
    instrument: InstrumentId
    side: Side
    product: Product
    quantity: int
    price: Decimal
    filled_at: datetime


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One entry of the durable, gap-free event log: an order's new state, or a fill."""

    sequence: int
    at: datetime
    account: str
    order: Order | None = None
    fill: Fill | None = None
