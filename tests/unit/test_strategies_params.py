"""Strategy params: validation names the field, JSON round-trips, and build/restore by kind."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from engine.domain import InstrumentId, OrderType, Product, Side
from engine.errors import InvalidArgument
from engine.risk.states import Scope, ScopeKind, TradingState
from engine.strategies import KINDS, PARAMS, build, restore
from engine.strategies.base import OrderSpec, Place
from engine.strategies.params import (
    DEFAULT_TICK_SIZE,
    BracketParams,
    MtmGuardParams,
    OrderSpecParams,
    ScheduleParams,
    TrailingStopParams,
)
from tests.unit.strategies_harness import T0

ENTRY = {
    "account": "a1",
    "instrument": "NSE:INFY",
    "side": "BUY",
    "quantity": 10,
    "product": "MIS",
    "order_type": "LIMIT",
    "price": "1500.5",
}
VALID: dict[str, dict[str, Any]] = {
    "bracket": {
        "entry": ENTRY,
        "stop_loss": "5",
        "target": "10",
        "trail": {"percent": "0.5"},
        "reentry": {"max_attempts": 2, "cooldown_seconds": 60, "after_reject": True, "after_stop_loss": True},
        "tick_size": "0.05",
    },
    "trailing_stop": {
        "account": "a1",
        "instrument": "NSE:INFY",
        "product": "CNC",
        "position": -20,
        "quantity": 5,
        "trail": {"points": "3"},
    },
    "schedule": {"cron": "15 9 * * 1-5", "order": ENTRY, "max_runs": 3},
    "mtm_guard": {"scope": {"kind": "GROUP", "name": "g1"}, "stop_loss": "5000", "then": "REDUCING"},
}


def errors(model: type[BaseModel], data: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return {tuple(e["loc"]): e["msg"] for e in info.value.errors()}


@pytest.mark.parametrize("kind", list(VALID))
def test_params_round_trip_through_json(kind: str) -> None:
    params = PARAMS[kind].model_validate(VALID[kind])
    again = PARAMS[kind].model_validate(json.loads(json.dumps(params.model_dump(mode="json"))))
    assert again == params


def test_order_spec_params_convert_to_an_order_spec() -> None:
    spec = OrderSpecParams.model_validate(ENTRY).to_spec()
    assert spec == OrderSpec(
        "a1", InstrumentId.parse("NSE:INFY"), Side.BUY, 10, Product.MIS, OrderType.LIMIT, Decimal("1500.5")
    )


def test_defaults_and_derived_values() -> None:
    bracket = BracketParams.model_validate({"entry": ENTRY, "stop_loss": "5", "target": "10"})
    assert bracket.tick_size == DEFAULT_TICK_SIZE and bracket.trail is None and bracket.reentry is None
    trailing = TrailingStopParams.model_validate(VALID["trailing_stop"] | {"quantity": 0})
    assert trailing.protected_quantity == 20 and trailing.closing_side is Side.BUY
    assert ScheduleParams.model_validate(VALID["schedule"] | {"cron": " 15  9 * *  1-5"}).cron == "15 9 * * 1-5"
    guard = MtmGuardParams.model_validate(VALID["mtm_guard"])
    assert guard.scope == Scope(ScopeKind.GROUP, "g1") and guard.then is TradingState.REDUCING


@pytest.mark.parametrize(
    ("entry", "where", "says"),
    [
        ({"order_type": "MARKET"}, ("entry", "price"), "must be empty for MARKET"),
        ({"price": None}, ("entry", "price"), "required for LIMIT"),
        ({"order_type": "SL-M", "price": None}, ("entry", "trigger_price"), "required for SL-M"),
        ({"instrument": "INFY"}, ("entry", "instrument"), "EXCHANGE:SYMBOL"),
        ({"quantity": 0}, ("entry", "quantity"), "greater than 0"),
        ({"account": ""}, ("entry", "account"), "at least 1"),
        ({"side": "HOLD"}, ("entry", "side"), "BUY"),
        ({"price": "-1"}, ("entry", "price"), "greater than 0"),
    ],
)
def test_entry_errors_name_the_field(entry: dict[str, Any], where: tuple[str, ...], says: str) -> None:
    found = errors(BracketParams, {"entry": ENTRY | entry, "stop_loss": "5", "target": "10"})
    assert where in found and says in found[where]


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        ({"stop_loss": "0"}, ("stop_loss",), "greater than 0"),
        ({"target": "nan"}, ("target",), ""),
        ({"trail": {}}, ("trail",), "exactly one of points or percent"),
        ({"trail": {"points": "1", "percent": "1"}}, ("trail",), "exactly one of points or percent"),
        ({"trail": {"points": "-1"}}, ("trail", "points"), "greater than 0"),
        ({"reentry": {"max_attempts": -1}}, ("reentry", "max_attempts"), "greater than or equal to 0"),
        ({"tick_size": "0"}, ("tick_size",), "greater than 0"),
        ({"surprise": 1}, ("surprise",), "Extra inputs"),
    ],
)
def test_bracket_errors_name_the_field(change: dict[str, Any], where: tuple[str, ...], says: str) -> None:
    found = errors(BracketParams, VALID["bracket"] | change)
    assert where in found and says in found[where]


@pytest.mark.parametrize(
    ("model", "change", "where", "says"),
    [
        (TrailingStopParams, {"position": 0}, ("position",), "no open position"),
        (TrailingStopParams, {"quantity": 21}, ("quantity",), "more than the open position of 20"),
        (TrailingStopParams, {"trail": None}, ("trail",), ""),
        (ScheduleParams, {"cron": "15 9 * *"}, ("cron",), "five fields"),
        (ScheduleParams, {"cron": "0 0 0 * * *"}, ("cron",), "five fields"),
        (ScheduleParams, {"cron": "61 9 * * *"}, ("cron",), "not a valid cron"),
        (ScheduleParams, {"cron": "0 9 30 2 *"}, ("cron",), "never fires"),
        (ScheduleParams, {"max_runs": -1}, ("max_runs",), "greater than or equal to 0"),
        (MtmGuardParams, {"scope": {"kind": "GLOBAL"}}, ("scope",), "ACCOUNT or a GROUP"),
        (MtmGuardParams, {"scope": {"kind": "ACCOUNT", "name": ""}}, ("scope",), "needs a name"),
        (MtmGuardParams, {"stop_loss": None}, ("target",), "give a stop_loss, a target or both"),
        (MtmGuardParams, {"stop_loss": "-5"}, ("stop_loss",), "greater than 0"),
        (MtmGuardParams, {"then": "ACTIVE"}, ("then",), "REDUCING or HALTED"),
    ],
)
def test_other_errors_name_the_field(
    model: type[BaseModel], change: dict[str, Any], where: tuple[str, ...], says: str
) -> None:
    kind = next(kind for kind, cls in PARAMS.items() if cls is model)
    found = errors(model, VALID[kind] | change)
    assert where in found and says in found[where]


def test_registry_covers_every_kind() -> None:
    assert set(KINDS) == set(PARAMS) == {"bracket", "trailing_stop", "schedule", "mtm_guard"}
    assert all(cls.kind == kind for kind, cls in KINDS.items())


def test_build_and_restore_take_models_dicts_or_json_text() -> None:
    params = BracketParams.model_validate(VALID["bracket"])
    first = build("bracket", params)
    assert isinstance(first.start(T0)[0], Place)
    again = restore("bracket", json.dumps(params.model_dump(mode="json")), json.dumps(first.dump()))
    assert again.dump() == first.dump()
    assert build("bracket", VALID["bracket"]).dump() == build("bracket", params).dump()
    with pytest.raises(InvalidArgument, match="kind: unknown strategy kind 'grid'"):
        build("grid", {})
    with pytest.raises(ValidationError):
        build("bracket", {"entry": ENTRY})
