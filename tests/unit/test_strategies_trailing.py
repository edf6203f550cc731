"""trailing_stop: an SL-M on the closing side of an existing position, trailed, done when it fills."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine.domain import OrderStatus, OrderType, Side
from engine.strategies.base import Modify, Place, StrategyStatus
from engine.strategies.params import TrailingStopParams
from tests.unit.strategies_harness import INFY, Harness, actions, notes


@pytest.fixture(params=[False, True], ids=["live", "restored-each-step"])
def roundtrip(request: pytest.FixtureRequest) -> bool:
    return request.param


def trailing(position: int, quantity: int = 0, **trail: Any) -> TrailingStopParams:
    return TrailingStopParams.model_validate(
        {"account": "a1", "instrument": "NSE:INFY", "product": "CNC", "position": position, "quantity": quantity}
        | {"trail": trail}
    )


def started(params: TrailingStopParams, roundtrip: bool) -> Harness:
    h = Harness("trailing_stop", params, roundtrip=roundtrip)
    assert h.start() == []
    assert h.strategy.watches().instruments == frozenset({INFY})
    return h


def test_long_position_trailed_by_points_until_the_stop_fills(roundtrip: bool) -> None:
    h = started(trailing(10, points="2"), roundtrip)
    assert h.tick() == []  # no price yet: nothing to place against
    out = h.tick("100")
    [place] = actions(out)
    assert isinstance(place, Place) and place.key == "stop-1"
    spec = place.spec
    assert (spec.side, spec.quantity, spec.order_type, spec.trigger_price) == (Side.SELL, 10, OrderType.SL_M, 98)
    assert actions(h.tick("101")) == [Modify("stop-1", trigger_price=Decimal("99.00"))]
    assert h.tick("100.5") == []  # never loosens
    assert h.tick("101.04") == []  # less than a tick
    assert actions(h.tick("101.05")) == [Modify("stop-1", trigger_price=Decimal("99.05"))]
    out = h.fill("stop-1", 4, "99")
    assert "stop_filled" in notes(out) and h.finish is None
    h.fill("stop-1", 6, "99")
    finish = h.finish
    assert finish is not None and finish.status is StrategyStatus.COMPLETED


def test_part_of_a_short_position_trailed_by_percent(roundtrip: bool) -> None:
    h = started(trailing(-5, quantity=3, percent="1"), roundtrip)
    [place] = actions(h.tick("200"))
    assert isinstance(place, Place)
    assert (place.spec.side, place.spec.quantity, place.spec.trigger_price) == (Side.BUY, 3, 202)
    assert actions(h.tick("190")) == [Modify("stop-1", trigger_price=Decimal("191.90"))]
    assert h.tick("195") == []


def test_a_refused_stop_fails_loudly(roundtrip: bool) -> None:
    h = Harness("trailing_stop", trailing(10, points="2"), roundtrip=roundtrip)
    h.refuse[("stop-1", "place")] = "HALTED"
    h.start()
    h.tick("100")
    finish = h.finish
    assert finish is not None and finish.status is StrategyStatus.FAILED and "unprotected" in finish.message


def test_a_stop_cancelled_by_someone_else_fails_loudly(roundtrip: bool) -> None:
    h = started(trailing(10, points="2"), roundtrip)
    h.tick("100")
    h.end("stop-1", OrderStatus.CANCELLED, "by the user")
    finish = h.finish
    assert finish is not None and finish.status is StrategyStatus.FAILED and "by the user" in finish.message


def test_a_refused_trail_move_keeps_the_stop_and_tries_a_better_level(roundtrip: bool) -> None:
    h = started(trailing(10, points="2"), roundtrip)
    h.tick("100")
    h.refuse[("stop-1", "modify")] = "price band"
    assert "trail_refused" in notes(h.tick("101"))
    assert h.tick("101") == []
    h.refuse.clear()
    assert actions(h.tick("102")) == [Modify("stop-1", trigger_price=Decimal("100.00"))]
    assert h.finish is None
