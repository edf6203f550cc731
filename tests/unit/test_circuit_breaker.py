"""The per-account circuit breaker, driven by a hand-set clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain.accounts import CircuitState
from engine.routing import CircuitBreaker

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def opened(clock: FakeClock, threshold: int = 3, reset: float = 10.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=threshold, reset_seconds=reset, clock=clock)
    for n in range(threshold):
        breaker.record_failure(f"HTTP 503 #{n}")
    assert breaker.state is OPEN
    return breaker


def test_starts_closed(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    assert breaker.state is CLOSED
    assert breaker.allow() and breaker.allow()
    assert breaker.retry_in() == 0.0
    assert breaker.consecutive_failures == 0
    assert (breaker.failure_threshold, breaker.reset_seconds) == (5, 10.0)


@pytest.mark.parametrize("threshold", [0, -1])
def test_threshold_must_be_positive(threshold: int) -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=threshold)


@pytest.mark.parametrize("threshold", [1, 2, 3, 5])
def test_opens_after_exactly_threshold_consecutive_failures(clock: FakeClock, threshold: int) -> None:
    breaker = CircuitBreaker(failure_threshold=threshold, reset_seconds=10, clock=clock)
    for n in range(1, threshold):
        breaker.record_failure("timeout")
        assert breaker.state is CLOSED, f"opened after {n} of {threshold} failures"
        assert breaker.allow()
        assert breaker.consecutive_failures == n
    breaker.record_failure("HTTP 502")
    assert breaker.state is OPEN
    assert not breaker.allow()
    assert breaker.consecutive_failures == threshold
    assert breaker.last_failure == "HTTP 502"
    assert breaker.retry_in() == 10.0


def test_a_success_resets_the_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)
    breaker.record_failure("timeout")
    breaker.record_failure("timeout")
    breaker.record_success()
    assert breaker.consecutive_failures == 0
    breaker.record_failure("timeout")
    breaker.record_failure("timeout")
    assert breaker.state is CLOSED, "failures before the success still counted"
    breaker.record_failure("timeout")
    assert breaker.state is OPEN


def test_open_refuses_until_the_reset_period_passes(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.tick(4)
    assert breaker.retry_in() == pytest.approx(6.0)
    clock.tick(5.999)
    assert breaker.state is OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(0.001)
    clock.tick(0.001)
    assert breaker.state is HALF_OPEN
    assert breaker.retry_in() == 0.0


def test_half_open_lets_exactly_one_trial_through(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.tick(10)
    assert breaker.allow(), "the trial"
    assert not breaker.allow(), "a second request while the trial runs"
    clock.tick(9.9)
    assert not breaker.allow(), "still one trial at a time while it may be running"
    assert breaker.state is HALF_OPEN


def test_trial_success_closes(clock: FakeClock) -> None:
    breaker = opened(clock, threshold=2)
    clock.tick(10)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.allow() and breaker.allow()
    assert breaker.retry_in() == 0.0
    breaker.record_failure("timeout")
    assert breaker.state is CLOSED, "closing starts a fresh count"
    breaker.record_failure("timeout")
    assert breaker.state is OPEN


def test_trial_failure_reopens_for_a_full_period(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.tick(10)
    assert breaker.allow()
    clock.tick(2)  # the trial takes 2 s to fail
    breaker.record_failure("connection refused")
    assert breaker.state is OPEN
    assert not breaker.allow()
    assert breaker.last_failure == "connection refused"
    assert breaker.retry_in() == pytest.approx(10.0), "reopened from the trial's failure, not the first opening"
    clock.tick(9.5)
    assert breaker.state is OPEN
    assert not breaker.allow()
    clock.tick(0.5)
    assert breaker.state is HALF_OPEN
    assert breaker.allow(), "a new trial after the new period"
    assert not breaker.allow()


@settings(max_examples=200, deadline=None)
@given(threshold=st.integers(1, 5), outcomes=st.lists(st.booleans(), max_size=30))
def test_with_a_frozen_clock_open_means_threshold_failures_since_the_last_success(
    threshold: int, outcomes: list[bool]
) -> None:
    breaker = CircuitBreaker(failure_threshold=threshold, reset_seconds=10, clock=FakeClock())
    run = 0
    for ok in outcomes:
        if ok:
            breaker.record_success()
            run = 0
        else:
            breaker.record_failure("5xx")
            run += 1
        assert breaker.consecutive_failures == run
        assert breaker.state is (OPEN if run >= threshold else CLOSED)
        assert breaker.allow() == (run < threshold)


def test_a_trial_that_never_reports_stops_blocking_after_a_period() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, reset_seconds=10, clock=clock)
    breaker.record_failure("down")
    clock.tick(10)
    assert breaker.allow()  # the trial; its caller is then cancelled and never reports
    assert not breaker.allow()
    clock.tick(9.9)
    assert not breaker.allow()
    clock.tick(0.1)
    assert breaker.allow(), "a lost trial must not keep the circuit half-open for good"
