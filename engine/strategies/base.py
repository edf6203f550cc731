"""The vocabulary between a strategy's pure logic and the actor that runs it.

A strategy never does I/O. It receives inputs (its orders' new states, refusals, clock-and-price ticks) and
answers with commands; the runner executes the commands through the same placement, risk and trading-state
checks as any API call and feeds the outcomes back as inputs. Every order a strategy places has a key that is
unique within the strategy for ever; the order's client_order_id is "<strategy id>-<key>", so executing a
command twice (after a crash) places nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Protocol, Self

from engine.domain import InstrumentId, Order, OrderType, Product, Side
from engine.risk.states import Scope, TradingState


class StrategyStatus(StrEnum):
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in (StrategyStatus.STOPPED, StrategyStatus.COMPLETED, StrategyStatus.FAILED)


@dataclass(frozen=True, slots=True)
class OrderSpec:
    account: str
    instrument: InstrumentId
    side: Side
    quantity: int
    product: Product
    order_type: OrderType
    price: Decimal | None = None
    trigger_price: Decimal | None = None


# -- commands ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Place:
    key: str
    spec: OrderSpec


@dataclass(frozen=True, slots=True)
class Cancel:
    key: str


@dataclass(frozen=True, slots=True)
class Modify:
    key: str
    quantity: int | None = None
    price: Decimal | None = None
    trigger_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class SquareOff:
    """Close every position (not holdings) in the scope and cancel its open orders."""

    scope: Scope
    reason: str


@dataclass(frozen=True, slots=True)
class SetTradingState:
    scope: Scope
    state: TradingState
    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """Something worth telling the user; becomes a StrategyEvent."""

    kind: str
    message: str
    key: str = ""  # the order it concerns, if any


@dataclass(frozen=True, slots=True)
class Finish:
    status: StrategyStatus  # COMPLETED or FAILED
    message: str


Command = Place | Cancel | Modify | SquareOff | SetTradingState | Note | Finish


# -- inputs -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """The latest state of the order placed under `key` (after a reply or an event)."""

    key: str
    order: Order


@dataclass(frozen=True, slots=True)
class Refused:
    """The daemon refused a command about `key` (placement, modification or cancel); nothing changed."""

    key: str
    command: str  # "place", "modify" or "cancel"
    error: str


@dataclass(frozen=True, slots=True)
class Tick:
    """The clock, the latest prices of the instruments the strategy watches and the PnL today of its scopes."""

    now: datetime
    prices: Mapping[InstrumentId, Decimal] = field(default_factory=dict)
    pnl: Mapping[Scope, Decimal] = field(default_factory=dict)


Input = OrderUpdate | Refused | Tick


@dataclass(frozen=True, slots=True)
class Watch:
    instruments: frozenset[InstrumentId] = frozenset()
    scopes: frozenset[Scope] = frozenset()


class Strategy(Protocol):
    """One strategy instance's logic and state. `dump` and `restore` round-trip the state through JSON."""

    kind: ClassVar[str]

    def watches(self) -> Watch: ...

    def start(self, now: datetime) -> list[Command]: ...

    def on(self, event: Input) -> list[Command]: ...

    def step(self, inputs: Sequence[Input]) -> list[Command]:
        """Inputs that arrived together, in order; the commands answer all of them. A strategy may weigh them
        together before acting: a command decided from the first input alone could be wrong after the next,
        and once handed out it cannot be taken back."""
        ...

    def dump(self) -> dict[str, Any]: ...

    @classmethod
    def restore(cls, params: Any, state: dict[str, Any]) -> Self: ...
