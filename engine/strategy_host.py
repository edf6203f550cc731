"""One strategy instance's logic with its durable state: what a StrategyActor holds.

Every decision is saved before it is handed out: `step` feeds inputs to the logic, then writes the new state,
the outbox (commands decided but not yet reported executed) and the order-event cursor in one statement, and
only then returns the new commands. A crash anywhere leaves the logic at a saved state whose outbox still holds
every command that might not have been executed; executing them again is safe because orders are placed under
client ids derived from the strategy id and the order's key.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine import strategies
from engine.errors import FailedPrecondition, NotFound
from engine.store.strategies import Pending, StrategyStore
from engine.strategies.base import Command, Input, OrderUpdate, Refused, Strategy, Watch

CURSOR_SAVE_SECONDS = 5.0
"""How often a cursor that moved past other strategies' events alone is saved: re-reading those after a crash
only skips them again, and saving it on every tick would write twice a second per strategy for nothing."""


class LogicError(Exception):
    """The strategy's own logic raised: the strategy cannot go on, and retrying would raise again."""


class NotOpen(Exception):
    """The host lost its state (its actor was restarted): open it again, which reloads from the database."""


@dataclass(frozen=True, slots=True)
class Opened:
    outbox: tuple[Pending, ...]  # commands to execute (again) before anything else
    watch: Watch
    cursor: int  # order events up to here have been fed to the logic


@dataclass(frozen=True, slots=True)
class Stepped:
    commands: tuple[Pending, ...]
    watch: Watch


@dataclass
class _Loaded:
    strategy: Strategy
    state: dict[str, Any] | None  # as last saved; None before the first save
    outbox: list[Pending]
    issued: int
    cursor: int
    saved_cursor: int
    cursor_saved_at: float = 0.0


class StrategyHost:
    def __init__(self, store: StrategyStore, strategy_id: str) -> None:
        self._store = store
        self._id = strategy_id
        self._loaded: _Loaded | None = None

    async def open(self, now: datetime) -> Opened:
        """Load the strategy; the first time ever, start its logic and save what it decided."""
        record = await self._store.get(self._id)
        if record is None:
            raise NotFound(f"strategy {self._id} not found")
        if record.status.is_final:
            raise FailedPrecondition(f"strategy {self._id} is {record.status.value}")
        try:
            if record.state is None:
                strategy = strategies.build(record.kind, strategies.PARAMS[record.kind].model_validate(record.params))
                first = strategy.start(now)
            else:
                strategy = strategies.restore(record.kind, record.params, record.state)
                first = []
        except Exception as exc:
            raise LogicError(f"{record.kind} could not start: {exc}") from exc
        cursor = record.event_cursor
        loaded = _Loaded(strategy, record.state, list(record.outbox), record.commands_issued, cursor, cursor)
        self._loaded = loaded
        if record.state is None:
            await self._save(loaded, first, (), record.event_cursor, fed=True)
        return Opened(tuple(loaded.outbox), strategy.watches(), loaded.cursor)

    async def step(self, inputs: Sequence[Input], cursor: int, done: Collection[int]) -> Stepped:
        """Feed `inputs` (order updates up to event `cursor`), drop the executed commands `done`, save, and
        return the new commands."""
        loaded = self._require()
        try:
            decided = loaded.strategy.step(inputs)
        except Exception as exc:
            self._loaded = None  # the logic may be half-way through a change: reload before anything else
            raise LogicError(f"{type(exc).__name__}: {exc}") from exc
        fed = any(isinstance(i, OrderUpdate | Refused) for i in inputs)  # ticks are not the strategy's events
        new = await self._save(loaded, decided, done, cursor, fed=fed)
        return Stepped(new, loaded.strategy.watches())

    async def ack(self, done: Collection[int]) -> None:
        """The runner executed these commands."""
        loaded = self._require()
        await self._save(loaded, [], done, loaded.cursor, fed=False)

    def _require(self) -> _Loaded:
        if self._loaded is None:
            raise NotOpen(f"strategy {self._id} is not loaded")
        return self._loaded

    async def _save(
        self, loaded: _Loaded, decided: Sequence[Command], done: Collection[int], cursor: int, *, fed: bool
    ) -> tuple[Pending, ...]:
        """Persist when anything changed; a tick that changed nothing writes nothing, and a cursor moved past none
        of this strategy's own order updates or refusals (`fed` false) is saved only every CURSOR_SAVE_SECONDS."""
        state = loaded.strategy.dump()
        new = tuple(Pending(loaded.issued + n, c) for n, c in enumerate(decided, start=1))
        outbox = [p for p in loaded.outbox if p.command_id not in done] + list(new)
        cursor = max(cursor, loaded.cursor)
        now = time.monotonic()
        moved = cursor > loaded.saved_cursor and (fed or now - loaded.cursor_saved_at >= CURSOR_SAVE_SECONDS)
        if new or done or state != loaded.state or moved:
            await self._store.save_step(self._id, state, outbox, loaded.issued + len(new), cursor)
            loaded.saved_cursor, loaded.cursor_saved_at = cursor, now
        loaded.state, loaded.outbox, loaded.issued = state, outbox, loaded.issued + len(new)
        loaded.cursor = cursor
        return new
