"""mtm_guard: square off and restrict a scope once its PnL crosses a threshold, once."""

from __future__ import annotations

import pytest

from engine.risk.states import Scope, ScopeKind, TradingState
from engine.strategies.base import Finish, Note, SetTradingState, SquareOff, StrategyStatus
from engine.strategies.params import MtmGuardParams
from tests.unit.strategies_harness import Harness

GROUP = Scope(ScopeKind.GROUP, "momentum")
ACCOUNT = Scope(ScopeKind.ACCOUNT, "a1")


@pytest.fixture(params=[False, True], ids=["live", "restored-each-step"])
def roundtrip(request: pytest.FixtureRequest) -> bool:
    return request.param


def guard(scope: Scope, roundtrip: bool, **thresholds: str) -> Harness:
    params = MtmGuardParams.model_validate(
        {"scope": {"kind": scope.kind, "name": scope.name}, "then": "HALTED"} | thresholds
    )
    h = Harness("mtm_guard", params, roundtrip=roundtrip)
    assert h.start() == []
    assert h.strategy.watches().scopes == frozenset({scope})
    return h


def test_stop_loss_squares_off_then_halts_once(roundtrip: bool) -> None:
    h = guard(GROUP, roundtrip, stop_loss="5000", target="8000")
    assert h.tick() == []  # no PnL known yet
    assert h.tick(pnl={GROUP: "-4999.99"}) == []
    assert h.tick(pnl={ACCOUNT: "-9000"}) == []  # another scope
    out = h.tick(pnl={GROUP: "-5000"})
    assert [type(c) for c in out] == [Note, SquareOff, SetTradingState, Finish]
    assert out[0].kind == "stop_loss_hit"  # type: ignore[union-attr]
    assert out[1] == SquareOff(GROUP, out[1].reason) and "-5000" in out[1].reason  # type: ignore[union-attr]
    assert out[2] == SetTradingState(GROUP, TradingState.HALTED, out[1].reason)  # type: ignore[union-attr]
    assert out[3].status is StrategyStatus.COMPLETED  # type: ignore[union-attr]
    assert h.tick(pnl={GROUP: "-7000"}) == []  # fires once


def test_target_only(roundtrip: bool) -> None:
    h = guard(ACCOUNT, roundtrip, target="10000")
    assert h.tick(pnl={ACCOUNT: "-1000000"}) == []  # no stop-loss set
    out = h.tick(pnl={ACCOUNT: "10000.5"})
    assert isinstance(out[0], Note) and out[0].kind == "target_hit"
    assert isinstance(out[1], SquareOff) and out[1].scope == ACCOUNT
