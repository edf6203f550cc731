"""Order-lifecycle strategies as pure logic: brackets, trailing stops, re-entry, schedules and MTM guards.

`build` makes a new instance from its params (a model or its JSON form); the runner then calls
`start(now)` once and `on(input)` for every input, executing the commands returned. `restore` rebuilds
an instance from the stored params and `dump()` state, so feeding it the next input gives the same
commands as the instance that was dumped would have.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from engine.errors import InvalidArgument
from engine.strategies.base import Strategy
from engine.strategies.bracket import BracketStrategy
from engine.strategies.common import StateStrategy
from engine.strategies.mtm import MtmGuardStrategy
from engine.strategies.params import BracketParams, MtmGuardParams, ScheduleParams, TrailingStopParams
from engine.strategies.schedule import ScheduleStrategy
from engine.strategies.trailing import TrailingStopStrategy

__all__ = ["KINDS", "PARAMS", "build", "restore"]

KINDS: dict[str, type[StateStrategy[Any, Any]]] = {
    cls.kind: cls for cls in (BracketStrategy, TrailingStopStrategy, ScheduleStrategy, MtmGuardStrategy)
}
PARAMS: dict[str, type[BaseModel]] = {
    "bracket": BracketParams,
    "trailing_stop": TrailingStopParams,
    "schedule": ScheduleParams,
    "mtm_guard": MtmGuardParams,
}


def _kind(kind: str) -> type[StateStrategy[Any, Any]]:
    if kind not in KINDS:
        raise InvalidArgument("kind", f"unknown strategy kind {kind!r}; known: {', '.join(KINDS)}")
    return KINDS[kind]


def _loaded(data: str | Mapping[str, Any]) -> Any:
    return json.loads(data) if isinstance(data, str) else data


def build(kind: str, params: BaseModel | Mapping[str, Any]) -> Strategy:
    """A new, not yet started instance; params that do not validate raise pydantic's ValidationError."""
    cls = _kind(kind)
    return cls(PARAMS[kind].model_validate(params))


def restore(kind: str, params_json: str | Mapping[str, Any], state_json: str | Mapping[str, Any]) -> Strategy:
    """The instance whose `params.model_dump(mode="json")` and `dump()` these are (as JSON text or decoded)."""
    cls = _kind(kind)
    return cls.restore(PARAMS[kind].model_validate(_loaded(params_json)), _loaded(state_json))
