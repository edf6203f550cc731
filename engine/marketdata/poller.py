"""The market-data loop: every poll interval, ask for the followed instruments that fit the brokers' budgets.

Stalest instruments go first, so when the budget cannot cover every instrument in one interval (600
instruments on one Kite account take two requests, 1.3 s apart), each is still refreshed in turn.
Instruments asked for at once (`quote_now`) go before all of them. Requests run concurrently with the
loop, so one slow broker delays only its own answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from engine.brokers.base import Quote
from engine.domain import InstrumentId
from engine.marketdata.planner import Planner, QuoteRequest, QuoteSource
from engine.marketdata.store import QuoteStore, stale_after
from engine.marketdata.subscriptions import Subscriptions

log = logging.getLogger(__name__)

Fetch = Callable[[str, list[InstrumentId]], Awaitable[Mapping[InstrumentId, Quote]]]
"""Ask account `account` for quotes of `instruments` (the AccountActor's `quotes`)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MarketDataPoller:
    def __init__(
        self,
        sources: Sequence[QuoteSource],
        fetch: Fetch,
        *,
        poll_interval: float,
        backoff_seconds: float,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.subscriptions = Subscriptions()
        self.store = QuoteStore(confirm_every=stale_after(poll_interval) / 3)
        self._planner = Planner(sources, clock, backoff_seconds)
        self._fetch = fetch
        self._interval = poll_interval
        self._clock = clock
        self._asked: dict[InstrumentId, float] = {}  # monotonic time of the last answer to a request with it
        self._quoted: dict[InstrumentId, float] = {}  # monotonic time of the last quote of it
        self._pending: set[InstrumentId] = set()  # in a request not answered yet
        self._urgent: dict[InstrumentId, int] = {}  # instrument -> quote_now callers waiting for it
        self._kick = asyncio.Event()
        self._answered = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failing: set[str] = set()  # accounts whose last quote request failed: logged once, not every retry

    def follow(self, owner: str, instruments: Iterable[InstrumentId]) -> None:
        """Make `owner` follow exactly `instruments`; new ones are asked for at once, not at the next interval."""
        if self.subscriptions.set(owner, instruments):
            self._kick.set()

    def unfollow(self, owner: str) -> None:
        self.subscriptions.remove(owner)

    async def run(self) -> None:
        """Poll until cancelled."""
        try:
            while True:
                self._cycle()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        await self._kick.wait()
                self._kick.clear()
        finally:
            for task in list(self._tasks):
                task.cancel()

    def _cycle(self) -> None:
        wanted = (self.subscriptions.instruments() | self._urgent.keys()) - self._pending
        ordered = sorted(wanted, key=lambda i: (i not in self._urgent, self._asked.get(i, 0.0), str(i)))
        for request in self._planner.plan(ordered):
            self._pending.update(request.instruments)
            task = asyncio.create_task(self._ask(request), name=f"quotes:{request.source.account}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _ask(self, request: QuoteRequest) -> None:
        asked = set(request.instruments)
        try:
            quotes = await self._fetch(request.source.account, list(request.instruments))
        except Exception as exc:  # one account's failure must not stop the loop: others serve meanwhile
            if request.source.account not in self._failing:
                self._failing.add(request.source.account)
                log.warning("quotes from %s failed, asking others meanwhile: %s", request.source.account, exc)
            self._planner.failed(request)
        else:
            if request.source.account in self._failing:
                self._failing.discard(request.source.account)
                log.info("quotes from %s work again", request.source.account)
            self._planner.answered(request, quotes.keys())
            arrived, now = self._clock(), time.monotonic()
            self.store.put(replace(q, at=arrived, broker=request.source.label) for i, q in quotes.items() if i in asked)
            self._quoted.update((i, now) for i in asked if i in quotes)
        finally:
            self._pending.difference_update(asked)
            now = time.monotonic()
            self._asked.update((i, now) for i in asked)
            if asked & self._urgent.keys():
                self._kick.set()  # another feed may have what this one left out
            async with self._answered:
                self._answered.notify_all()

    def _settled(self, instrument: InstrumentId, since: float) -> bool:
        """Quoted since `since`, or asked since then with no feed left to ask."""
        if self._quoted.get(instrument, -1.0) >= since:
            return True
        asked = self._asked.get(instrument, -1.0) >= since
        return (asked or instrument not in self._pending) and self._planner.feed_for(instrument) is None

    async def quote_now(self, instruments: Sequence[InstrumentId], timeout: float) -> list[Quote]:
        """Quotes of `instruments` asked for ahead of everything else; waits up to `timeout` for the answers.

        Left out: instruments no broker quoted in time.
        """
        started = time.monotonic()
        for instrument in instruments:
            self._urgent[instrument] = self._urgent.get(instrument, 0) + 1
        self._kick.set()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout), self._answered:
                    await self._answered.wait_for(lambda: all(self._settled(i, started) for i in instruments))
        finally:
            for instrument in instruments:
                left = self._urgent.pop(instrument) - 1
                if left:
                    self._urgent[instrument] = left
        return [q for i in instruments if (q := self.store.latest(i)) is not None]
