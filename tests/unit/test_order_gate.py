"""Order pacing: sliding windows, the account's bounded order queue, and turns served in order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from engine.brokers import pacing
from engine.brokers.pacing import (
    KITE_LIMITS,
    ORDERS,
    OrderGate,
    OrderQueueFull,
    RateLimits,
    Window,
    cautious,
    order_windows,
)
from engine.errors import ResourceExhausted

T0 = datetime(2026, 11, 23, 4, 0, 0, tzinfo=UTC)
_real_sleep = asyncio.sleep


class ManualClock:
    """Moves only when told to (or when the patched sleep below sleeps)."""

    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []  # what the pacer asked to sleep, when the sleep is patched

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def seconds(self) -> float:
        return (self.now - T0).total_seconds()


class LoopClock:
    """Real (event loop) time as a datetime; remembers its last reading, i.e. the time of the last admission."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()
        self.last = T0

    def __call__(self) -> datetime:
        self.last = T0 + timedelta(seconds=self._loop.time() - self._start)
        return self.last


def assert_within_windows(times: Sequence[float], windows: Sequence[Window]) -> None:
    """No `count + 1` admissions ever fall inside one window of `seconds`."""
    ordered = sorted(times)
    for count, seconds in windows:
        for first, later in zip(ordered, ordered[count:], strict=False):
            assert later - first >= seconds - 1e-6, (count, seconds, ordered)


# --- windows -------------------------------------------------------------------------------------


def test_order_windows_keeps_own_pace_and_broker_long_caps_inside() -> None:
    assert order_windows(8, [(10, 1), (400, 60), (5000, 86400)]) == [(8, 1.05), (320, 60.05), (4000, 86400.05)]


def test_order_windows_unpaced_gives_only_broker_long_windows() -> None:
    assert order_windows(0, [(10, 1), (400, 60), (5000, 86400)]) == [(320, 60.05), (4000, 86400.05)]
    assert order_windows(0, [(10, 1)]) == []


def test_cautious_shrinks_counts_and_widens_windows() -> None:
    assert cautious(KITE_LIMITS) == {
        "order": [(8, 1.05), (320, 60.05), (4000, 86400.05)],
        "quote": [(1, 1.3)],  # one request cannot shrink: its window stretches by 1/share instead
        "other": [(8, 1.05)],
    }
    assert cautious({ORDERS: [(10, 2)]}, share=0.5, slack=0.5) == {ORDERS: [(5, 2.5)]}
    assert cautious({ORDERS: [(1, 1), (2, 1)]}, share=0.8, slack=0.05) == {ORDERS: [(1, 1.3), (1, 1.05)]}


def test_rate_limits_refuse_with_the_wait_and_do_not_count_the_refused() -> None:
    clock = ManualClock()
    limits = RateLimits({ORDERS: [(2, 1)]}, clock)
    assert limits.admit("u", ORDERS) is None
    assert limits.admit("u", ORDERS) is None
    assert limits.admit("u", ORDERS) == pytest.approx(1.0)
    clock.tick(0.25)
    assert limits.admit("u", ORDERS) == pytest.approx(0.75)
    clock.tick(0.75)
    assert limits.admit("u", ORDERS) is None  # both earlier ones left the window; refusals were never counted
    assert limits.admit("u", ORDERS) is None
    assert limits.admit("u", ORDERS) == pytest.approx(1.0)


def test_rate_limits_wait_is_the_longest_of_the_full_windows() -> None:
    clock = ManualClock()
    limits = RateLimits({ORDERS: [(1, 1), (2, 10)]}, clock)
    assert limits.admit("u", ORDERS) is None
    clock.tick(1)
    assert limits.admit("u", ORDERS) is None
    clock.tick(1)
    assert limits.admit("u", ORDERS) == pytest.approx(8.0)  # the 10 s window, from t=0


def test_rate_limits_count_users_and_categories_apart() -> None:
    clock = ManualClock()
    limits = RateLimits({ORDERS: [(1, 1)], "quote": [(1, 1)]}, clock)
    assert limits.admit("a", ORDERS) is None
    assert limits.admit("b", ORDERS) is None
    assert limits.admit("a", "quote") is None
    assert limits.admit("a", "unlimited") is None
    assert limits.admit("a", "unlimited") is None
    assert limits.admit("a", ORDERS) == pytest.approx(1.0)


# --- the queue -----------------------------------------------------------------------------------


def test_queued_counts_waiting_while_inside() -> None:
    gate = OrderGate("acct-1", [(2, 0.2)], max_queue=3, clock=ManualClock())
    assert gate.waiting == 0
    with gate.queued():
        assert gate.waiting == 1
        with gate.queued():
            assert gate.waiting == 2
        assert gate.waiting == 1
    assert gate.waiting == 0


def test_queued_releases_its_place_when_the_order_fails() -> None:
    gate = OrderGate("acct-1", [(2, 0.2)], max_queue=1, clock=ManualClock())
    with pytest.raises(RuntimeError), gate.queued():
        raise RuntimeError("broker down")
    assert gate.waiting == 0
    with gate.queued():
        assert gate.waiting == 1


def test_full_queue_refuses_naming_account_and_limit_without_counting() -> None:
    gate = OrderGate("acct-7", [(2, 0.2)], max_queue=2, clock=ManualClock())
    with gate.queued(), gate.queued():
        for _ in range(2):
            with pytest.raises(OrderQueueFull) as refused, gate.queued():
                pytest.fail("a full queue must not let the order in")
            assert gate.waiting == 2
        assert isinstance(refused.value, ResourceExhausted)
        assert "acct-7" in str(refused.value)
        assert "order_queue_limit 2" in str(refused.value)
        assert "2 orders are already waiting" in str(refused.value)
    assert gate.waiting == 0
    with gate.queued():  # room again once the others left
        assert gate.waiting == 1


def test_zero_queue_limit_refuses_everything() -> None:
    gate = OrderGate("acct-1", [(2, 0.2)], max_queue=0, clock=ManualClock())
    with pytest.raises(OrderQueueFull, match="order_queue_limit 0"), gate.queued():
        pass
    assert gate.waiting == 0


# --- turns ---------------------------------------------------------------------------------------


async def test_turns_are_first_come_first_served_and_stay_within_the_window() -> None:
    windows: list[Window] = [(2, 0.2)]
    clock = LoopClock()
    gate = OrderGate("acct-1", windows, max_queue=10, clock=clock)
    arrival = [3, 0, 5, 1, 4, 2]  # the order in which the tasks join the queue, unlike their creation order
    go = {number: asyncio.Event() for number in arrival}
    entered: list[int] = []
    passed: list[tuple[int, float]] = []
    most_waiting = 0

    async def place(number: int, following: int | None) -> None:
        nonlocal most_waiting
        await go[number].wait()
        with gate.queued():
            entered.append(number)
            most_waiting = max(most_waiting, gate.waiting)
            if following is not None:
                go[following].set()  # lets the next one in only once this one is queued
            await gate.turn()
            passed.append((number, (clock.last - T0).total_seconds()))

    followers = dict(zip(arrival, [*arrival[1:], None], strict=True))
    tasks = [asyncio.create_task(place(number, followers[number])) for number in range(len(arrival))]
    go[arrival[0]].set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=3)

    assert entered == arrival
    assert [number for number, _ in passed] == arrival
    assert most_waiting >= 4  # several were queued together, not one after another
    assert gate.waiting == 0
    times = [at for _, at in passed]
    assert_within_windows(times, windows)
    # Pacing, not just ordering: six orders at two per 0.2 s take at least 0.4 s.
    assert times[-1] - times[0] >= 0.4 - 1e-6


@pytest.fixture
def instant_sleep(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """The pacing module's sleeps move a manual clock instead of waiting: long windows take no real time."""
    clock = ManualClock()

    async def sleep(seconds: float) -> None:
        clock.slept.append(seconds)
        clock.tick(seconds)
        await _real_sleep(0)

    monkeypatch.setattr(pacing, "asyncio", SimpleNamespace(sleep=sleep, Lock=asyncio.Lock))
    return clock


async def test_turns_never_exceed_any_window(instant_sleep: ManualClock) -> None:
    clock = instant_sleep
    windows: list[Window] = [(3, 1), (5, 10)]
    gate = OrderGate("acct-1", windows, max_queue=20, clock=clock)
    times: list[float] = []

    async def place() -> None:
        with gate.queued():
            await gate.turn()
            times.append(clock.seconds())

    await asyncio.wait_for(asyncio.gather(*(place() for _ in range(12))), timeout=3)

    assert len(times) == 12
    assert_within_windows(times, windows)
    # Three a second, but only five per ten seconds: bursts of 3 + 2, then a pause until the long window frees.
    assert times[:10] == [0, 0, 0, 1, 1, 10, 10, 10, 11, 11]
    assert all(seconds > 0 for seconds in clock.slept)


async def test_an_order_counts_from_its_answer_so_a_late_one_cannot_crowd_the_next_burst(
    instant_sleep: ManualClock,
) -> None:
    """Two turns in one burst; the first order's request is slow and may reach the broker as late as its answer
    (0.5 s). Counted from their turns, the next two would go at 1.0 s and land inside the broker's second with
    it; counted from their answers, each waits a full window after the answer it follows."""
    clock = instant_sleep
    gate = OrderGate("acct-1", [(2, 1.0)], max_queue=10, clock=clock)
    slow, quick = await gate.turn(), await gate.turn()
    clock.tick(0.02)
    gate.reached(quick)
    clock.tick(0.48)
    gate.reached(slow)
    await gate.turn()
    assert clock.seconds() == pytest.approx(1.02)
    await gate.turn()
    assert clock.seconds() == pytest.approx(1.5)


def test_a_count_already_expired_is_counted_again_from_now() -> None:
    clock = ManualClock()
    limits = RateLimits({ORDERS: [(1, 1.0)]}, clock)
    assert limits.admit("u", ORDERS) is None
    clock.tick(2.0)  # its answer took longer than the window: it may have reached the other side just now
    limits.recount("u", ORDERS, T0.timestamp())
    assert limits.admit("u", ORDERS) == pytest.approx(1.0)


async def test_unpaced_gate_passes_at_once(instant_sleep: ManualClock) -> None:
    clock = instant_sleep
    gate = OrderGate("paper", order_windows(0, [(10, 1)]), max_queue=100, clock=clock)
    for _ in range(50):
        with gate.queued():
            await gate.turn()
    assert clock.seconds() == 0
    assert clock.slept == []


async def test_a_newcomer_does_not_overtake_an_order_waiting_for_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock()
    wake = asyncio.Event()

    async def sleep(seconds: float) -> None:
        """Sleep until the test says so; the clock then shows at least the time slept."""
        clock.slept.append(seconds)
        until = clock.now + timedelta(seconds=seconds)
        await wake.wait()
        clock.now = max(clock.now, until)

    monkeypatch.setattr(pacing, "asyncio", SimpleNamespace(sleep=sleep, Lock=asyncio.Lock))
    gate = OrderGate("acct-1", [(1, 1)], max_queue=10, clock=clock)
    passed: list[str] = []

    async def place(name: str) -> None:
        with gate.queued():
            await gate.turn()
            passed.append(f"{name}@{clock.seconds():g}")

    async def settle() -> None:
        for _ in range(5):
            await _real_sleep(0)

    await place("first")
    second = asyncio.create_task(place("second"))
    await settle()
    assert clock.slept == [1.0]  # second waits for the window
    clock.tick(1)  # the window is free now, but second has not woken yet
    third = asyncio.create_task(place("third"))
    await settle()
    assert passed == ["first@0"]  # third queues behind second instead of taking the free slot
    assert gate.waiting == 2

    wake.set()
    await asyncio.wait_for(asyncio.gather(second, third), timeout=3)
    assert passed == ["first@0", "second@1", "third@2"]
    assert gate.waiting == 0
