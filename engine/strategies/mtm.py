"""An MTM guard: when a scope's PnL today crosses a loss or profit threshold, square it off and restrict it.

It fires once: on the first Tick whose PnL for the scope is at or below -stop_loss or at or above
target, it squares the scope off (positions closed, open orders cancelled) and then sets the scope's
trading state to `then`, in that order, because HALTED would refuse the closing orders. A scope
with no PnL in a Tick (not known yet) is not judged.
"""

from __future__ import annotations

from engine.strategies.base import (
    Command,
    Finish,
    Input,
    Note,
    SetTradingState,
    SquareOff,
    StrategyStatus,
    Tick,
    Watch,
)
from engine.strategies.common import EventStrategy, StrategyState
from engine.strategies.params import MtmGuardParams


class MtmGuardStrategy(EventStrategy[MtmGuardParams, StrategyState]):
    kind = "mtm_guard"
    state_type = StrategyState

    def watches(self) -> Watch:
        return Watch(scopes=frozenset({self.params.scope}))

    def _on(self, event: Input) -> list[Command]:
        p = self.params
        pnl = event.pnl.get(p.scope) if isinstance(event, Tick) else None
        if pnl is None:
            return []
        if p.stop_loss is not None and pnl <= -p.stop_loss:
            hit, reason = "stop_loss_hit", f"{p.scope} PnL {pnl} reached the stop-loss of -{p.stop_loss}"
        elif p.target is not None and pnl >= p.target:
            hit, reason = "target_hit", f"{p.scope} PnL {pnl} reached the target of {p.target}"
        else:
            return []
        return [
            Note(hit, reason),
            SquareOff(p.scope, reason),
            SetTradingState(p.scope, p.then, reason),
            Finish(StrategyStatus.COMPLETED, f"{reason}: squared off and set {p.then}"),
        ]
