"""What routing knows about one account for one order: how much of it the account can take, and how well.

Capacity is in units and a multiple of the lot. A delivery (CNC) sell needs the shares: holdings plus
today's CNC buys, less what in-flight sells already claim. Anything else needs margin for the part of
the order that opens exposure; the part that closes an opposite position of the same product is free,
and intraday (MIS) and F&O sells may open a short.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from engine.domain import InstrumentId, Product, Side
from engine.domain.accounts import AccountSnapshot, AccountStatus, CircuitState
from engine.domain.margin import margin_per_unit


@dataclass(frozen=True, slots=True)
class OrderShape:
    """The order being routed, with the price that values it (limit price, else the last price)."""

    instrument: InstrumentId
    side: Side
    product: Product
    quantity: int
    lot_size: int
    price: Decimal
    freeze_quantity: int = 0


@dataclass(frozen=True, slots=True)
class Reserved:
    """What orders sent since the account's last sync already claim: funds, and shares for CNC sells."""

    funds: Decimal = Decimal(0)
    shares: int = 0


@dataclass(frozen=True, slots=True)
class Candidate:
    account: str
    broker: str
    capacity: int
    excluded: str = ""  # why the account cannot take any of this order; empty when it can
    free_funds: Decimal = Decimal(0)
    ack_latency_ms: float = 0.0  # 0: not measured yet
    error_rate: float = 0.0  # recent share of submissions that failed or were refused
    circuit: CircuitState = CircuitState.CLOSED
    preference: float = 1.0


def _position(snapshot: AccountSnapshot, instrument: InstrumentId, product: Product) -> int:
    return sum(p.quantity for p in snapshot.positions if p.instrument == instrument and p.product is product)


def capacity(snapshot: AccountSnapshot, order: OrderShape, reserved: Reserved) -> tuple[int, str]:
    """Units of `order` the account can take now, and why none when it is 0."""
    lot = order.lot_size
    if order.product is Product.CNC and order.side is Side.SELL:
        shares = snapshot.deliverable(order.instrument) - reserved.shares
        units = max(0, shares) // lot * lot
        return units, "" if units else f"holds no {order.instrument} to sell for delivery (CNC)"
    net = _position(snapshot, order.instrument, order.product)
    closable = max(0, -net) if order.side is Side.BUY else max(0, net)
    free = (snapshot.funds.available if snapshot.funds else Decimal(0)) - reserved.funds
    per_unit = margin_per_unit(order.product, order.price)
    opening = int(max(Decimal(0), free) // per_unit) if per_unit > 0 else order.quantity
    units = (closable + opening) // lot * lot
    return units, "" if units else f"free funds ₹{max(Decimal(0), free):.2f} cover not even one lot"


def candidate(snapshot: AccountSnapshot, order: OrderShape, reserved: Reserved, preference: float) -> Candidate:
    """The candidate an account's latest snapshot makes, excluded with a reason when it cannot be used."""
    base = Candidate(
        account=snapshot.account,
        broker=snapshot.broker,
        capacity=0,
        free_funds=(snapshot.funds.available if snapshot.funds else Decimal(0)) - reserved.funds,
        ack_latency_ms=snapshot.ack_latency_ms,
        error_rate=snapshot.error_rate,
        circuit=snapshot.circuit,
        preference=preference,
    )
    if snapshot.status is AccountStatus.LOGIN_REQUIRED:
        return replace(base, excluded="needs a broker login")
    if snapshot.status is AccountStatus.RECONCILING:
        return replace(base, excluded="reconciling with its broker")
    if snapshot.funds is None:
        return replace(base, excluded="not synced with its broker yet")
    if snapshot.circuit is CircuitState.OPEN:
        return replace(base, excluded=f"circuit open after repeated broker failures ({snapshot.last_error})")
    units, why = capacity(snapshot, order, reserved)
    return replace(base, capacity=units, excluded=why)
