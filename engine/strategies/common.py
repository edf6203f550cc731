"""What every strategy kind shares: JSON state, the finished guard, tracked orders and tick rounding."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel

from engine.domain import TERMINAL_STATUSES, Order, OrderStatus
from engine.strategies.base import Command, Finish, Input, Modify, Note, OrderSpec, Place, Watch

P = TypeVar("P", bound=BaseModel)
S = TypeVar("S", bound="StrategyState")


class StrategyState(BaseModel):
    """A strategy's whole memory; dumped to JSON after every input so a restart resumes where it was."""

    finished: bool = False


class StateStrategy(ABC, Generic[P, S]):
    """Params plus state, with dump/restore, and nothing emitted once a Finish has been."""

    kind: ClassVar[str]
    state_type: ClassVar[type[StrategyState]]

    def __init__(self, params: P, state: S | None = None) -> None:
        self.params = params
        self.state: S = state if state is not None else self.state_type()  # type: ignore[assignment]

    def watches(self) -> Watch:
        return Watch()

    def start(self, now: datetime) -> list[Command]:
        return self._guarded(lambda: self._start(now))

    def on(self, event: Input) -> list[Command]:
        return self.step([event])

    def step(self, inputs: Sequence[Input]) -> list[Command]:
        return self._guarded(lambda: self._step(inputs))

    def dump(self) -> dict[str, Any]:
        return self.state.model_dump(mode="json")

    @classmethod
    def restore(cls, params: P, state: dict[str, Any]) -> Self:
        return cls(params, cls.state_type.model_validate(state))  # type: ignore[arg-type]

    def _guarded(self, step: Any) -> list[Command]:
        if self.state.finished:
            return []
        commands: list[Command] = step()
        if any(isinstance(command, Finish) for command in commands):
            self.state.finished = True
        return commands

    def _start(self, now: datetime) -> list[Command]:
        return []

    @abstractmethod
    def _step(self, inputs: Sequence[Input]) -> list[Command]:
        """One step's inputs, taken together: what to do about them."""


class EventStrategy(StateStrategy[P, S]):
    """A strategy that takes each input on its own, in order, until one finishes it."""

    def _step(self, inputs: Sequence[Input]) -> list[Command]:
        commands: list[Command] = []
        for event in inputs:
            commands += self._on(event)
            if any(isinstance(command, Finish) for command in commands):
                break
        return commands

    @abstractmethod
    def _on(self, event: Input) -> list[Command]: ...


class TrackedOrder(BaseModel):
    """What a strategy knows of one of its orders: the latest state the runner reported, and what it asked.

    `awaiting` is set while a place or modify is unanswered, so the logic never stacks a second request
    on an order whose last one it has not heard back about: a placement is answered by any update, a
    modification by an update showing the asked values (or the order's end), either by a Refused.
    `asked_*` remember a modification's values because a Refused does not repeat them.
    """

    key: str
    quantity: int
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    status: OrderStatus | None = None  # None until the first update
    filled: int = 0
    average_price: Decimal | None = None
    message: str = ""
    awaiting: bool = True
    cancel_requested: bool = False
    asked_quantity: int | None = None
    asked_trigger_price: Decimal | None = None
    asked_price: Decimal | None = None

    @classmethod
    def place(cls, key: str, spec: OrderSpec) -> tuple[TrackedOrder, Place]:
        order = cls(key=key, quantity=spec.quantity, price=spec.price, trigger_price=spec.trigger_price)
        return order, Place(key, spec)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def live(self) -> bool:
        return not self.terminal

    @property
    def unasked_end(self) -> bool:
        """Cancelled or rejected without this strategy asking for it."""
        return self.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED) and not self.cancel_requested

    def apply(self, order: Order) -> int:
        """Take in the order's latest state; returns how many units filled since the previous one."""
        new_fill = max(order.filled_quantity - self.filled, 0)
        if new_fill:
            self.filled = order.filled_quantity
            self.average_price = order.average_price
        if not self.terminal:  # a late, stale update never revives a finished order
            self.status = order.status
            self.quantity = order.quantity
            self.price = order.price
            self.trigger_price = order.trigger_price
            self.message = order.status_message
        if self.awaiting and (self.terminal or self._shows_request(order)):
            self.settle()
        return new_fill

    def _shows_request(self, order: Order) -> bool:
        """Whether the order now shows what was asked: an update that predates a modification does not settle
        it, so a reply carrying the old values cannot set off the same request again and again."""
        return order.status is not OrderStatus.PENDING_MODIFY and all(
            asked is None or asked == actual
            for asked, actual in (
                (self.asked_quantity, order.quantity),
                (self.asked_trigger_price, order.trigger_price),
                (self.asked_price, order.price),
            )
        )

    def settle(self) -> None:
        """The outstanding request was answered."""
        self.awaiting = False
        self.asked_quantity = self.asked_trigger_price = self.asked_price = None


def on_tick(value: Decimal, tick_size: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    """`value` moved onto the price grid (nearest by default; ROUND_FLOOR / ROUND_CEILING to pick a side)."""
    return (value / tick_size).to_integral_value(rounding=rounding) * tick_size


def modify_to(
    order: TrackedOrder, quantity: int, *, trigger_price: Decimal | None = None, price: Decimal | None = None
) -> list[Command]:
    """Ask to bring a live, idle order to `quantity` and the given levels; nothing if it is there already.

    An order not yet acknowledged, with a request in flight or being cancelled is left alone: the answer
    to the outstanding request comes back as an input, and the caller reconciles again then.
    """
    if order.terminal or order.awaiting or order.cancel_requested or order.status is None:
        return []
    new_quantity = quantity if quantity != order.quantity else None
    new_trigger = trigger_price if trigger_price is not None and trigger_price != order.trigger_price else None
    new_price = price if price is not None and price != order.price else None
    if new_quantity is None and new_trigger is None and new_price is None:
        return []
    order.awaiting = True
    order.asked_quantity, order.asked_trigger_price, order.asked_price = new_quantity, new_trigger, new_price
    if new_quantity is not None:
        note = Note("protection_resized", f"{order.key}: quantity {order.quantity} -> {quantity}", order.key)
    elif new_trigger is not None:
        note = Note("trailed", f"{order.key}: trigger {order.trigger_price} -> {new_trigger}", order.key)
    else:
        note = Note("protection_moved", f"{order.key}: price {order.price} -> {new_price}", order.key)
    return [Modify(order.key, quantity=new_quantity, price=new_price, trigger_price=new_trigger), note]
