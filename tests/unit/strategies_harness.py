"""A stand-in for the strategy runner: executes a strategy's commands against an in-memory order book.

Every command is answered the way the runner answers it (an OrderUpdate with the order's new state, or
a Refused for the keys a test says to refuse) and the answer is fed straight back. Market events (fills,
exchange rejections, ticks) are injected by the test. With `roundtrip=True` the strategy is dumped to
JSON text and restored before every input, so a scenario passing both ways shows that state survives a
restart at any point.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from engine.domain import InstrumentId, Order, OrderStatus
from engine.risk.states import Scope
from engine.strategies import build, restore
from engine.strategies.base import Cancel, Command, Finish, Input, Modify, Note, OrderUpdate, Place, Refused, Tick

T0 = datetime(2026, 1, 22, 4, 0, tzinfo=UTC)  # Thursday 09:30 IST
INFY = InstrumentId.parse("NSE:INFY")


class Harness:
    def __init__(self, kind: str, params: BaseModel, *, roundtrip: bool = False) -> None:
        self.kind, self.roundtrip = kind, roundtrip
        self.params_json = json.dumps(params.model_dump(mode="json"))
        self.strategy = build(kind, params)
        self.orders: dict[str, Order] = {}
        self.log: list[Command] = []
        self.refuse: dict[tuple[str, str], str] = {}  # (key, "place" | "modify" | "cancel") -> error
        self.hold_modifies = False  # keep modify answers back until release()
        self.held: list[Input] = []
        self.now = T0

    # -- driving ----------------------------------------------------------------------------------

    def start(self) -> list[Command]:
        return self._execute(self.strategy.start(self.now))

    def feed(self, event: Input) -> list[Command]:
        return self.feed_step([event])

    def feed_step(self, events: list[Input]) -> list[Command]:
        """Inputs arriving together, as the runner batches them into one step."""
        if self.roundtrip:
            state = json.dumps(self.strategy.dump())
            self.strategy = restore(self.kind, self.params_json, state)
        return self._execute(self.strategy.step(events))

    def filled(self, key: str, quantity: int, price: Decimal | str) -> OrderUpdate:
        """The update a fill would bring, recorded in the book but not fed (see feed_step)."""
        order = self.orders[key]
        filled = order.filled_quantity + quantity
        notional = (order.average_price or Decimal(0)) * order.filled_quantity + Decimal(price) * quantity
        status = OrderStatus.FILLED if filled == order.quantity else OrderStatus.PARTIALLY_FILLED
        self.orders[key] = replace(
            order, status=status, filled_quantity=filled, average_price=notional / filled, updated_at=self.now
        )
        return OrderUpdate(key, self.orders[key])

    def tick(
        self, price: Decimal | str | None = None, *, now: datetime | None = None, pnl: dict[Scope, Any] | None = None
    ) -> list[Command]:
        self.now = now or self.now
        prices = {} if price is None else {INFY: Decimal(price)}
        return self.feed(Tick(self.now, prices, {k: Decimal(v) for k, v in (pnl or {}).items()}))

    def fill(self, key: str, quantity: int, price: Decimal | str) -> list[Command]:
        return self.feed(self.filled(key, quantity, price))

    def end(self, key: str, status: OrderStatus, message: str = "") -> list[Command]:
        """The exchange (or someone else) ends the order."""
        return self._update(key, status=status, status_message=message)

    def release(self) -> list[Command]:
        held, self.held = self.held, []
        return [command for event in held for command in self.feed(event)]

    # -- reading ----------------------------------------------------------------------------------

    def status(self, key: str) -> OrderStatus:
        return self.orders[key].status

    @property
    def finish(self) -> Finish | None:
        return next((c for c in self.log if isinstance(c, Finish)), None)

    # -- the runner's part ------------------------------------------------------------------------

    def _update(self, key: str, **changes: Any) -> list[Command]:
        self.orders[key] = replace(self.orders[key], updated_at=self.now, **changes)
        return self.feed(OrderUpdate(key, self.orders[key]))

    def _execute(self, commands: list[Command]) -> list[Command]:
        """Run each command and feed its answer back at once, as the runner does; returns all that ran."""
        done: list[Command] = []
        for command in commands:
            self.log.append(command)
            done.append(command)
            answer = self._answer(command)
            if answer is not None:
                done.extend(self.feed(answer))
        return done

    def _answer(self, command: Command) -> Input | None:
        if isinstance(command, Place | Modify | Cancel):
            verb = type(command).__name__.lower()
            if (command.key, verb) in self.refuse:
                return Refused(command.key, verb, self.refuse[(command.key, verb)])
        if isinstance(command, Place):
            spec = command.spec
            self.orders[command.key] = Order(
                order_id=f"o-{command.key}",
                client_order_id=f"s1-{command.key}",
                account=spec.account,
                instrument=spec.instrument,
                side=spec.side,
                quantity=spec.quantity,
                product=spec.product,
                order_type=spec.order_type,
                status=OrderStatus.OPEN,
                created_at=self.now,
                updated_at=self.now,
                price=spec.price,
                trigger_price=spec.trigger_price,
            )
            return OrderUpdate(command.key, self.orders[command.key])
        if isinstance(command, Modify):
            order = self.orders[command.key]
            self.orders[command.key] = replace(
                order,
                quantity=command.quantity if command.quantity is not None else order.quantity,
                price=command.price if command.price is not None else order.price,
                trigger_price=command.trigger_price if command.trigger_price is not None else order.trigger_price,
            )
            update = OrderUpdate(command.key, self.orders[command.key])
            if self.hold_modifies:
                self.held.append(update)
                return None
            return update
        if isinstance(command, Cancel):
            order = self.orders[command.key]
            if not order.is_terminal:
                self.orders[command.key] = replace(order, status=OrderStatus.CANCELLED)
            return OrderUpdate(command.key, self.orders[command.key])
        return None


def actions(commands: list[Command]) -> list[Command]:
    """The commands other than notes."""
    return [c for c in commands if not isinstance(c, Note)]


def notes(commands: list[Command]) -> list[str]:
    return [c.kind for c in commands if isinstance(c, Note)]
