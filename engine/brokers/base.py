"""The one small interface every broker adapter implements, and the outcomes it may raise.

Adapters translate a broker's wire dialect into these types. Anything that goes wrong is raised as
one of the few BrokerError subclasses below, because the caller's reaction depends only on which:
a Rejected order is final, an Unavailable one never reached the broker and may go elsewhere, and an
Ambiguous one may have reached it and must be reconciled by tag, never re-sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from engine.brokers.pacing import Window
from engine.domain import InstrumentId, OrderType, Product, Side


class BrokerError(Exception):
    """Base of the outcomes an adapter call may end in besides success."""


class Rejected(BrokerError):
    """The broker refused the request; final for this request."""


class RateLimited(BrokerError):
    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthExpired(BrokerError):
    """The session token is no longer valid; the account needs a login."""


class Ambiguous(BrokerError):
    """The request may have reached the broker (timeout, dropped connection, 5xx after send)."""


class Unavailable(BrokerError):
    """The request certainly did not reach the broker (connection refused, circuit open)."""


class BrokerOrderStatus(StrEnum):
    """The broker-side lifecycle, reduced to what the daemon's state machine needs."""

    PENDING = "PENDING"  # transient: accepted, not yet at the exchange
    OPEN = "OPEN"
    TRIGGER_PENDING = "TRIGGER_PENDING"
    COMPLETE = "COMPLETE"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


# NSE's OMS vocabulary, which Kite (upper case) and Upstox (lower case) both pass through.
_OMS_STATUSES: dict[str, BrokerOrderStatus] = {
    "OPEN": BrokerOrderStatus.OPEN,
    "TRIGGER PENDING": BrokerOrderStatus.TRIGGER_PENDING,
    "COMPLETE": BrokerOrderStatus.COMPLETE,
    "CANCELLED": BrokerOrderStatus.CANCELLED,
    "CANCELLED AMO": BrokerOrderStatus.CANCELLED,
    "REJECTED": BrokerOrderStatus.REJECTED,
    # still working while a change is being validated
    "MODIFY VALIDATION PENDING": BrokerOrderStatus.OPEN,
    "MODIFY PENDING": BrokerOrderStatus.OPEN,
    "CANCEL PENDING": BrokerOrderStatus.OPEN,
}


def oms_status(text: str) -> BrokerOrderStatus:
    """The status behind an OMS status word; the not-yet-at-exchange ones (PUT ORDER REQ RECEIVED,
    VALIDATION PENDING, OPEN PENDING, AMO REQ RECEIVED) and any unknown word are PENDING."""
    return _OMS_STATUSES.get(text.strip().upper(), BrokerOrderStatus.PENDING)


@dataclass(frozen=True, slots=True)
class PlaceRequest:
    tag: str  # the daemon's order id, at most 20 alphanumerics: the key for reconciliation
    instrument: InstrumentId
    side: Side
    quantity: int
    product: Product
    order_type: OrderType
    price: Decimal | None = None
    trigger_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ModifyRequest:
    quantity: int | None = None
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    order_type: OrderType | None = None


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    broker_order_id: str
    tag: str
    instrument: InstrumentId
    side: Side
    product: Product
    order_type: OrderType
    quantity: int
    filled_quantity: int
    status: BrokerOrderStatus
    updated_at: datetime
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    average_price: Decimal | None = None
    status_message: str = ""


@dataclass(frozen=True, slots=True)
class BrokerTrade:
    trade_id: str
    broker_order_id: str
    instrument: InstrumentId
    side: Side
    product: Product
    quantity: int
    price: Decimal
    filled_at: datetime


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    instrument: InstrumentId
    product: Product
    quantity: int  # signed: negative is short
    average_price: Decimal
    last_price: Decimal


@dataclass(frozen=True, slots=True)
class Holding:
    instrument: InstrumentId
    quantity: int
    average_price: Decimal
    last_price: Decimal


@dataclass(frozen=True, slots=True)
class Funds:
    available: Decimal  # cash that new orders may use
    used_margin: Decimal
    total: Decimal  # opening balance plus realised PnL


@dataclass(frozen=True, slots=True)
class Quote:
    instrument: InstrumentId
    last_price: Decimal
    bid: Decimal
    ask: Decimal
    at: datetime
    broker: str = ""  # whose quote endpoint answered, set by the market-data actor


class BrokerAdapter(Protocol):
    """What the AccountActor needs from a broker. Every method may raise a BrokerError."""

    name: str
    order_limits: Sequence[Window]  # the broker's published order windows; the account's OrderGate keeps inside

    async def place(self, request: PlaceRequest) -> str:
        """Send a new order; return the broker's order id."""
        ...

    async def modify(self, broker_order_id: str, change: ModifyRequest) -> None: ...

    async def cancel(self, broker_order_id: str) -> None: ...

    async def orders(self) -> list[BrokerOrder]:
        """Today's order book, one record per order in its latest state."""
        ...

    async def trades(self) -> list[BrokerTrade]: ...

    async def positions(self) -> list[BrokerPosition]: ...

    async def holdings(self) -> list[Holding]: ...

    async def funds(self) -> Funds: ...

    async def quotes(self, instruments: list[InstrumentId]) -> dict[InstrumentId, Quote]: ...

    async def close(self) -> None:
        """Release connections; the adapter is not used afterwards."""
        ...
