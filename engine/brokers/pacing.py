"""Brokers' request limits as sliding windows: the simulators enforce them, the adapters stay under them.

Limits are per user (account) and category (orders, quotes, everything else), as brokers count them.
Orders are paced by the account's OrderGate rather than inside the adapter, because their pace is the
account's setting (SEBI: at most 10 a second without exchange approval) and their queue is bounded.

Sliding windows rather than a token bucket: a bucket of N tokens refilled at N a second lets 2N
requests through in some one-second window, which is exactly what a broker counting per second refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime

from engine.errors import ResourceExhausted

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
ORDERS = "order"
QUOTES = "quote"
KITE_QUOTE_BATCH = 500  # instruments per GET /quote
UPSTOX_QUOTE_BATCH = 500  # instrument keys per GET /v2/market-quote/ltp
SEBI_ORDERS_PER_SECOND = 10  # above this an algo needs exchange registration
_SLACK = 0.05  # seconds added to each window, so network jitter never lands a request inside the broker's


class RateLimits:
    def __init__(self, limits: Mapping[str, Sequence[Window]], clock: Callable[[], datetime]) -> None:
        self._limits = limits
        self._clock = clock
        self._seen: dict[tuple[str, str, int], deque[float]] = {}

    def admit(self, user: str, category: str, now: float | None = None) -> float | None:
        """Count a request at `now` (default: the clock's now), or return the seconds to wait if any window is
        full (the request is not counted)."""
        now = self._clock().timestamp() if now is None else now
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

    def recount(self, user: str, category: str, at: float) -> None:
        """Count a request admitted at `at` as made now instead: the latest time it can have reached the other
        side. Now is after every time counted so far (all were admissions or recounts in the past), so the logs
        stay in order. A count already expired is counted again, which only errs on the side of waiting."""
        now = self._clock().timestamp()
        for i in range(len(self._limits.get(category, ()))):
            log = self._seen.setdefault((user, category, i), deque())
            with contextlib.suppress(ValueError):
                log.remove(at)
            log.append(now)


class Pacer:
    """Client-side pacing: waits until a request fits every window, so the broker never answers 429."""

    def __init__(self, limits: Mapping[str, Sequence[Window]], clock: Callable[[], datetime]) -> None:
        self._windows = RateLimits(limits, clock)
        self._clock = clock

    async def acquire(self, category: str) -> float:
        """Wait for room in every window; the time the request was counted at, for `reached`."""
        while True:
            now = self._clock().timestamp()
            wait = self._windows.admit("self", category, now)
            if wait is None:
                return now
            await asyncio.sleep(wait)

    def reached(self, category: str, at: float) -> None:
        """The request counted at `at` has been answered, so it has reached the broker: count it from now."""
        self._windows.recount("self", category, at)


class OrderQueueFull(ResourceExhausted):
    pass


class OrderGate:
    """An account's order pacing with a bounded queue of orders waiting for their turn, served in order."""

    def __init__(self, account: str, windows: Sequence[Window], max_queue: int, clock: Callable[[], datetime]) -> None:
        self.account = account
        self.max_queue = max_queue
        self.waiting = 0
        self._pacer = Pacer({ORDERS: windows}, clock)
        self._fifo = asyncio.Lock()  # asyncio.Lock wakes waiters first come, first served

    @property
    def full(self) -> bool:
        return self.waiting >= self.max_queue

    @contextlib.contextmanager
    def queued(self) -> Iterator[None]:
        """Hold a place in the queue, or raise OrderQueueFull at once (before anything is persisted)."""
        if self.full:
            raise OrderQueueFull(
                f"account {self.account}: {self.waiting} orders are already waiting for their pacing turn"
                f" (order_queue_limit {self.max_queue}); slow down or spread orders over more accounts"
            )
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1

    async def turn(self) -> float:
        """Wait for this order's turn; pass what it returns to `reached` once the broker has answered."""
        async with self._fifo:
            return await self._pacer.acquire(ORDERS)

    def reached(self, turn: float) -> None:
        """Count the order from when the broker answered it rather than from its turn. Orders given turns in
        one burst leave one after another, so the last of ten may reach the broker well after its turn; counted
        from its turn, the next burst could then meet it inside the broker's second (a 429). Counted from its
        answer, which comes after it arrived, no window at the broker can hold more than the pace allows."""
        self._pacer.reached(ORDERS, turn)


def order_windows(per_second: int, broker_limits: Sequence[Window]) -> list[Window]:
    """The account's own rate per second (0: unpaced) plus the broker's longer caps, kept inside both."""
    own = [(per_second, 1 + _SLACK)] if per_second else []
    return own + cautious({ORDERS: [w for w in broker_limits if w[1] > 1]})[ORDERS]


def cautious(
    limits: Mapping[str, Sequence[Window]], share: float = 0.8, slack: float = _SLACK
) -> dict[str, list[Window]]:
    """Client-side windows a little inside the broker's: network jitter must not turn into 429s.

    The headroom is `share` of the count; a limit too small to shrink (Kite's one quote a second)
    gets it as a longer window instead, because a request delayed on its way would otherwise land
    within the same broker second as the next one.
    """
    return {category: [_inside(w, share, slack) for w in windows] for category, windows in limits.items()}


def _inside(window: Window, share: float, slack: float) -> Window:
    count, seconds = window
    fewer = int(count * share)
    if fewer >= 1 and fewer < count:
        return fewer, seconds + slack
    return count, seconds / share + slack
