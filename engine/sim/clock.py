"""The simulator's clock: the wall clock, shifted on request, so tests can trade "at 10:00 IST" at any hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SimClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._offset = timedelta(0)
        if start is not None:
            self.set(start)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def set(self, at: datetime) -> None:
        """Make now `at` (naive means UTC); time then runs on from there.

        A simulated exchange never rewinds its book: moving the clock back stalls its matching
        until the clock catches up again, so set the time before trading.
        """
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        self._offset = at - datetime.now(UTC)

    def reset(self) -> None:
        self._offset = timedelta(0)
