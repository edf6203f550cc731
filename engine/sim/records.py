"""Mutable book records of the simulated exchange, and their JSON form (Decimals as strings).

Kept apart from the exchange logic so the persisted shape is visible in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from engine.brokers.base import BrokerOrder, BrokerOrderStatus, BrokerPosition, BrokerTrade
from engine.domain import InstrumentId, OrderType, Product, Side

LIVE_STATUSES = frozenset({BrokerOrderStatus.OPEN, BrokerOrderStatus.TRIGGER_PENDING})
EXCHANGE_ORDER_ID_BASE = 1_100_000_000_000_000
_AVERAGE_QUANTUM = Decimal("0.0001")
ZERO = Decimal(0)


def _opt_decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _opt_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class Stage(StrEnum):
    """Every status an order passes through at an Indian broker's OMS, spelled as Kite spells them.

    The transient ones exist only in an order's history: the simulator validates synchronously, so
    the latest state a read returns is always a settled one.
    """

    PUT_ORDER_REQ_RECEIVED = "PUT ORDER REQ RECEIVED"
    VALIDATION_PENDING = "VALIDATION PENDING"
    OPEN_PENDING = "OPEN PENDING"
    OPEN = "OPEN"
    TRIGGER_PENDING = "TRIGGER PENDING"
    MODIFY_VALIDATION_PENDING = "MODIFY VALIDATION PENDING"
    MODIFY_PENDING = "MODIFY PENDING"
    CANCEL_PENDING = "CANCEL PENDING"
    COMPLETE = "COMPLETE"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


SETTLED_STAGE = {
    BrokerOrderStatus.OPEN: Stage.OPEN,
    BrokerOrderStatus.TRIGGER_PENDING: Stage.TRIGGER_PENDING,
    BrokerOrderStatus.COMPLETE: Stage.COMPLETE,
    BrokerOrderStatus.CANCELLED: Stage.CANCELLED,
    BrokerOrderStatus.REJECTED: Stage.REJECTED,
}


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    """One entry of an order's history: the order as it stood when it reached `stage`."""

    stage: Stage
    at: datetime
    quantity: int
    filled_quantity: int
    average_price: Decimal | None
    price: Decimal | None
    trigger_price: Decimal | None
    order_type: OrderType
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage.value,
            "at": self.at.isoformat(),
            "quantity": self.quantity,
            "filled_quantity": self.filled_quantity,
            "average_price": _opt_str(self.average_price),
            "price": _opt_str(self.price),
            "trigger_price": _opt_str(self.trigger_price),
            "order_type": self.order_type.value,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OrderSnapshot:
        return cls(
            stage=Stage(data["stage"]),
            at=datetime.fromisoformat(data["at"]),
            quantity=int(data["quantity"]),
            filled_quantity=int(data["filled_quantity"]),
            average_price=_opt_decimal(data["average_price"]),
            price=_opt_decimal(data["price"]),
            trigger_price=_opt_decimal(data["trigger_price"]),
            order_type=OrderType(data["order_type"]),
            message=data["message"],
        )


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
    validity: str = "DAY"  # DAY, or IOC: whatever does not fill at once is cancelled
    modifications: int = 0
    meta: dict[str, Any] = field(default_factory=dict)  # wire-front fields the core does not interpret
    history: list[OrderSnapshot] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled_quantity

    @property
    def average_price(self) -> Decimal | None:
        return (self.filled_value / self.filled_quantity).quantize(_AVERAGE_QUANTUM) if self.filled_quantity else None

    @property
    def cancelled_quantity(self) -> int:
        return self.remaining if self.status is BrokerOrderStatus.CANCELLED else 0

    @property
    def exchange_order_id(self) -> str | None:
        """The exchange's id, which exists once the order has reached the exchange."""
        if self.status is BrokerOrderStatus.REJECTED and not self.filled_quantity:
            return None
        return str(EXCHANGE_ORDER_ID_BASE + int(self.order_id))

    def record(self, stage: Stage, at: datetime, message: str = "") -> None:
        """Append the order's current state to its history under `stage`."""
        self.history.append(
            OrderSnapshot(
                stage=stage,
                at=at,
                quantity=self.quantity,
                filled_quantity=self.filled_quantity,
                average_price=self.average_price,
                price=self.price,
                trigger_price=self.trigger_price,
                order_type=self.order_type,
                message=message,
            )
        )

    def record_settled(self, at: datetime) -> None:
        self.record(SETTLED_STAGE[self.status], at, self.status_message)

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def is_limit(self) -> bool:
        """Whether, once triggered, the order fills only at its price or better."""
        return self.order_type in (OrderType.LIMIT, OrderType.SL)

    def to_broker(self) -> BrokerOrder:
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
            average_price=self.average_price,
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
            "validity": self.validity,
            "modifications": self.modifications,
            "meta": self.meta,
            "history": [h.to_json() for h in self.history],
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
            validity=data["validity"],
            modifications=int(data["modifications"]),
            meta=dict(data["meta"]),
            history=[OrderSnapshot.from_json(h) for h in data["history"]],
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
