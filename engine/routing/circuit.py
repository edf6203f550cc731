"""A circuit breaker per account: stop sending to a broker that keeps failing, probe it now and then.

Closed passes everything. A run of `failure_threshold` consecutive failures (the request never
arrived, or its outcome is unknown: 5xx, timeouts) opens it; while open, nothing is sent and routing
looks elsewhere. After `reset_seconds` it is half-open: one trial request goes through, and its
outcome closes the circuit again or reopens it for another period.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.domain.accounts import CircuitState


class CircuitBreaker:
    def __init__(
        self, failure_threshold: int = 5, reset_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_started: float | None = None
        self.last_failure = ""

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - self._opened_at >= self.reset_seconds:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a trial through (0 when it already would)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.reset_seconds - self._clock())

    def would_allow(self) -> bool:
        """Whether `allow()` would let a request through now, without taking the half-open trial."""
        if self.state is CircuitState.CLOSED:
            return True
        return self.state is CircuitState.HALF_OPEN and not self._trial_busy(self._clock())

    def _trial_busy(self, now: float) -> bool:
        return self._trial_started is not None and now - self._trial_started < self.reset_seconds

    def allow(self) -> bool:
        """Whether a request may go now; in half-open only one trial at a time does.

        A trial whose outcome never came back (its caller was cancelled) stops counting after
        `reset_seconds`, so the circuit cannot stay half-open for good.
        """
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        now = self._clock()
        if state is CircuitState.OPEN or self._trial_busy(now):
            return False
        self._trial_started = now
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_started = None

    def record_failure(self, why: str) -> None:
        self._failures += 1
        self.last_failure = why
        self._trial_started = None
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()  # a failed trial reopens for a full period
