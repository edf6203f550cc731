"""Place an order at each firing of a cron schedule in IST, on exchange trading days only.

Firings come from croniter evaluated in Asia/Kolkata; a firing on a weekend or an exchange holiday
(the XBOM calendar through engine.domain.sessions, whose holidays NSE shares; exchange-calendars has
no NSE calendar of its own) is skipped. A firing is placed on the first Tick at or after it; one that
is more than GRACE late (the daemon was down) is skipped with a note rather than placed late, since an
order meant for 09:15 is a different trade at 11:40. Each run's order key is "run-<YYYYMMDDHHMM>"
(IST), so a replayed run places nothing twice. With max_runs, the schedule completes once the last
run's placement has been answered.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from croniter import croniter
from pydantic import Field

from engine.domain.sessions import IST, TradingSessions
from engine.strategies.base import Command, Finish, Input, Note, OrderUpdate, Refused, StrategyStatus, Tick
from engine.strategies.common import EventStrategy, StrategyState, TrackedOrder
from engine.strategies.params import ScheduleParams

GRACE = timedelta(seconds=60)
LOOKAHEAD = timedelta(days=400)
SESSIONS = TradingSessions()


def next_firing(cron: str, after: datetime, sessions: TradingSessions = SESSIONS) -> datetime | None:
    """The first firing strictly after `after` on a trading day, in IST; None if there is none within LOOKAHEAD."""
    if after.tzinfo is None:
        raise ValueError("next_firing needs an aware datetime")
    start = after.astimezone(IST)
    limit = start + LOOKAHEAD
    while True:
        fire: datetime = croniter(cron, start).get_next(datetime)
        if fire > limit:
            return None
        if sessions.is_trading_day(fire.date()):
            return fire
        # skip the rest of a closed day at once rather than minute by minute
        start = datetime.combine(fire.date() + timedelta(days=1), time(0), IST) - timedelta(seconds=1)


def _ist(at: datetime) -> str:
    return at.astimezone(IST).strftime("%Y-%m-%d %H:%M IST")


class ScheduleState(StrategyState):
    next_at: datetime | None = None
    runs: int = 0
    open_runs: list[str] = Field(default_factory=list)  # runs placed whose order has not ended yet
    last_key: str | None = None  # the final run (max_runs reached): its answer completes the schedule


class ScheduleStrategy(EventStrategy[ScheduleParams, ScheduleState]):
    kind = "schedule"
    state_type = ScheduleState

    def _start(self, now: datetime) -> list[Command]:
        return self._plan(now, [])

    def _plan(self, after: datetime, commands: list[Command]) -> list[Command]:
        """Set the next firing after `after`, or complete when there is none left."""
        self.state.next_at = next_firing(self.params.cron, after)
        if self.state.next_at is None:
            return [*commands, Finish(StrategyStatus.COMPLETED, "no further firing on a trading day within a year")]
        return [*commands, Note("scheduled", f"next run at {_ist(self.state.next_at)}")]

    def _on(self, event: Input) -> list[Command]:
        if isinstance(event, Tick):
            return self._on_tick(event.now)
        if event.key not in self.state.open_runs:
            return []
        if isinstance(event, Refused):
            self.state.open_runs.remove(event.key)
            return self._answered(event.key, [Note("run_refused", f"refused: {event.error}", event.key)])
        return self._on_update(event)

    def _on_tick(self, now: datetime) -> list[Command]:
        s = self.state
        if s.next_at is None or now < s.next_at:
            return []
        due = s.next_at
        if now - due > GRACE:
            text = f"the run due at {_ist(due)} was missed by {now - due} and is skipped"
            return self._plan(now, [Note("run_missed", text)])
        key = "run-" + due.astimezone(IST).strftime("%Y%m%d%H%M")
        _, place = TrackedOrder.place(key, self.params.order.to_spec())
        s.runs += 1
        s.open_runs.append(key)
        commands: list[Command] = [place, Note("run_placed", f"run {s.runs}, due at {_ist(due)}", key)]
        if self.params.max_runs and s.runs >= self.params.max_runs:
            s.next_at, s.last_key = None, key
            return commands
        return self._plan(due, commands)

    def _on_update(self, update: OrderUpdate) -> list[Command]:
        order = update.order
        commands: list[Command] = []
        if order.is_terminal:
            self.state.open_runs.remove(update.key)
            text = f"{order.status.lower()}: {order.filled_quantity} of {order.quantity}"
            text += f" at {order.average_price}" if order.average_price is not None else ""
            text += f" ({order.status_message})" if order.status_message else ""
            commands.append(Note(f"run_{order.status.lower()}", text, update.key))
        return self._answered(update.key, commands)

    def _answered(self, key: str, commands: list[Command]) -> list[Command]:
        if key != self.state.last_key:
            return commands
        done = f"ran {self.state.runs} time(s), the last as {key}"
        return [*commands, Finish(StrategyStatus.COMPLETED, done)]
