"""QuoteBook: the gateway process's copy of the market-data actor's quotes, and who follows what.

A background task pulls every quote changed since the version it holds, one Ray call per batch, so
reads (`latest`, `prices`, the portfolio's marks) never cross the Ray boundary. Subscriptions are kept
here too and sent to the actor; when the actor comes back from a restart (a new epoch) they are sent again.
`prices`, which strategies act on, leaves out quotes no broker has confirmed for `max_age` seconds (the
market-data store publishes unchanged quotes again as they are confirmed): a trailing stop must not move on
a price from before the feed stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from engine.brokers.base import Quote
from engine.domain import InstrumentId
from engine.marketdata import Subscriptions, same_prices

log = logging.getLogger(__name__)

PULL_WAIT_SECONDS = 1.0  # how long one pull waits in the actor for a change before returning empty
RETRY_SECONDS = 1.0  # after a failed pull

ActorCall = Callable[[str, str, Awaitable[Any]], Awaitable[Any]]
"""Gateway.call: (actor kind, method, object ref) -> result, timed."""


class QuoteBook:
    def __init__(
        self,
        actor: Any,
        call: ActorCall,
        quote_timeout: float,
        max_age: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`actor`: the MarketDataActor handle; `quote_timeout`: how long `get` waits for unfollowed instruments;
        `max_age`: seconds since its last confirmation after which `prices` leaves a quote out."""
        self._actor = actor
        self._call = call
        self._timeout = quote_timeout
        self._max_age = timedelta(seconds=max_age)
        self._clock = clock
        self._subscriptions = Subscriptions()
        self._latest: dict[InstrumentId, Quote] = {}
        self._epoch = ""
        self._version = 0
        self._changed = asyncio.Event()
        self._streams = itertools.count(1)
        self._task: asyncio.Task[None] | None = None

    # -- following ------------------------------------------------------------------------------

    def subscribe(self, owner: str, instruments: Iterable[InstrumentId]) -> None:
        """Make `owner` follow exactly `instruments` (an empty set unsubscribes); polled while anyone follows."""
        if self._subscriptions.set(owner, instruments):
            self._send(owner)

    def unsubscribe(self, owner: str) -> None:
        if self._subscriptions.remove(owner):
            self._send(owner)

    def _send(self, owner: str) -> None:
        """Fire and forget: Ray runs one caller's calls to an actor in order, so the last set sent wins."""
        followed = sorted(self._subscriptions.of(owner))
        if followed:
            self._actor.subscribe.remote(owner, followed)
        else:
            self._actor.unsubscribe.remote(owner)

    # -- reading --------------------------------------------------------------------------------

    def latest(self, instrument: InstrumentId) -> Quote | None:
        return self._latest.get(instrument)

    def prices(self, instruments: Iterable[InstrumentId]) -> dict[InstrumentId, Decimal]:
        """The last prices of the instruments confirmed within `max_age`; older ones are left out."""
        oldest = self._clock() - self._max_age
        return {i: q.last_price for i in instruments if (q := self._latest.get(i)) is not None and q.at >= oldest}

    async def get(self, instruments: Sequence[InstrumentId]) -> dict[InstrumentId, Quote]:
        """The latest quote of each instrument; the brokers are asked at once for any nobody follows
        (a quote of an unfollowed instrument may be old). Instruments no broker quoted are left out."""
        followed = self._subscriptions.instruments()
        unknown = [i for i in instruments if i not in followed or i not in self._latest]
        if unknown:
            fetched = await self._call("market_data", "quote_now", self._actor.quote_now.remote(unknown, self._timeout))
            self._take(fetched)
        return {i: q for i in instruments if (q := self._latest.get(i)) is not None}

    async def changes(self, instruments: Iterable[InstrumentId], min_interval: float) -> AsyncIterator[list[Quote]]:
        """The instruments' quotes as they change: first those known, then each change, at most one per
        instrument per `min_interval` seconds (the latest wins). They stay followed until the iterator closes."""
        owner = f"stream:{next(self._streams)}"
        wanted = sorted(set(instruments))
        self.subscribe(owner, wanted)
        sent: dict[InstrumentId, tuple[Quote, float]] = {}
        try:
            while True:
                now = time.monotonic()
                due, next_due = [], float("inf")
                for instrument in wanted:
                    quote = self._latest.get(instrument)
                    last = sent.get(instrument)
                    if quote is None or (last is not None and same_prices(last[0], quote)):  # not a confirmation
                        continue
                    ready_at = last[1] + min_interval if last is not None else now
                    if ready_at <= now:
                        due.append(quote)
                    else:
                        next_due = min(next_due, ready_at)
                if due:
                    sent.update((q.instrument, (q, now)) for q in due)
                    yield due
                    continue
                changed = self._changed
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(None if next_due == float("inf") else next_due - now):
                        await changed.wait()
        finally:
            self.unsubscribe(owner)

    # -- pulling from the actor -----------------------------------------------------------------

    def _take(self, quotes: Iterable[Quote]) -> None:
        taken = False
        for quote in quotes:
            self._latest[quote.instrument] = quote
            taken = True
        if taken:
            self._changed.set()
            self._changed = asyncio.Event()

    async def _pull(self) -> None:
        while True:
            try:
                epoch, version, quotes = await self._call(
                    "market_data", "changes", self._actor.changes.remote(self._version, PULL_WAIT_SECONDS)
                )
            except Exception as exc:  # the actor restarting: try again, quotes just age meanwhile
                log.warning("pulling quotes failed: %s", exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if epoch != self._epoch:
                if self._epoch:
                    log.warning(
                        "market-data actor restarted; following %d owners again", len(self._subscriptions.owners())
                    )
                self._epoch = epoch
                for owner in self._subscriptions.owners():
                    self._send(owner)
            self._version = version
            self._take(quotes)

    def start(self) -> None:
        self._task = asyncio.create_task(self._pull(), name="quote-book")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
