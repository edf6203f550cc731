"""Bracket: entry, OCO protection sized to the fills, trailing, failures and re-entry, through scripted paths."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from engine.domain import OrderStatus, OrderType, Side
from engine.strategies.base import Cancel, Finish, Modify, OrderUpdate, Place, Refused, StrategyStatus
from engine.strategies.params import BracketParams
from tests.unit.strategies_harness import INFY, T0, Harness, actions, notes


@pytest.fixture(params=[False, True], ids=["live", "restored-each-step"])
def roundtrip(request: pytest.FixtureRequest) -> bool:
    return request.param


def bracket(side: str = "BUY", order_type: str = "MARKET", price: str | None = None, **extra: Any) -> BracketParams:
    entry = {
        "account": "a1",
        "instrument": "NSE:INFY",
        "side": side,
        "quantity": 10,
        "product": "MIS",
        "order_type": order_type,
        "price": price,
    }
    return BracketParams.model_validate({"entry": entry, "stop_loss": "5", "target": "10", **extra})


def started(params: BracketParams, roundtrip: bool) -> Harness:
    h = Harness("bracket", params, roundtrip=roundtrip)
    out = h.start()
    assert isinstance(out[0], Place) and out[0].key == "entry-1"
    assert out[0].spec.instrument == INFY and out[0].spec.quantity == 10
    return h


def test_full_fill_then_target_cancels_the_stop_and_completes(roundtrip: bool) -> None:
    h = started(bracket(), roundtrip)
    out = h.fill("entry-1", 10, "100")
    placed = {c.key: c.spec for c in out if isinstance(c, Place)}
    stop, target = placed["stop-1-1"], placed["target-1-1"]
    assert (stop.side, stop.quantity, stop.order_type, stop.trigger_price) == (Side.SELL, 10, OrderType.SL_M, 95)
    assert (target.side, target.quantity, target.order_type, target.price) == (Side.SELL, 10, OrderType.LIMIT, 110)
    assert "protection_placed" in notes(out)

    out = h.fill("target-1-1", 10, "110")
    assert Cancel("stop-1-1") in out
    assert h.status("stop-1-1") is OrderStatus.CANCELLED
    finish = h.finish
    assert finish is not None and finish.status is StrategyStatus.COMPLETED and "target" in finish.message
    assert h.tick("120") == []  # finished: nothing more


def test_levels_are_rounded_to_the_tick_size(roundtrip: bool) -> None:
    h = started(bracket(tick_size="0.05"), roundtrip)
    out = h.fill("entry-1", 10, "100.03")
    placed = {c.key: c.spec for c in out if isinstance(c, Place)}
    assert placed["stop-1-1"].trigger_price == Decimal("95.05")
    assert placed["target-1-1"].price == Decimal("110.05")


def test_short_bracket_levels_are_mirrored(roundtrip: bool) -> None:
    h = started(bracket(side="SELL"), roundtrip)
    out = h.fill("entry-1", 10, "100")
    placed = {c.key: c.spec for c in out if isinstance(c, Place)}
    assert placed["stop-1-1"].side is Side.BUY and placed["stop-1-1"].trigger_price == 105
    assert placed["target-1-1"].side is Side.BUY and placed["target-1-1"].price == 90


def test_partial_entry_fills_resize_the_protection(roundtrip: bool) -> None:
    h = started(bracket(order_type="LIMIT", price="100"), roundtrip)
    out = h.fill("entry-1", 4, "100")
    assert {c.key: c.spec.quantity for c in out if isinstance(c, Place)} == {"stop-1-1": 4, "target-1-1": 4}

    out = h.fill("entry-1", 6, "101")  # average now 100.6: both levels follow it
    assert Modify("stop-1-1", quantity=10, trigger_price=Decimal("95.60")) in out
    assert Modify("target-1-1", quantity=10, price=Decimal("110.60")) in out
    assert h.orders["stop-1-1"].quantity == 10 and h.orders["target-1-1"].quantity == 10

    h.fill("stop-1-1", 10, "95.5")
    assert h.status("target-1-1") is OrderStatus.CANCELLED
    assert h.finish is not None and "stop-loss" in h.finish.message


def test_stop_fills_partly_then_fully_and_the_target_shrinks_then_is_cancelled(roundtrip: bool) -> None:
    h = started(bracket(), roundtrip)
    h.fill("entry-1", 10, "100")
    out = h.fill("stop-1-1", 4, "95")
    assert actions(out) == [Modify("target-1-1", quantity=6)]
    assert "stop_filled" in notes(out)
    out = h.fill("stop-1-1", 6, "95")
    assert Cancel("target-1-1") in out
    finish = h.finish
    assert finish is not None and finish.status is StrategyStatus.COMPLETED and "stop-loss" in finish.message


def test_an_exit_fill_cancels_the_rest_of_the_entry(roundtrip: bool) -> None:
    h = started(bracket(order_type="LIMIT", price="100"), roundtrip)
    h.fill("entry-1", 4, "100")
    out = h.fill("target-1-1", 4, "110")
    assert Cancel("entry-1") in out and Cancel("stop-1-1") in out
    assert h.finish is not None and h.finish.status is StrategyStatus.COMPLETED


def test_entry_fills_racing_the_entry_cancel_are_protected_afresh(roundtrip: bool) -> None:
    h = started(bracket(order_type="LIMIT", price="100"), roundtrip)
    h.fill("entry-1", 4, "100")
    h.refuse[("entry-1", "cancel")] = "order is being filled"
    h.fill("target-1-1", 4, "110")  # closes the 4; the entry cancel is refused
    assert h.status("stop-1-1") is OrderStatus.CANCELLED and h.finish is None
    out = h.fill("entry-1", 6, "100")  # then more of the entry fills
    placed = {c.key: c.spec.quantity for c in out if isinstance(c, Place)}
    assert placed == {"stop-1-2": 6, "target-1-2": 6}


def test_trailing_by_points_only_tightens_by_whole_ticks(roundtrip: bool) -> None:
    h = started(bracket(trail={"points": "6"}), roundtrip)
    assert h.strategy.watches().instruments == frozenset({INFY})
    h.fill("entry-1", 10, "100")
    assert h.orders["stop-1-1"].trigger_price == 95  # the trail (94) is looser than the stop-loss
    assert h.tick("101") == []  # 95 is where the stop is already
    assert actions(h.tick("101.5")) == [Modify("stop-1-1", trigger_price=Decimal("95.50"))]
    assert actions(h.tick("102.02")) == [Modify("stop-1-1", trigger_price=Decimal("96.00"))]
    assert h.tick("102.04") == []  # 96.04 floors to 96.00: less than a tick
    assert h.tick("100") == []  # never loosens
    assert actions(h.tick("103")) == [Modify("stop-1-1", trigger_price=Decimal("97.00"))]
    assert h.orders["stop-1-1"].trigger_price == 97
    h.fill("stop-1-1", 10, "97")
    assert h.finish is not None and h.finish.status is StrategyStatus.COMPLETED


def test_a_trail_tighter_than_the_stop_loss_sets_the_first_stop(roundtrip: bool) -> None:
    h = started(bracket(trail={"points": "3"}), roundtrip)
    h.fill("entry-1", 10, "100")
    assert h.orders["stop-1-1"].trigger_price == 97


def test_trailing_by_percent_for_a_short_position(roundtrip: bool) -> None:
    h = started(bracket(side="SELL", trail={"percent": "1"}), roundtrip)
    h.fill("entry-1", 10, "200")
    assert h.orders["stop-1-1"].trigger_price == 202  # 1% above 200, tighter than 205
    assert actions(h.tick("198")) == [Modify("stop-1-1", trigger_price=Decimal("200.00"))]  # 199.98 up to the tick
    assert actions(h.tick("196")) == [Modify("stop-1-1", trigger_price=Decimal("198.00"))]  # 197.96
    assert h.tick("199") == []


def test_one_modify_at_a_time_while_the_last_is_unanswered(roundtrip: bool) -> None:
    h = started(bracket(trail={"points": "3"}), roundtrip)
    h.fill("entry-1", 10, "100")
    h.hold_modifies = True
    assert actions(h.tick("101")) == [Modify("stop-1-1", trigger_price=Decimal("98.00"))]
    assert h.tick("102") == []
    stale = h.orders["stop-1-1"]  # an update still showing the old trigger does not answer the request
    assert h.feed(OrderUpdate("stop-1-1", replace(stale, trigger_price=Decimal("97")))) == []
    assert h.tick("104") == []
    out = h.release()  # the answer arrives: catch up with the best price at once
    assert actions(out) == [Modify("stop-1-1", trigger_price=Decimal("101.00"))]


def test_a_refused_trail_move_is_noted_and_not_repeated(roundtrip: bool) -> None:
    h = started(bracket(trail={"points": "3"}), roundtrip)
    h.fill("entry-1", 10, "100")
    h.refuse[("stop-1-1", "modify")] = "trading state HALTED"
    out = h.tick("101")
    assert "trail_refused" in notes(out) and h.finish is None
    assert h.tick("101") == []  # the same level is not asked again
    del h.refuse[("stop-1-1", "modify")]
    assert actions(h.tick("102")) == [Modify("stop-1-1", trigger_price=Decimal("99.00"))]


def test_a_refused_protective_order_fails_loudly(roundtrip: bool) -> None:
    h = started(bracket(), roundtrip)
    h.refuse[("stop-1-1", "place")] = "price band"
    out = h.fill("entry-1", 10, "100")
    finish = h.finish
    assert finish is not None and finish.status is StrategyStatus.FAILED
    assert "price band" in finish.message and "unprotected" in finish.message
    assert "failed" in notes(out)


def test_a_protective_order_cancelled_by_someone_else_fails_loudly(roundtrip: bool) -> None:
    h = started(bracket(), roundtrip)
    h.fill("entry-1", 10, "100")
    h.end("stop-1-1", OrderStatus.CANCELLED, "cancelled by the user")
    finish = h.finish
    assert finish is not None and finish.status is StrategyStatus.FAILED and "stop-1-1" in finish.message


def test_both_sides_filling_is_reported_as_an_over_close(roundtrip: bool) -> None:
    h = started(bracket(), roundtrip)
    h.fill("entry-1", 10, "100")
    h.refuse[("stop-1-1", "cancel")] = "already triggered"
    out = h.fill("target-1-1", 10, "110")
    assert "cancel_refused" in notes(out) and h.finish is None
    h.fill("stop-1-1", 10, "95")
    finish = h.finish
    assert finish is not None and finish.status is StrategyStatus.FAILED and "closed 10 more" in finish.message


@pytest.mark.parametrize(("status", "expected"), [("REJECTED", "FAILED"), ("CANCELLED", "COMPLETED")])
def test_an_unfilled_entry_without_reentry_ends(roundtrip: bool, status: str, expected: str) -> None:
    h = started(bracket(), roundtrip)
    h.end("entry-1", OrderStatus(status), "RMS: margin")
    finish = h.finish
    assert finish is not None and finish.status == StrategyStatus(expected) and "nothing filled" in finish.message


def test_reentry_after_reject_waits_the_cooldown_and_stops_at_max_attempts(roundtrip: bool) -> None:
    rule = {"max_attempts": 2, "cooldown_seconds": 30, "after_reject": True}
    h = Harness("bracket", bracket(reentry=rule), roundtrip=roundtrip)
    h.refuse[("entry-1", "place")] = "market closed"
    h.refuse[("entry-2", "place")] = "market closed"
    out = h.start()
    assert "reentry_scheduled" in notes(out)
    assert h.tick(now=T0) == []  # the cool-down starts at the first tick
    assert h.tick(now=T0 + timedelta(seconds=29)) == []
    out = h.tick(now=T0 + timedelta(seconds=30))
    assert [c.key for c in out if isinstance(c, Place)] == ["entry-2"]
    assert "reentry_scheduled" in notes(out)  # refused again
    h.tick(now=T0 + timedelta(seconds=31))
    out = h.tick(now=T0 + timedelta(seconds=61))
    assert [c.key for c in out if isinstance(c, Place)] == ["entry-3"]
    h.end("entry-3", OrderStatus.REJECTED, "RMS")
    finish = h.finish
    assert finish is not None and finish.status is StrategyStatus.FAILED and "entry-3" in finish.message
    assert h.tick(now=T0 + timedelta(seconds=200)) == []


def test_reentry_after_stop_loss_uses_new_keys_and_then_completes_on_target(roundtrip: bool) -> None:
    rule = {"max_attempts": 1, "cooldown_seconds": 0, "after_stop_loss": True}
    h = started(bracket(reentry=rule), roundtrip)
    h.fill("entry-1", 10, "100")
    out = h.fill("stop-1-1", 10, "95")
    assert "reentry_scheduled" in notes(out) and h.finish is None
    assert h.fill("target-1-1", 1, "110") == []  # a late update of the finished attempt changes nothing
    out = h.tick(now=T0 + timedelta(seconds=1))
    assert [c.key for c in out if isinstance(c, Place)] == ["entry-2"]
    out = h.fill("entry-2", 10, "96")
    placed = {c.key: c.spec for c in out if isinstance(c, Place)}
    assert placed["stop-2-1"].trigger_price == 91 and placed["target-2-1"].price == 106
    h.fill("stop-2-1", 10, "91")  # attempts used up: the second stop-out ends it
    finish = h.finish
    assert finish is not None and finish.status is StrategyStatus.COMPLETED and "attempt 2" in finish.message


def test_no_reentry_after_a_target_exit(roundtrip: bool) -> None:
    rule = {"max_attempts": 3, "after_stop_loss": True, "after_reject": True}
    h = started(bracket(reentry=rule), roundtrip)
    h.fill("entry-1", 10, "100")
    h.fill("target-1-1", 10, "110")
    assert h.finish is not None and h.finish.status is StrategyStatus.COMPLETED


def test_restored_runs_give_the_same_commands_as_one_live_run() -> None:
    """The same scripted path, once live and once dumped and restored before every input."""
    logs = []
    for roundtrip in (False, True):
        h = started(bracket(order_type="LIMIT", price="100", trail={"points": "2"}), roundtrip)
        h.fill("entry-1", 3, "100")
        h.tick("101")
        h.fill("entry-1", 7, "100.5")
        h.tick("104")
        h.tick("103")
        h.fill("stop-1-1", 5, "102")
        h.fill("stop-1-1", 5, "102")
        logs.append(h.log)
    assert logs[0] == logs[1]
    assert any(isinstance(c, Finish) for c in logs[0])


def test_fills_arriving_together_give_one_resize_to_what_is_still_open(roundtrip: bool) -> None:
    """An entry fill and a target fill in one step: judged one by one, the first would resize the stop to the
    whole entry and, that resize awaited, the second could not take it back: the stop would over-close."""
    h = started(bracket(), roundtrip)
    h.fill("entry-1", 5, "100")  # stop-1-1 and target-1-1 for 5
    out = h.feed_step([h.filled("entry-1", 5, "100"), h.filled("target-1-1", 5, "110")])
    modifies = [c for c in out if isinstance(c, Modify)]
    assert [m.key for m in modifies].count("stop-1-1") <= 1
    assert h.orders["stop-1-1"].quantity == 5  # the 5 still open, never the entry's 10
    assert [c.spec.quantity for c in out if isinstance(c, Place) and c.key == "target-1-2"] == [5]


def test_a_refused_resize_after_the_fill_that_caused_it_does_not_fail(roundtrip: bool) -> None:
    """The runner feeds a refused order's latest state before the Refused: a target resize refused because the
    target has just filled is a race, not a failure."""
    h = started(bracket(), roundtrip)
    h.fill("entry-1", 5, "100")
    h.hold_modifies = True
    h.fill("entry-1", 5, "100")  # asks both legs to 10, answers held back
    h.orders["target-1-1"] = replace(h.orders["target-1-1"], quantity=5)  # the target's resize will be refused
    out = h.feed_step([h.filled("target-1-1", 5, "110"), Refused("target-1-1", "modify", "order is complete")])
    assert h.finish is None
    assert [c.spec.quantity for c in out if isinstance(c, Place) and c.key == "target-1-2"] == [5]


def test_a_failure_with_nothing_open_cancels_every_working_order(roundtrip: bool) -> None:
    """Both legs filling (more closed than was open) fails the bracket; the rest of the entry and the leg still
    working must not be left to trade unmanaged."""
    h = started(bracket(), roundtrip)
    h.fill("entry-1", 5, "100")
    h.refuse[("stop-1-1", "cancel")] = "already triggered"
    out = h.feed_step([h.filled("stop-1-1", 5, "95"), h.filled("target-1-1", 3, "110")])
    finish = h.finish
    assert finish is not None and finish.status is StrategyStatus.FAILED
    cancels = [c.key for c in actions(out) if isinstance(c, Cancel)]
    assert "entry-1" in cancels and "target-1-1" in cancels
    assert h.status("entry-1") is OrderStatus.CANCELLED and h.status("target-1-1") is OrderStatus.CANCELLED


def test_a_failure_with_a_position_open_cancels_the_entry_and_keeps_the_protection(roundtrip: bool) -> None:
    h = started(bracket(), roundtrip)
    h.refuse[("target-1-1", "place")] = "price band"
    out = h.fill("entry-1", 5, "100")
    finish = h.finish
    assert finish is not None and finish.status is StrategyStatus.FAILED
    assert Cancel("entry-1") in out and Cancel("stop-1-1") not in out
    assert h.status("stop-1-1") is OrderStatus.OPEN


def test_a_failure_leaves_no_pair_of_unlinked_exits_that_could_close_more_than_is_open(roundtrip: bool) -> None:
    """The stop's resize after a target fill is refused: the bracket fails with 6 open, a stop for 10 and the
    rest of the target for 6. Unlinked, both could fill (short 10): only the target, which fits, may stay."""
    h = started(bracket(), roundtrip)
    h.fill("entry-1", 10, "100")
    h.refuse[("stop-1-1", "modify")] = "timed out"
    out = h.fill("target-1-1", 4, "110")
    finish = h.finish
    assert finish is not None and finish.status is StrategyStatus.FAILED
    assert Cancel("stop-1-1") in out and Cancel("target-1-1") not in out
    assert "unprotected: only target-1-1 stays" in finish.message
    assert h.status("stop-1-1") is OrderStatus.CANCELLED


def test_a_refusal_is_judged_after_the_updates_that_arrive_with_it(roundtrip: bool) -> None:
    """The runner may hand a refusal before an update of the same step; the fill in that update must count."""
    h = started(bracket(), roundtrip)
    h.fill("entry-1", 5, "100")
    h.hold_modifies = True
    h.fill("entry-1", 5, "100")  # asks both legs to 10, answers held back
    h.orders["target-1-1"] = replace(h.orders["target-1-1"], quantity=5)
    out = h.feed_step([Refused("target-1-1", "modify", "order is complete"), h.filled("target-1-1", 5, "110")])
    assert h.finish is None
    assert [c.spec.quantity for c in out if isinstance(c, Place) and c.key == "target-1-2"] == [5]
