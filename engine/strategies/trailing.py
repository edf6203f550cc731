"""Trailing a stop behind the best price, and the trailing_stop kind that protects an existing position.

A trailing stop only ever tightens: for a long position its trigger rises as the best price since
entry rises, and never falls. The level is floored onto the tick grid away from the price, so the stop
is never closer than the trail distance, and a move smaller than one tick asks for nothing.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from pydantic import BaseModel, Field

from engine.domain import OrderStatus, OrderType
from engine.strategies.base import (
    Command,
    Finish,
    Input,
    Note,
    OrderSpec,
    OrderUpdate,
    Refused,
    StrategyStatus,
    Tick,
    Watch,
)
from engine.strategies.common import EventStrategy, StrategyState, TrackedOrder, modify_to, on_tick
from engine.strategies.params import Trail, TrailingStopParams


def tightest(long: bool, a: Decimal, b: Decimal) -> Decimal:
    """The stop level closer to the price: the higher for a long position, the lower for a short."""
    return max(a, b) if long else min(a, b)


def tighter(long: bool, new: Decimal, old: Decimal, tick_size: Decimal) -> bool:
    """Whether `new` is at least one tick tighter than `old`."""
    return (new - old if long else old - new) >= tick_size


class StopTrail(BaseModel):
    """Where a stop should be: the best price seen, the level wanted, and a level the daemon refused."""

    best: Decimal | None = None
    level: Decimal | None = None
    refused: Decimal | None = None  # only levels tighter than this are asked for again

    def trail_level(self, trail: Trail, tick_size: Decimal, long: bool) -> Decimal | None:
        if self.best is None:
            return None
        distance = trail.distance(self.best)
        if long:
            return on_tick(self.best - distance, tick_size, ROUND_FLOOR)
        return on_tick(self.best + distance, tick_size, ROUND_CEILING)

    def see(self, price: Decimal, trail: Trail | None, tick_size: Decimal, long: bool) -> None:
        """Take in a price; with a trail, tighten the wanted level by whole ticks as the best price improves."""
        self.best = price if self.best is None else (max if long else min)(self.best, price)
        if trail is None or self.level is None:
            return
        candidate = self.trail_level(trail, tick_size, long)
        if candidate is None or not tighter(long, candidate, self.level, tick_size):
            return
        if self.refused is not None and not tighter(long, candidate, self.refused, tick_size):
            return
        self.level = candidate

    def refuse(self, asked: Decimal | None, standing: Decimal | None) -> None:
        """A trail move was refused: remember it, and want the stop where it actually stands."""
        self.refused = asked
        self.level = standing


class TrailingState(StrategyState):
    trail: StopTrail = Field(default_factory=StopTrail)
    stop: TrackedOrder | None = None


class TrailingStopStrategy(EventStrategy[TrailingStopParams, TrailingState]):
    """An SL-M on the closing side, placed at the first price and trailed; done when it fills.

    The position's size and direction come from `params.position` (filled in by the service at
    creation); the stop closes `params.protected_quantity` of it.
    """

    kind = "trailing_stop"
    state_type = TrailingState

    @property
    def _long(self) -> bool:
        return self.params.position > 0

    def watches(self) -> Watch:
        return Watch(instruments=frozenset({self.params.instrument}))

    def _on(self, event: Input) -> list[Command]:
        if isinstance(event, Tick):
            return self._on_tick(event)
        stop = self.state.stop
        if stop is None or event.key != stop.key:
            return []
        if isinstance(event, Refused):
            return self._on_refused(stop, event)
        return self._on_update(stop, event)

    def _on_tick(self, tick: Tick) -> list[Command]:
        price = tick.prices.get(self.params.instrument)
        if price is None:
            return []
        p, trail = self.params, self.state.trail
        trail.see(price, p.trail, p.tick_size, self._long)
        if self.state.stop is None:
            trail.level = trail.trail_level(p.trail, p.tick_size, self._long)
            assert trail.level is not None  # a price was just seen
            spec = OrderSpec(
                account=p.account,
                instrument=p.instrument,
                side=p.closing_side,
                quantity=p.protected_quantity,
                product=p.product,
                order_type=OrderType.SL_M,
                trigger_price=trail.level,
            )
            self.state.stop, place = TrackedOrder.place("stop-1", spec)
            message = f"{spec.side} {spec.quantity} SL-M at {trail.level} (price {price})"
            return [place, Note("protection_placed", message, place.key)]
        assert trail.level is not None
        return modify_to(self.state.stop, self.state.stop.quantity, trigger_price=trail.level)

    def _on_update(self, stop: TrackedOrder, update: OrderUpdate) -> list[Command]:
        new_fill = stop.apply(update.order)
        if stop.status is OrderStatus.FILLED:
            return [Finish(StrategyStatus.COMPLETED, f"stop-loss filled: {stop.filled} at {stop.average_price}")]
        if stop.unasked_end:
            why = f"stop-loss {stop.status.lower() if stop.status else ''}: {stop.message}".rstrip(": ")
            return [Finish(StrategyStatus.FAILED, f"{why}; the position is unprotected")]
        if new_fill:
            return [Note("stop_filled", f"stop-loss filled {stop.filled} of {stop.quantity}", stop.key)]
        return []

    def _on_refused(self, stop: TrackedOrder, refused: Refused) -> list[Command]:
        if refused.command == "place":
            return [Finish(StrategyStatus.FAILED, f"stop-loss refused: {refused.error}; the position is unprotected")]
        self.state.trail.refuse(stop.asked_trigger_price, stop.trigger_price)
        stop.settle()
        return [Note("trail_refused", f"stop-loss stays at {stop.trigger_price}: {refused.error}", stop.key)]
