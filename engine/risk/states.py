"""Trading states and the scopes they are set on: the vocabulary of the kill switch and MTM guards, and the
pure rules of what each state still allows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from engine.brokers.base import BrokerPosition, Holding
from engine.domain import InstrumentId, Product, Side
from engine.domain.ids import oco_pair
from engine.risk.violation import RiskViolation


class TradingState(StrEnum):
    """What an account may still do, least restrictive first."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"  # only orders that reduce exposure
    HALTED = "HALTED"  # only cancels

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class ScopeKind(StrEnum):
    GLOBAL = "GLOBAL"
    GROUP = "GROUP"
    ACCOUNT = "ACCOUNT"


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    name: str = ""  # the group or account; empty for GLOBAL

    def __str__(self) -> str:
        return "global" if self.kind is ScopeKind.GLOBAL else f"{self.kind.lower()} {self.name}"


GLOBAL = Scope(ScopeKind.GLOBAL)


@dataclass(frozen=True, slots=True)
class StateEntry:
    """A trading state set on one scope, and by whom."""

    scope: Scope
    state: TradingState
    reason: str
    set_by: str  # a user, or "strategy:<id>"
    set_at: datetime
    floor: TradingState = TradingState.ACTIVE
    """The least restrictive state a non-admin may set here: what an admin last set. It survives a trader
    tightening the state further, so a trader can never lift an admin's halt by first re-halting it."""

    @property
    def because(self) -> str:
        """The state as a refusal explains it, e.g. "group family: HALTED by ana (kill switch)"."""
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.scope}: {self.state} by {self.set_by}{why}"


def effective_state(
    entries: Mapping[Scope, StateEntry], account: str, groups: Sequence[str]
) -> tuple[TradingState, str]:
    """The most restrictive of the global state, the account's groups' and its own, with the entry's text.

    On a tie the broadest scope is named (global, then groups in order, then the account): lifting the
    narrower one alone would not change anything.
    """
    scopes = [GLOBAL, *(Scope(ScopeKind.GROUP, g) for g in groups), Scope(ScopeKind.ACCOUNT, account)]
    found: StateEntry | None = None
    for scope in scopes:
        entry = entries.get(scope)
        if entry is not None and entry.state.rank > (found.state.rank if found else 0):
            found = entry
    return (found.state, found.because) if found else (TradingState.ACTIVE, "")


def open_quantity(
    instrument: InstrumentId, product: Product, positions: Iterable[BrokerPosition], holdings: Iterable[Holding]
) -> int:
    """The signed quantity an order in this instrument and product can reduce.

    Intraday (MIS) and carry-forward (NRML) positions are separate positions at the broker, so each is reduced
    only by an order of its own product. For delivery (CNC) it is today's CNC position plus the holdings, as
    AccountSnapshot.deliverable counts them: selling shares held from earlier days reduces exposure too.
    """
    net = sum(p.quantity for p in positions if p.instrument == instrument and p.product is product)
    if product is Product.CNC:
        net += sum(h.quantity for h in holdings if h.instrument == instrument)
    return net


def reduces_exposure(side: Side, quantity: int, position: int, working: int = 0) -> bool:
    """Whether an order of `quantity` on `side` only moves `position` (open_quantity) toward zero.

    It must be on the opposite side of the position, and together with the account's other orders already
    working on that side (`working`, which would reduce the same position if they filled) it must not exceed
    the position: selling exactly a long position is allowed, one unit more would open a short and is refused
    whole, not trimmed. With no position nothing reduces exposure.
    """
    if quantity <= 0 or position == 0 or side.sign * position > 0:
        return False
    return quantity + working <= abs(position)


def committed(working: Mapping[str, int]) -> int:
    """Units that may still fill on one side of a position, from the orders working there (client order id ->
    unfilled units): what REDUCING compares with the position.

    A routed order's legs ("<client id>/<n>") are one order and add up. A bracket's stops and targets of one
    entry are an OCO pair (when one side fills the strategy cancels the other), so a pair counts its larger
    side, not the sum (engine.domain.ids.oco_pair); every other order, a strategy's included, counts on its own.
    """
    orders: dict[str, int] = {}
    for client_order_id, quantity in working.items():
        order = client_order_id.partition("/")[0]
        orders[order] = orders.get(order, 0) + quantity
    families: dict[str, int] = {}
    for order, quantity in orders.items():
        family = oco_pair(order) or order
        families[family] = max(families.get(family, 0), quantity)
    return sum(families.values())


def refusal(
    state: TradingState,
    because: str,
    side: Side,
    quantity: int,
    instrument: InstrumentId,
    product: Product,
    position: int,
    working: int = 0,
) -> str | None:
    """Why an account in `state` may not send this order (or change a working one to it), or None.

    ACTIVE allows everything; REDUCING only an order that reduces exposure (reduces_exposure); HALTED nothing.
    Cancels never come here: they are always allowed.
    """
    if state is TradingState.ACTIVE:
        return None
    head = f"trading is {state} ({because})"
    if state is TradingState.HALTED:
        return f"{head}: only cancels are allowed"
    if reduces_exposure(side, quantity, position, working):
        return None
    held = f"{product} position {position:+d}" + (" (holdings included)" if product is Product.CNC else "")
    pending = f" and {working} already working on that side" if working else ""
    return (
        f"{head}: only orders that reduce a position are allowed, and {side} {quantity} {instrument} {product}"
        f" would not (the {held}{pending})"
    )


class StateRefusal(RiskViolation):
    """An order the account's trading state refuses. A RiskViolation, so routing leaves the account out and a
    retry of an order placed before the state was set still gets its original back."""

    def __init__(self, problem: str, account: str = "") -> None:
        super().__init__("trading_state", problem, account)

    @property
    def reason(self) -> str:
        return self.problem

    def at(self, account: str) -> StateRefusal:
        return StateRefusal(self.problem, account)

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # type: ignore[override]
        return type(self), (self.problem, self.account)
