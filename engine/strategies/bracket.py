"""A bracket: an entry, then a stop-loss (SL-M) and a target (LIMIT) kept as an OCO pair sized to the position.

Every step (the inputs that arrived together) is taken in whole, then ends in one reconciliation that
compares what is wanted with what the orders are, so no order command is decided from part of what happened:
- the open position is what the entry filled less what the stop-loss and target orders filled;
- while it is positive, each side has one working order whose unfilled part equals it (placed on the
  first entry fill, then Modified in quantity as more fills come, or as the other side fills), so the
  two can never close more than is open unless both fill in the same instant (that over-close is
  reported loudly);
- once an exit has filled, the rest of the entry is cancelled; once the position is zero, the other
  side is cancelled;
- when nothing of the attempt is working any more, the bracket ends, or re-enters after a cool-down.
Levels are set from the entry's average price (stop = avg ∓ stop_loss, target = avg ± target, rounded
to the nearest tick of `params.tick_size`) and move with it as more of the entry fills; a trail then
only tightens the stop. A protective order that is refused, rejected or cancelled by someone else while
there is a position finishes the bracket as FAILED: an unprotected position must be loud. Failing cancels
the rest of the entry, and, when nothing is open (or more than was open was closed), every exit order still
working; with a position open, the protective order still working stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from engine.domain import OrderStatus, OrderType, Side
from engine.domain.ids import protection_key
from engine.strategies.base import (
    Cancel,
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
from engine.strategies.common import StateStrategy, StrategyState, TrackedOrder, modify_to, on_tick
from engine.strategies.params import BracketParams
from engine.strategies.reentry import CoolDown, allowed
from engine.strategies.trailing import StopTrail

Role = Literal["stop", "target"]


class BracketState(StrategyState):
    attempt: int = 0  # 1 for the first entry
    entry: TrackedOrder | None = None
    stops: list[TrackedOrder] = Field(default_factory=list)  # this attempt's stop-loss orders, the working one last
    targets: list[TrackedOrder] = Field(default_factory=list)
    trail: StopTrail = Field(default_factory=StopTrail)  # trail.level is where the stop-loss belongs
    last_exit: Role | None = None  # the side whose fill closed the position last
    cooldown: CoolDown = Field(default_factory=CoolDown)


class BracketStrategy(StateStrategy[BracketParams, BracketState]):
    kind = "bracket"
    state_type = BracketState

    @property
    def _long(self) -> bool:
        return self.params.entry.side is Side.BUY

    def watches(self) -> Watch:
        """Prices are needed only to trail; the clock for cool-downs comes with every Tick anyway."""
        return Watch(instruments=frozenset({self.params.entry.instrument}) if self.params.trail else frozenset())

    def _start(self, now: datetime) -> list[Command]:
        return self._enter()

    def _enter(self) -> list[Command]:
        s = self.state
        s.attempt += 1
        s.stops, s.targets, s.trail, s.last_exit = [], [], StopTrail(), None
        spec = self.params.entry.to_spec()
        s.entry, place = TrackedOrder.place(f"entry-{s.attempt}", spec)
        text = f"attempt {s.attempt}: {spec.side} {spec.quantity} {spec.instrument} {spec.order_type}"
        return [place, Note("entry_placed", text, place.key)]

    def _step(self, inputs: Sequence[Input]) -> list[Command]:
        """Take in every input, then reconcile once: an entry fill and a target fill arriving together must
        give the stop one resize to what is still open, not a resize to the entry's fill that, awaited, could
        not be corrected before it is sent."""
        commands: list[Command] = []
        changed = False
        # Order updates first: a refusal is judged on the orders as they are, fills arriving with it included.
        updates = [i for i in inputs if isinstance(i, OrderUpdate)]
        for event in [*updates, *(i for i in inputs if not isinstance(i, OrderUpdate))]:
            taken, moved = self._take(event)
            commands += taken
            if any(isinstance(command, Finish) for command in taken):
                return commands
            changed = changed or moved
        return commands + self._reconcile() if changed else commands

    def _take(self, event: Input) -> tuple[list[Command], bool]:
        """Take in one input: the commands it needs at once, and whether orders must be reconciled after it."""
        if self.state.cooldown.waiting:  # the attempt is over; only the clock matters until the next one
            seconds = self.params.reentry.cooldown_seconds if self.params.reentry else 0
            ready = isinstance(event, Tick) and self.state.cooldown.ready(event.now, seconds)
            return (self._enter() if ready else []), False
        if isinstance(event, Tick):
            return [], self._on_tick(event)
        order = self._find(event.key)
        if order is None:
            return [], False
        if isinstance(event, Refused):
            return self._on_refused(order, event), True
        return self._on_update(order, event), True

    def _find(self, key: str) -> TrackedOrder | None:
        s = self.state
        return next((o for o in [s.entry, *s.stops, *s.targets] if o is not None and o.key == key), None)

    def _role(self, order: TrackedOrder) -> Literal["entry", "stop", "target"]:
        if order is self.state.entry:
            return "entry"
        return "stop" if any(order is o for o in self.state.stops) else "target"

    # -- inputs ---------------------------------------------------------------------------------

    def _on_tick(self, tick: Tick) -> bool:
        """Trail the stop's level with the price; whether there is a level to reconcile."""
        entry, p = self.state.entry, self.params
        price = tick.prices.get(p.entry.instrument)
        if price is None or p.trail is None or entry is None or entry.filled == 0:
            return False
        self.state.trail.see(price, p.trail, p.tick_size, self._long)
        return True

    def _on_update(self, order: TrackedOrder, update: OrderUpdate) -> list[Command]:
        new_fill = order.apply(update.order)
        notes: list[Command] = []
        role = self._role(order)
        if new_fill and role == "entry":
            self._entry_filled()
            text = f"entry filled {order.filled} of {order.quantity} at {order.average_price}"
            notes.append(Note("entry_filled", text, order.key))
        elif new_fill:
            self.state.last_exit = role
            text = f"{role} filled {order.filled} of {order.quantity} at {order.average_price}"
            notes.append(Note(f"{role}_filled", text, order.key))
        return notes

    def _on_refused(self, order: TrackedOrder, refused: Refused) -> list[Command]:
        role = self._role(order)
        if refused.command == "cancel":  # the order most likely filled meanwhile; its update will say
            return [Note("cancel_refused", f"cancelling {order.key} was refused: {refused.error}", order.key)]
        if role == "entry":  # only ever placed
            order.settle()
            order.status, order.message = OrderStatus.REJECTED, f"refused: {refused.error}"
            return []
        if order.terminal:  # a modification raced the order's end (whose update came first); reconcile with it
            order.settle()
            return []
        if refused.command == "modify" and order.asked_quantity is None and role == "stop":
            self.state.trail.refuse(order.asked_trigger_price, order.trigger_price)
            order.settle()
            return [Note("trail_refused", f"stop-loss stays at {order.trigger_price}: {refused.error}", order.key)]
        if refused.command == "place":  # it never reached a broker: nothing of it to cancel or keep
            order.settle()
            order.status, order.message = OrderStatus.REJECTED, f"refused: {refused.error}"
        action = "placing" if refused.command == "place" else "resizing"
        return self._fail(f"{action} the {role} order {order.key} was refused: {refused.error}")

    # -- reconciliation -------------------------------------------------------------------------

    def _entry_filled(self) -> None:
        """The average price moved: put both levels back at their distance from it, then let the trail tighten."""
        p, entry = self.params, self.state.entry
        assert entry is not None and entry.average_price is not None
        avg, sign = entry.average_price, 1 if self._long else -1
        self.state.trail.level = on_tick(avg - sign * p.stop_loss, p.tick_size)
        self.state.trail.see(avg, p.trail, p.tick_size, self._long)

    def _target_level(self) -> Decimal:
        p, entry = self.params, self.state.entry
        assert entry is not None and entry.average_price is not None
        return on_tick(entry.average_price + (1 if self._long else -1) * p.target, p.tick_size)

    def _open_position(self) -> int:
        s = self.state
        assert s.entry is not None
        return s.entry.filled - sum(o.filled for o in [*s.stops, *s.targets])

    def _reconcile(self) -> list[Command]:
        s = self.state
        entry = s.entry
        assert entry is not None
        open_position = self._open_position()
        if open_position < 0:
            return self._fail(f"the stop-loss and the target both filled: closed {-open_position} more than was open")
        exits = [*s.stops, *s.targets]
        if open_position > 0:
            broken = next((o for o in exits if o.unasked_end), None)
            if broken is not None:
                return self._fail(f"{broken.key} was {broken.status} ({broken.message or 'not by this strategy'})")
        commands: list[Command] = []
        if entry.live and not entry.cancel_requested and any(o.filled for o in exits):
            entry.cancel_requested = True
            commands += [Cancel(entry.key), Note("entry_cancelled", "an exit filled; the rest is cancelled", entry.key)]
        for role, orders in (("stop", s.stops), ("target", s.targets)):
            current = orders[-1] if orders else None
            if open_position > 0:
                commands += self._protect(role, current, open_position)  # type: ignore[arg-type]
            elif current is not None and current.live and not current.cancel_requested:
                current.cancel_requested = True
                commands += [Cancel(current.key), Note(f"{role}_cancelled", "the position is closed", current.key)]
        if entry.terminal and all(o.terminal for o in [*s.stops, *s.targets]):  # incl. any just placed
            commands += self._attempt_over()
        return commands

    def _protect(self, role: Role, current: TrackedOrder | None, open_position: int) -> list[Command]:
        """Keep one working `role` order whose unfilled part is the open position."""
        s, p = self.state, self.params
        level = s.trail.level if role == "stop" else self._target_level()
        assert level is not None
        if current is not None and current.live:
            if role == "stop":
                return modify_to(current, current.filled + open_position, trigger_price=level)
            return modify_to(current, current.filled + open_position, price=level)
        orders = s.stops if role == "stop" else s.targets
        spec = OrderSpec(
            account=p.entry.account,
            instrument=p.entry.instrument,
            side=Side.SELL if self._long else Side.BUY,
            quantity=open_position,
            product=p.entry.product,
            order_type=OrderType.SL_M if role == "stop" else OrderType.LIMIT,
            price=None if role == "stop" else level,
            trigger_price=level if role == "stop" else None,
        )
        order, place = TrackedOrder.place(protection_key(role, s.attempt, len(orders) + 1), spec)
        orders.append(order)
        text = f"{role} {spec.side} {open_position} {spec.order_type} at {level}"
        return [place, Note("protection_placed", text, order.key)]

    def _attempt_over(self) -> list[Command]:
        """Nothing of this attempt is working: end, or re-enter after the cool-down if the rule says so."""
        s, rule = self.state, self.params.reentry
        entry = s.entry
        assert entry is not None
        if entry.filled == 0:
            rejected = entry.status is OrderStatus.REJECTED
            why = f"entry {entry.key} {'rejected' if rejected else 'cancelled'} with nothing filled"
            why += f": {entry.message}" if entry.message else ""
            if allowed(rule, s.attempt, "reject"):
                return self._reenter(why)
            return [Finish(StrategyStatus.FAILED if rejected else StrategyStatus.COMPLETED, why)]
        closed_by = "stop-loss" if s.last_exit == "stop" else "target"
        why = f"attempt {s.attempt}: the position of {entry.filled} was closed by the {closed_by}"
        if s.last_exit == "stop" and allowed(rule, s.attempt, "stop_loss"):
            return self._reenter(why)
        return [Finish(StrategyStatus.COMPLETED, why)]

    def _reenter(self, why: str) -> list[Command]:
        assert self.params.reentry is not None
        self.state.cooldown.begin()
        text = f"{why}; re-entering in {self.params.reentry.cooldown_seconds}s (attempt {self.state.attempt + 1})"
        return [Note("reentry_scheduled", text)]

    def _fail(self, why: str) -> list[Command]:
        """Finish as FAILED, leaving nothing working unmanaged that could add to the position or close more than
        is open: the rest of the entry is cancelled, and so is every exit but one. With a position open, one exit
        stays (the stop first) if it cannot close more than is open: unlinked from its pair, two exits could
        both fill, and one larger than the position could turn it around."""
        s = self.state
        open_position = self._open_position()
        exits = [o for o in [*s.stops, *s.targets] if o.live and not o.cancel_requested]
        keep = next((o for o in exits if open_position > 0 and _unfilled(o) <= open_position), None)
        doomed = [*([s.entry] if s.entry is not None else []), *(o for o in exits if o is not keep)]
        if keep is not None and any(keep is o for o in s.stops):
            why += f"; the position of {open_position} is protected only by {keep.key}, which stays"
        elif keep is not None:
            why += f"; the position of {open_position} has no stop-loss, it is unprotected: only {keep.key} stays"
        elif open_position > 0:
            why += f"; the position of {open_position} is unprotected"
        cancels: list[Command] = []
        for order in doomed:
            if order.live and not order.cancel_requested:
                order.cancel_requested = True
                cancels.append(Cancel(order.key))
        return [*cancels, Note("failed", why), Finish(StrategyStatus.FAILED, why)]


def _unfilled(order: TrackedOrder) -> int:
    """What may still fill of the order: of a resize not yet answered, the larger of the two sizes."""
    return max(order.quantity, order.asked_quantity or 0) - order.filled
