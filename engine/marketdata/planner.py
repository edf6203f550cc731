"""Which account asks for which instruments now: batches at the broker's per-request maximum, within budget.

A feed is the accounts that see the same prices from the same endpoint (one broker, or one simulator).
Each instrument is asked of one feed at a time: the healthy feed with the most capacity that has not
recently answered without it. Within a feed, batches go round-robin over the accounts, each account
admitted by the same sliding windows its adapter paces quote calls with. A batch no account has budget
for is not queued: it waits for a later cycle, so nothing piles up inside the adapters' pacers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from engine.brokers.pacing import RateLimits
from engine.domain import InstrumentId
from engine.marketdata.limits import QuoteLimits, quote_limits

RETRY_MISSING_SECONDS = 60.0  # a feed that answered without an instrument is not asked for it again this long


@dataclass(frozen=True, slots=True)
class QuoteSource:
    """An account the poller may ask for quotes."""

    account: str
    broker: str  # the configured kind (kite, upstox, paper): its quote limits
    feed: str  # accounts with the same feed get the same prices from the same endpoint
    label: str = ""  # the broker as users name it (zerodha-sim), shown with its quotes


@dataclass(frozen=True, slots=True)
class QuoteRequest:
    source: QuoteSource
    instruments: tuple[InstrumentId, ...]


def _capacity(sources: Sequence[QuoteSource]) -> float:
    """Instruments a feed can quote per second across its accounts."""
    return sum(quote_limits(s.broker).per_second * quote_limits(s.broker).batch for s in sources)


class Planner:
    def __init__(self, sources: Sequence[QuoteSource], clock: Callable[[], datetime], backoff_seconds: float) -> None:
        by_feed: dict[str, list[QuoteSource]] = {}
        for source in sources:
            by_feed.setdefault(source.feed, []).append(source)
        # Most capacity first; sorted() is stable, so equal feeds keep the configured order.
        self._feeds = sorted(by_feed.items(), key=lambda item: -_capacity(item[1]))
        self._budget = RateLimits({s.broker: quote_limits(s.broker).windows for s in sources}, clock)
        self._clock = clock
        self._backoff = backoff_seconds
        self._in_flight: Counter[str] = Counter()
        self._resting_until: dict[str, float] = {}  # account -> when it may be asked again after a failure
        self._missing: dict[tuple[str, InstrumentId], float] = {}  # (feed, instrument) -> when it was left out
        self._turn: dict[str, int] = {}  # feed -> index of the account to ask first

    def _now(self) -> float:
        return self._clock().timestamp()

    def _healthy(self, sources: Sequence[QuoteSource], now: float) -> list[QuoteSource]:
        return [s for s in sources if self._resting_until.get(s.account, 0.0) <= now]

    def feed_for(self, instrument: InstrumentId) -> str | None:
        """The feed that would be asked for `instrument` now; None if no healthy feed may quote it."""
        return self._feed_for(instrument, self._now())

    def _feed_for(self, instrument: InstrumentId, now: float) -> str | None:
        for feed, sources in self._feeds:
            left_out = self._missing.get((feed, instrument))
            if self._healthy(sources, now) and (left_out is None or now - left_out >= RETRY_MISSING_SECONDS):
                return feed
        return None

    def plan(self, wanted: Sequence[InstrumentId]) -> list[QuoteRequest]:
        """Requests to send now for `wanted` (most urgent first); what does not fit the budget is left out."""
        now = self._now()
        by_feed: dict[str, list[InstrumentId]] = {}
        for instrument in wanted:
            feed = self._feed_for(instrument, now)
            if feed is not None:
                by_feed.setdefault(feed, []).append(instrument)
        requests = []
        for feed, sources in self._feeds:
            items = by_feed.get(feed, [])
            limits = quote_limits(sources[0].broker)
            for start in range(0, len(items), limits.batch):
                source = self._admit(feed, sources, limits, now)
                if source is None:
                    break
                requests.append(QuoteRequest(source, tuple(items[start : start + limits.batch])))
        return requests

    def _admit(self, feed: str, sources: Sequence[QuoteSource], limits: QuoteLimits, now: float) -> QuoteSource | None:
        """The next account of `feed`, round-robin, that is healthy, not too busy and within its budget."""
        first = self._turn.get(feed, 0)
        for step in range(len(sources)):
            index = (first + step) % len(sources)
            source = sources[index]
            if self._resting_until.get(source.account, 0.0) > now:
                continue
            if self._in_flight[source.account] >= limits.parallel:
                continue
            if self._budget.admit(source.account, source.broker) is not None:
                continue
            self._in_flight[source.account] += 1
            self._turn[feed] = (index + 1) % len(sources)
            return source
        return None

    def answered(self, request: QuoteRequest, quoted: Collection[InstrumentId]) -> None:
        """Record an answer; instruments it left out are asked of the next feed for a while."""
        self._in_flight[request.source.account] -= 1
        now = self._now()
        for instrument in request.instruments:
            key = (request.source.feed, instrument)
            if instrument in quoted:
                self._missing.pop(key, None)
            else:
                self._missing[key] = now

    def failed(self, request: QuoteRequest) -> None:
        """The account could not answer (broker error, login needed): rest it, and let other accounts serve."""
        self._in_flight[request.source.account] -= 1
        self._resting_until[request.source.account] = self._now() + self._backoff
