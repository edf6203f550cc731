"""Mutable book records of the simulated exchange, and their JSON form (Decimals as strings).

Kept apart from the exchange logic so the persisted shape is visible in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.brokers.base import BrokerOrder, BrokerOrderStatus, BrokerPosition, BrokerTrade
from engine.domain import InstrumentId, OrderType, Product, Side

LIVE_STATUSES = frozenset({BrokerOrderStatus.OPEN, BrokerOrderStatus.TRIGGER_PENDING})
_AVERAGE_QUANTUM = Decimal("0.0001")
ZERO = Decimal(0)


def _opt_decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _opt_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@dataclass(slots=True)
class SimOrder:
    order_id: str
    tag: str
    instrument: InstrumentId
    side: Side
    product: Product
    order_type: OrderType
    quantity: int
    price: Decimal | None
    trigger_price: Decimal | None
    status: BrokerOrderStatus
    placed_at: datetime
    updated_at: datetime
    filled_quantity: int = 0
    filled_value: Decimal = ZERO
    triggered: bool = False
    status_message: str = ""

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled_quantity

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def is_limit(self) -> bool:
        """Whether, once triggered, the order fills only at its price or better."""
        return self.order_type in (OrderType.LIMIT, OrderType.SL)

    def to_broker(self) -> BrokerOrder:
        average = (
            (self.filled_value / self.filled_quantity).quantize(_AVERAGE_QUANTUM) if self.filled_quantity else None
        )
        return BrokerOrder(
            broker_order_id=self.order_id,
            tag=self.tag,
            instrument=self.instrument,
            side=self.side,
            product=self.product,
            order_type=self.order_type,
            quantity=self.quantity,
            filled_quantity=self.filled_quantity,
            status=self.status,
            updated_at=self.updated_at,
            price=self.price,
            trigger_price=self.trigger_price,
            average_price=average,
            status_message=self.status_message,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "tag": self.tag,
            "instrument": str(self.instrument),
            "side": self.side.value,
            "product": self.product.value,
            "order_type": self.order_type.value,
            "quantity": self.quantity,
            "price": _opt_str(self.price),
            "trigger_price": _opt_str(self.trigger_price),
            "status": self.status.value,
            "placed_at": self.placed_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "filled_quantity": self.filled_quantity,
            "filled_value": str(self.filled_value),
            "triggered": self.triggered,
            "status_message": self.status_message,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimOrder:
        return cls(
            order_id=data["order_id"],
            tag=data["tag"],
            instrument=InstrumentId.parse(data["instrument"]),
            side=Side(data["side"]),
            product=Product(data["product"]),
            order_type=OrderType(data["order_type"]),
            quantity=int(data["quantity"]),
            price=_opt_decimal(data["price"]),
            trigger_price=_opt_decimal(data["trigger_price"]),
            status=BrokerOrderStatus(data["status"]),
            placed_at=datetime.fromisoformat(data["placed_at"]),
            updated_at=datetime.fromisoformat(data["updated_at"]),
            filled_quantity=int(data["filled_quantity"]),
            filled_value=Decimal(data["filled_value"]),
            triggered=bool(data["triggered"]),
            status_message=data["status_message"],
        )


@dataclass(slots=True)
class SimPosition:
    """Net position of one (instrument, product), average-cost accounted as brokers show it."""

    instrument: InstrumentId
    product: Product
    quantity: int = 0  # signed: negative is short
    average_price: Decimal = ZERO  # of the open quantity; zero when flat
    realised: Decimal = ZERO

    def apply(self, side: Side, quantity: int, price: Decimal) -> None:
        """Fold one fill in: extend at a blended average, or close against the average and book PnL."""
        signed = side.sign * quantity
        if self.quantity == 0 or (self.quantity > 0) == (signed > 0):
            held = abs(self.quantity)
            self.average_price = (held * self.average_price + quantity * price) / (held + quantity)
            self.quantity += signed
            return
        closing = min(abs(self.quantity), quantity)
        direction = 1 if self.quantity > 0 else -1
        self.realised += closing * (price - self.average_price) * direction
        self.quantity += signed
        if self.quantity == 0:
            self.average_price = ZERO
        elif (self.quantity > 0) != (direction > 0):  # flipped: the remainder opened at this price
            self.average_price = price

    def to_broker(self, last_price: Decimal) -> BrokerPosition:
        return BrokerPosition(
            instrument=self.instrument,
            product=self.product,
            quantity=self.quantity,
            average_price=self.average_price.quantize(_AVERAGE_QUANTUM),
            last_price=last_price,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "instrument": str(self.instrument),
            "product": self.product.value,
            "quantity": self.quantity,
            "average_price": str(self.average_price),
            "realised": str(self.realised),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimPosition:
        return cls(
            instrument=InstrumentId.parse(data["instrument"]),
            product=Product(data["product"]),
            quantity=int(data["quantity"]),
            average_price=Decimal(data["average_price"]),
            realised=Decimal(data["realised"]),
        )


def trade_to_json(trade: BrokerTrade) -> dict[str, Any]:
    return {
        "trade_id": trade.trade_id,
        "order_id": trade.broker_order_id,
        "instrument": str(trade.instrument),
        "side": trade.side.value,
        "product": trade.product.value,
        "quantity": trade.quantity,
        "price": str(trade.price),
        "filled_at": trade.filled_at.isoformat(),
    }


def trade_from_json(data: dict[str, Any]) -> BrokerTrade:
    return BrokerTrade(
        trade_id=data["trade_id"],
        broker_order_id=data["order_id"],
        instrument=InstrumentId.parse(data["instrument"]),
        side=Side(data["side"]),
        product=Product(data["product"]),
        quantity=int(data["quantity"]),
        price=Decimal(data["price"]),
        filled_at=datetime.fromisoformat(data["filled_at"]),
    )
