"""schedule: cron in IST on trading days only, late firings skipped, run keys, max_runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.domain import OrderStatus
from engine.domain.sessions import IST
from engine.strategies.base import Place, StrategyStatus
from engine.strategies.params import ScheduleParams
from engine.strategies.schedule import next_firing
from tests.unit.strategies_harness import Harness, actions, notes

ORDER = {
    "account": "a1",
    "instrument": "NSE:INFY",
    "side": "BUY",
    "quantity": 1,
    "product": "CNC",
    "order_type": "MARKET",
}


@pytest.fixture(params=[False, True], ids=["live", "restored-each-step"])
def roundtrip(request: pytest.FixtureRequest) -> bool:
    return request.param


def ist(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=IST)  # type: ignore[misc]


def test_next_firing_skips_a_weekend_and_republic_day() -> None:
    # Friday 2026-01-23 after 09:15; Sat 24, Sun 25 and Mon 26 (Republic Day, an NSE/BSE holiday) are skipped.
    assert next_firing("15 9 * * *", ist(2026, 1, 23, 10, 0)) == ist(2026, 1, 27, 9, 15)
    assert next_firing("15 9 * * *", ist(2026, 1, 23, 9, 0)) == ist(2026, 1, 23, 9, 15)
    # Holi, Tuesday 2026-03-03
    assert next_firing("0 15 * * 2", ist(2026, 2, 25, 0, 0)) == ist(2026, 3, 10, 15, 0)


def test_next_firing_is_in_ist_whatever_the_zone_of_now() -> None:
    fire = next_firing("30 15 * * 1-5", datetime(2026, 1, 27, 9, 0, tzinfo=UTC))  # 14:30 IST
    assert fire == datetime(2026, 1, 27, 10, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="aware"):
        next_firing("30 15 * * 1-5", datetime(2026, 1, 27, 9, 0))


def test_next_firing_gives_up_when_no_firing_is_a_trading_day() -> None:
    assert next_firing("0 10 * * 0", ist(2026, 1, 1, 0, 0)) is None  # Sundays only


def test_runs_on_trading_days_skips_a_late_firing_and_completes_at_max_runs(roundtrip: bool) -> None:
    params = ScheduleParams.model_validate({"cron": "15 9 * * *", "order": ORDER, "max_runs": 2})
    h = Harness("schedule", params, roundtrip=roundtrip)
    h.now = ist(2026, 1, 23, 10, 0)
    out = h.start()
    assert notes(out) == ["scheduled"] and "2026-01-27 09:15 IST" in out[0].message  # type: ignore[union-attr]
    assert h.tick(now=ist(2026, 1, 24, 9, 15)) == []  # Saturday
    assert h.tick(now=ist(2026, 1, 26, 9, 15)) == []  # Republic Day
    assert h.tick(now=ist(2026, 1, 27, 9, 14, 59)) == []
    out = h.tick(now=ist(2026, 1, 27, 9, 15, 40))  # within the grace period
    [place] = actions(out)
    assert isinstance(place, Place) and place.key == "run-202601270915" and place.spec.quantity == 1
    assert h.status("run-202601270915") is OrderStatus.OPEN
    out = h.fill("run-202601270915", 1, "1500")
    assert "run_filled" in notes(out)
    out = h.tick(now=ist(2026, 1, 28, 9, 17))  # the daemon was away: two minutes late is too late
    assert actions(out) == [] and "run_missed" in notes(out)
    assert h.tick(now=ist(2026, 1, 28, 9, 18)) == []
    out = h.tick(now=ist(2026, 1, 29, 9, 15))
    assert [c.key for c in out if isinstance(c, Place)] == ["run-202601290915"]
    finish = h.finish  # the last run's placement was answered
    assert finish is not None and finish.status is StrategyStatus.COMPLETED and "2 time(s)" in finish.message
    assert h.tick(now=ist(2026, 1, 30, 9, 15)) == []


def test_a_refused_run_is_noted_and_the_schedule_goes_on(roundtrip: bool) -> None:
    params = ScheduleParams.model_validate({"cron": "*/5 9-15 * * 1-5", "order": ORDER})
    h = Harness("schedule", params, roundtrip=roundtrip)
    h.now = ist(2026, 1, 27, 9, 58)
    h.start()
    h.refuse[("run-202601271000", "place")] = "insufficient funds"
    out = h.tick(now=ist(2026, 1, 27, 10, 0, 1))
    assert "run_refused" in notes(out) and h.finish is None
    out = h.tick(now=ist(2026, 1, 27, 10, 5))
    assert [c.key for c in out if isinstance(c, Place)] == ["run-202601271005"]
    assert h.tick(now=ist(2026, 1, 27, 10, 5) + timedelta(seconds=30)) == []
