"""The pre-trade rules: each passes, or raises a RiskViolation naming its limit and the numbers that broke it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from engine.domain import Exchange, Instrument, OrderRequest, Product, Side
from engine.risk.context import RiskContext
from engine.risk.limits import RiskLimits
from engine.risk.violation import RiskViolation


class SessionCalendar(Protocol):
    """What the session rule needs; engine.domain.sessions.TradingSessions is the real one."""

    def closed_reason(self, exchange: Exchange, at: datetime) -> str | None: ...


def _rupees(amount: Decimal) -> str:
    """Indian digit grouping (₹1,50,000.00), the way traders here read amounts."""
    whole, _, paise = f"{abs(amount):.2f}".partition(".")
    if len(whole) > 3:
        head, tail = whole[:-3], whole[-3:]
        pairs = [head[max(end - 2, 0) : end] for end in range(len(head), 0, -2)]
        whole = ",".join([*reversed(pairs), tail])
    return f"{'-' if amount < 0 else ''}₹{whole}.{paise}"


@dataclass(frozen=True, slots=True)
class _Check:
    """One order with everything the rules look at, and the derived figures several rules share."""

    order: OrderRequest
    instrument: Instrument
    context: RiskContext
    limits: RiskLimits
    sessions: SessionCalendar
    now: datetime

    @property
    def net_after(self) -> int:
        return self.context.net_quantity + self.order.side.sign * self.order.quantity

    @property
    def reduces_exposure(self) -> bool:
        """Moves the net position toward zero without crossing it; a flip opens exposure on the other side."""
        net = self.context.net_quantity
        return net * self.order.side.sign < 0 and self.order.quantity <= abs(net)

    @property
    def limit_price(self) -> Decimal | None:
        return self.order.price if self.order.order_type.needs_price else None

    @property
    def prices(self) -> tuple[tuple[str, Decimal], ...]:
        """The order's prices by name; a stray price on an order type that takes none is not a price it trades at."""
        trigger = self.order.trigger_price if self.order.order_type.needs_trigger else None
        named = (("price", self.limit_price), ("trigger price", trigger))
        return tuple((name, price) for name, price in named if price is not None)

    def reference_price(self, rule: str) -> Decimal:
        """The limit price, else the last price; with neither, refuse rather than let a value rule pass unchecked."""
        price = self.limit_price if self.limit_price is not None else self.context.last_price
        if price is None:
            raise RiskViolation(
                rule,
                f"cannot value the {self.order.order_type} order: it has no limit price "
                f"and no last price is known for {self.order.instrument}",
            )
        return price


def _quantity(check: _Check) -> None:
    if check.order.quantity <= 0:
        raise RiskViolation("quantity", f"quantity {check.order.quantity} must be positive")


def _lot_size(check: _Check) -> None:
    lot = check.instrument.lot_size
    if check.order.quantity % lot:
        raise RiskViolation(
            "lot_size",
            f"quantity {check.order.quantity} is not a multiple of the lot size {lot} of {check.order.instrument}",
        )


def _price(check: _Check) -> None:
    for name, price in check.prices:
        if price <= 0:
            raise RiskViolation("price", f"{name} {price} must be positive")


def _tick_size(check: _Check) -> None:
    tick = check.instrument.tick_size
    for name, price in check.prices:
        if not check.instrument.on_tick(price):
            raise RiskViolation(
                "tick_size", f"{name} {price} is not a multiple of the tick size {tick} of {check.order.instrument}"
            )


def _allowed_products(check: _Check) -> None:
    allowed = check.limits.allowed_products
    if allowed is not None and check.order.product not in allowed:
        listed = ", ".join(sorted(allowed)) or "none"
        raise RiskViolation("allowed_products", f"product {check.order.product} is not allowed (allowed: {listed})")


def _enforce_sessions(check: _Check) -> None:
    if not check.limits.enforce_sessions:
        return
    if check.now.tzinfo is None:
        raise ValueError("now must be timezone-aware: a naive time would be read in the host's zone, not IST")
    reason = check.sessions.closed_reason(check.order.instrument.exchange, check.now)
    if reason is not None:
        raise RiskViolation("enforce_sessions", reason)


def _max_orders_per_day(check: _Check) -> None:
    """A hard cap, even for exposure-reducing orders: unfilled orders leave the position as it is, so a
    runaway strategy's "reducing" orders could otherwise repeat without end."""
    limit = check.limits.max_orders_per_day
    if limit is not None and check.context.orders_today >= limit:
        raise RiskViolation(
            "max_orders_per_day", f"{check.context.orders_today} orders already placed today; the limit is {limit}"
        )


def _max_order_quantity(check: _Check) -> None:
    limit = check.limits.max_order_quantity
    if limit is not None and check.order.quantity > limit:
        raise RiskViolation("max_order_quantity", f"order quantity {check.order.quantity} exceeds the limit {limit}")


def _price_band_percent(check: _Check) -> None:
    band = check.limits.price_band_percent
    if band is None:
        return
    last = check.context.last_price
    for name, price in check.prices:
        if last is None or last <= 0:
            raise RiskViolation(
                "price_band_percent",
                f"no last price for {check.order.instrument} to check the {name} {price} against the ±{band}% band",
            )
        if abs(price - last) * 100 > band * last:
            off = abs(price - last) * 100 / last
            raise RiskViolation(
                "price_band_percent",
                f"{name} {_rupees(price)} is {off:.2f}% from the last price {_rupees(last)}; the band is ±{band}%",
            )


def _max_order_value(check: _Check) -> None:
    limit = check.limits.max_order_value
    if limit is None:
        return
    value = check.order.quantity * check.reference_price("max_order_value")
    if value > limit:
        raise RiskViolation("max_order_value", f"order value {_rupees(value)} exceeds the limit {_rupees(limit)}")


def _delivery_holdings(check: _Check) -> None:
    """Whatever the limits say: a delivery sell without the shares fails settlement, an auction at a penalty."""
    order = check.order
    if order.side is Side.SELL and order.product is Product.CNC and order.quantity > check.context.holdings_quantity:
        raise RiskViolation(
            "delivery_holdings",
            f"a CNC sell of {order.quantity} needs as many shares in holdings; "
            f"{check.context.holdings_quantity} can be sold",
        )


def _allow_short_selling(check: _Check) -> None:
    order = check.order
    if (
        check.limits.allow_short_selling is False
        and order.side is Side.SELL
        and order.product is not Product.CNC
        and check.net_after < 0
    ):
        raise RiskViolation(
            "allow_short_selling",
            f"selling {order.quantity} would leave a net position of {check.net_after} in {order.instrument}; "
            "short selling is not allowed",
        )


def _max_daily_loss(check: _Check) -> None:
    """Stops new exposure, never an exit: a trader must always be able to get out of a losing position."""
    limit = check.limits.max_daily_loss
    if limit is not None and not check.reduces_exposure and check.context.pnl_today <= -limit:
        raise RiskViolation(
            "max_daily_loss",
            f"today's PnL {_rupees(check.context.pnl_today)} has reached the loss limit {_rupees(limit)}; "
            "only orders that reduce a position are accepted",
        )


def _max_position_quantity(check: _Check) -> None:
    """Exposure-reducing orders pass, so a position already over a lowered limit can still be cut."""
    limit = check.limits.max_position_quantity_per_instrument
    if limit is not None and not check.reduces_exposure and abs(check.net_after) > limit:
        raise RiskViolation(
            "max_position_quantity_per_instrument",
            f"net position in {check.order.instrument} would be {check.net_after} units; the limit is ±{limit}",
        )


def _max_position_value(check: _Check) -> None:
    """Exposure-reducing orders pass. The instrument's change in gross value is priced at the reference price,
    an estimate: the rest of the gross value is at whatever prices the caller used."""
    limit = check.limits.max_position_value_per_account
    if limit is None or check.reduces_exposure:
        return
    price = check.reference_price("max_position_value_per_account")
    added = (abs(check.net_after) - abs(check.context.net_quantity)) * price
    after = check.context.gross_position_value + added
    if after > limit:
        raise RiskViolation(
            "max_position_value_per_account",
            f"gross open position value would be {_rupees(after)}; the limit is {_rupees(limit)}",
        )


# Order matters only for which violation is reported first: malformed orders, then market rules, then limits.
_RULES: tuple[Callable[[_Check], None], ...] = (
    _quantity,
    _lot_size,
    _price,
    _tick_size,
    _allowed_products,
    _enforce_sessions,
    _max_orders_per_day,
    _max_order_quantity,
    _price_band_percent,
    _max_order_value,
    _delivery_holdings,
    _allow_short_selling,
    _max_daily_loss,
    _max_position_quantity,
    _max_position_value,
)


def check_order(
    order: OrderRequest,
    instrument: Instrument,
    context: RiskContext,
    limits: RiskLimits,
    sessions: SessionCalendar,
    now: datetime,
) -> None:
    """Raise RiskViolation for the first rule the order breaks; return None if it may go to the broker.

    Tick and lot size are checked again although API validation does it, because strategies create orders
    that never pass through the API.
    """
    if order.instrument != instrument.id:
        raise ValueError(f"the order is for {order.instrument} but the instrument given is {instrument.id}")
    check = _Check(order, instrument, context, limits, sessions, now)
    for rule in _RULES:
        rule(check)
