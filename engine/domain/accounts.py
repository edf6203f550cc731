"""What the daemon knows about one account between syncs with its broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from engine.brokers.base import BrokerPosition, Funds, Holding
from engine.domain.instruments import InstrumentId
from engine.domain.orders import Order
from engine.domain.types import Product


class AccountStatus(StrEnum):
    RECONCILING = "RECONCILING"  # started, not yet matched against its broker's books: orders wait
    ACTIVE = "ACTIVE"
    LOGIN_REQUIRED = "LOGIN_REQUIRED"
    DEGRADED = "DEGRADED"


def reconciling(account: str, last_error: str = "") -> str:
    """Why an order for a RECONCILING account is refused; the gateway and the account both say it."""
    why = f"; last attempt: {last_error}" if last_error else ""
    return (
        f"account {account} is reconciling with its broker (reading its order book, trades and positions"
        f" after a start){why}; no order was sent, try again shortly"
    )


class CircuitState(StrEnum):
    """The account's circuit breaker (engine.routing.circuit): OPEN means nothing is sent to its broker."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True, slots=True)
class DayCount:
    """Orders an account stored on one IST day. Counts reported at different moments are merged with
    `latest`, so a stale report never lowers a newer one, and a count from yesterday never counts today."""

    day: date
    count: int = 0

    def on(self, day: date) -> int:
        return self.count if day == self.day else 0

    def latest(self, other: DayCount) -> DayCount:
        if other.day != self.day:
            return other if other.day > self.day else self
        return other if other.count > self.count else self


NO_COUNT = DayCount(date.min)


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    account: str
    broker: str
    status: AccountStatus
    last_sync: datetime | None = None
    last_error: str = ""
    consecutive_errors: int = 0
    ack_latency_ms: float = 0.0
    open_orders: int = 0
    funds: Funds | None = None
    funds_at: datetime | None = None  # when funds were asked for: orders acknowledged before it are in them
    holdings: tuple[Holding, ...] = ()
    positions: tuple[BrokerPosition, ...] = ()
    marks: dict[InstrumentId, Decimal] = field(default_factory=dict)
    login_url: str = ""  # where to log in, while LOGIN_REQUIRED
    circuit: CircuitState = CircuitState.CLOSED
    error_rate: float = 0.0  # moving average of submissions that failed or were refused
    queue_depth: int = 0  # orders waiting for their pacing turn
    rate_limited: int = 0  # 429 answers received since start; pacing should keep it at 0
    pnl_today: Decimal = Decimal(0)  # today's trades marked to market (engine.ledger.day_pnl), before charges
    orders_today: DayCount = NO_COUNT  # orders placed today, counted when the snapshot was taken

    def deliverable(self, instrument: InstrumentId) -> int:
        """Shares a delivery (CNC) sell may draw on: holdings plus today's CNC position. Signed, because
        Kite keeps sold holdings in `quantity` until settlement and shows the sale as a negative CNC position;
        the simulators shrink the holding instead and never go negative, so both read right."""
        held = sum(h.quantity for h in self.holdings if h.instrument == instrument)
        cnc = (p.quantity for p in self.positions if p.instrument == instrument and p.product is Product.CNC)
        return held + sum(cnc)


@dataclass(frozen=True, slots=True)
class Submission:
    """What became of one order sent to an account."""

    order: Order
    duplicate: bool = False  # the client_order_id was seen before; nothing was sent
    unreached: bool = False  # certainly never reached the broker: the order may go to another account
    circuit: CircuitState = CircuitState.CLOSED  # the account's circuit right after
    orders_today: DayCount = NO_COUNT  # the account's count right after this submission
