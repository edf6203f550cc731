"""StrategyHost: every decision saved with its outbox before it is handed out, and ticks that change nothing
writing nothing (a cursor moved only past other strategies' events is saved now and then)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from engine import strategy_host
from engine.risk.states import Scope, ScopeKind
from engine.store.strategies import Pending, StrategyRecord
from engine.strategies.base import Finish, Note, Refused, SetTradingState, SquareOff, StrategyStatus, Tick
from engine.strategies.params import MtmGuardParams
from engine.strategy_host import StrategyHost

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
SCOPE = Scope(ScopeKind.ACCOUNT, "a1")
PARAMS = MtmGuardParams.model_validate(
    {"scope": {"kind": "ACCOUNT", "name": "a1"}, "stop_loss": "100", "then": "HALTED"}
)


@dataclass
class FakeStore:
    record: StrategyRecord
    saves: int = 0

    async def get(self, strategy_id: str) -> StrategyRecord | None:
        return self.record

    async def save_step(
        self, strategy_id: str, state: dict[str, Any], outbox: Sequence[Pending], issued: int, cursor: int
    ) -> None:
        self.saves += 1
        self.record = replace(
            self.record, state=state, outbox=tuple(outbox), commands_issued=issued, event_cursor=cursor
        )


def _store() -> FakeStore:
    return FakeStore(
        StrategyRecord(
            strategy_id="SAAAAAAAAAAAAAAAA", client_strategy_id="c", owner="ana", kind="mtm_guard", name="",
            params=PARAMS.model_dump(mode="json"), accounts=("a1",), state=None, status=StrategyStatus.RUNNING,
            message="", outbox=(), commands_issued=0, event_cursor=0, created_at=NOW, updated_at=NOW,
        )
    )  # fmt: skip


async def test_commands_are_saved_in_the_outbox_before_they_are_handed_out_and_replayed_after_a_crash() -> None:
    store = _store()
    host = StrategyHost(store, "S1")  # type: ignore[arg-type]
    await host.open(NOW)
    stepped = await host.step([Tick(NOW, pnl={SCOPE: Decimal(-100)})], 0, ())
    kinds = [type(p.command) for p in stepped.commands]
    assert kinds == [Note, SquareOff, SetTradingState, Finish]
    assert [p.command_id for p in store.record.outbox] == [p.command_id for p in stepped.commands]

    # The runner died before executing any of them: a new host (a restarted actor) hands them out again.
    reopened = await StrategyHost(store, "S1").open(NOW)  # type: ignore[arg-type]
    assert [p.command for p in reopened.outbox] == [p.command for p in stepped.commands]

    await host.ack([p.command_id for p in stepped.commands[:2]])
    assert [type(p.command) for p in store.record.outbox] == [SetTradingState, Finish]


async def test_a_tick_that_changes_nothing_writes_nothing_and_a_bare_cursor_is_saved_now_and_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(strategy_host.time, "monotonic", lambda: clock[0])
    store = _store()
    host = StrategyHost(store, "S1")  # type: ignore[arg-type]
    await host.open(NOW)
    saved = store.saves
    await host.step([], 0, ())
    assert store.saves == saved  # nothing changed
    await host.step([], 40, ())  # past other strategies' events only, just after the last save
    assert store.saves == saved and store.record.event_cursor == 0  # kept in memory
    clock[0] += strategy_host.CURSOR_SAVE_SECONDS
    await host.step([], 50, ())
    assert store.saves == saved + 1 and store.record.event_cursor == 50
    clock[0] += 1
    await host.step([Tick(NOW)], 60, ())  # a tick is no event of its own
    assert store.saves == saved + 1 and store.record.event_cursor == 50
    await host.step([Refused("entry-1", "place", "refused")], 61, ())  # one of its own: saved at once
    assert store.saves == saved + 2 and store.record.event_cursor == 61
