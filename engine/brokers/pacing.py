"""Brokers' request limits as sliding windows: the simulators enforce them, the adapters stay under them.

Limits are per user (account) and category (orders, quotes, everything else), as brokers count them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

Window = tuple[int, float]  # at most `count` requests per `seconds`

KITE_LIMITS: dict[str, Sequence[Window]] = {
    "order": ((10, 1), (400, 60), (5000, 86_400)),
    "quote": ((1, 1),),
    "other": ((10, 1),),
}
UPSTOX_LIMITS: dict[str, Sequence[Window]] = {
    "order": ((10, 1), (500, 60), (2000, 1800)),
    "quote": ((50, 1),),
    "other": ((50, 1),),
}


class RateLimits:
    def __init__(self, limits: Mapping[str, Sequence[Window]], clock: Callable[[], datetime]) -> None:
        self._limits = limits
        self._clock = clock
        self._seen: dict[tuple[str, str, int], deque[float]] = {}

    def admit(self, user: str, category: str) -> float | None:
        """Count a request, or return the seconds to wait if any window is full (the request is not counted)."""
        now = self._clock().timestamp()
        windows = self._limits.get(category, ())
        logs = [self._seen.setdefault((user, category, i), deque()) for i in range(len(windows))]
        wait = 0.0
        for (count, seconds), log in zip(windows, logs, strict=True):
            while log and log[0] <= now - seconds:
                log.popleft()
            if len(log) >= count:
                wait = max(wait, log[0] + seconds - now)
        if wait > 0:
            return wait
        for log in logs:
            log.append(now)
        return None


class Pacer:
    """Client-side pacing: waits until a request fits every window, so the broker never answers 429."""

    def __init__(self, limits: Mapping[str, Sequence[Window]], clock: Callable[[], datetime]) -> None:
        self._windows = RateLimits(limits, clock)

    async def acquire(self, category: str) -> None:
        while (wait := self._windows.admit("self", category)) is not None:
            await asyncio.sleep(wait)


def cautious(
    limits: Mapping[str, Sequence[Window]], share: float = 0.8, slack: float = 0.05
) -> dict[str, list[Window]]:
    """Client-side windows a little inside the broker's: network jitter must not turn into 429s."""
    return {
        category: [(max(1, int(count * share)), seconds + slack) for count, seconds in windows]
        for category, windows in limits.items()
    }
